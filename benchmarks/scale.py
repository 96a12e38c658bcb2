#!/usr/bin/env python3
"""The scale sections (issue "a real index behind the company cache"): a synthetic index made
here, served by nginx on 127.0.0.1, and ``twistd pypiproxy`` processes in front of it.

    python3 benchmarks/scale.py --quick            # about 3-4 minutes
    python3 benchmarks/scale.py --repo OTHER_TREE  # the same against another checkout

Sections: (S1) the cold 750,000-name project list: total time, the slowest /+health sampled
every 20 ms meanwhile, peak RSS, then warm list requests/s; (S2) cost curves: a project page
of 100 / 1,000 / 10,000 files (cold time, warm req/s, RSS) and caches of 1k / 10k / 100k /
200k files (start-up time, RSS); (S3) a warm page's rate with the default logging and with
--access-log; (S4) a big cached file from nginx directly, through nginx with
--accel-redirect, and from pypiproxy alone. Needs nginx, wrk and curl; uses the interpreter
running it (with pypiproxy's dependencies) and the tree given by --repo on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import free_port, http_get, log, wait_http
from processes import Processes, tree_rss_mb

HERE = Path(__file__).resolve().parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


class Lab:
    """nginx serving a static index from ``root``, and pypiproxy processes started on demand."""

    def __init__(self, work: Path, repo: Path, procs: Processes) -> None:
        self.work, self.repo, self.procs = work, repo, procs
        self.root = work / "www"
        (self.root / "simple").mkdir(parents=True)
        self.nginx_port = free_port()
        self.nginx = None

    def start_nginx(self, extra: str = "") -> None:
        d = self.work / "nginx"
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        user = "user root;\n" if os.geteuid() == 0 else ""
        (d / "nginx.conf").write_text(
            f"{user}worker_processes 2;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n"
            "events { worker_connections 1024; }\n"
            f"http {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n"
            f"fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n"
            "sendfile on; tcp_nopush on; gzip on; gzip_types text/html application/json;\n"
            f"server {{ listen 127.0.0.1:{self.nginx_port}; root {self.root}; default_type text/html; }}\n"
            f"{extra}}}\n")
        self.nginx = self.procs.start([NGINX, "-e", d / "error.log", "-c", d / "nginx.conf", "-p", d,
                                       "-g", "daemon off;"])
        wait_http(f"http://127.0.0.1:{self.nginx_port}/", proc=self.nginx)

    @property
    def upstream(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}/simple/"

    def proxy(self, cache_dir: Path, *args: str, name: str = "proxy") -> tuple[subprocess.Popen, str, float]:
        """A started pypiproxy, its root URL and the seconds until /+health first answered."""
        port = free_port()
        argv = [Path(sys.executable).with_name("twistd"), "-n", "--pidfile=", "--logfile",
                self.work / f"{name}-{port}.log", "pypiproxy", "--listen", f"tcp:{port}:interface=127.0.0.1",
                "--cache-dir", cache_dir, *args]
        started = time.monotonic()
        process = self.procs.start(argv, env=self.procs.env(PYTHONPATH=str(self.repo)))
        root = f"http://127.0.0.1:{port}/"
        wait_http(root + "+health", proc=process, timeout=120)
        return process, root, time.monotonic() - started


class HealthSampler(threading.Thread):
    """GET /+health every 20 ms until stopped; the slowest answer's time."""

    def __init__(self, root: str) -> None:
        super().__init__(daemon=True)
        self.root, self.slowest, self.samples, self._halt = root, 0.0, 0, threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            started = time.monotonic()
            http_get(self.root + "+health", timeout=60)
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.samples += 1
            time.sleep(0.02)

    def stop(self) -> float:
        self._halt.set()
        self.join()
        return self.slowest


def wrk(url: str, seconds: int, connections: int = 10, headers=()) -> float:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", *[a for h in headers for a in ("-H", h)], url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def write_list(root: Path, count: int) -> None:
    with open(root / "simple" / "index.html", "w") as out:
        out.write('<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.1">'
                  "<title>Simple index</title></head><body>\n")
        for i in range(count):
            name = f"Proj_{i:x}.lib" if i % 3 else f"p{i}"
            out.write(f'<a href="/simple/{name.lower()}/">{name}</a>\n')
        out.write("</body></html>\n")


def write_page(root: Path, name: str, files: int) -> None:
    folder = root / "simple" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.html").write_text("".join(
        f'<a href="../../packages/{name}-1.{i}.0-py3-none-any.whl#sha256={i:064x}" '
        f'data-requires-python="&gt;=3.8" data-dist-info-metadata="sha256={i + 1:064x}" '
        f'data-core-metadata="sha256={i + 1:064x}">{name}-1.{i}.0-py3-none-any.whl</a><br/>\n'
        for i in range(files)))


def cold_list(lab: Lab, results: dict, names: int, seconds: int) -> None:
    log(f"== (S1) cold project list of {names} names")
    write_list(lab.root, names)
    proxy, root, _ = lab.proxy(lab.work / "cache-list", "--upstream", lab.upstream, "--upstream-timeout", "120")
    before = tree_rss_mb(proxy.pid)
    sampler = HealthSampler(root)
    sampler.start()
    started = time.monotonic()
    status, body, _ = http_get(root + "simple/", timeout=300)
    total = time.monotonic() - started
    slowest = sampler.stop()
    assert status == 200, status
    listed = body.count(b"<a href=")
    peak = tree_rss_mb(proxy.pid, "VmHWM")
    rate = wrk(root + "simple/", seconds, connections=4, headers=["Accept-Encoding: gzip"])
    results["cold_list"] = dict(names=listed, total_s=round(total, 2), slowest_health_ms=round(slowest * 1000),
                                health_samples=sampler.samples, rss_before_mb=round(before), peak_rss_mb=round(peak),
                                warm_gzip_req_s=round(rate, 1))
    log(f"  {results['cold_list']}")
    lab.procs.stop(proxy)


def page_curve(lab: Lab, results: dict, sizes, seconds: int) -> None:
    log("== (S2a) project pages of %s files" % "/".join(map(str, sizes)))
    rows = []
    for files in sizes:
        name = f"big{files}"
        write_page(lab.root, name, files)
        proxy, root, _ = lab.proxy(lab.work / f"cache-{name}", "--upstream", lab.upstream)
        sampler = HealthSampler(root)
        sampler.start()
        started = time.monotonic()
        status, body, _ = http_get(root + f"simple/{name}/", timeout=120)
        cold = time.monotonic() - started
        slowest = sampler.stop()
        assert status == 200 and body.count(b"<a ") == files, status
        rate = wrk(root + f"simple/{name}/", seconds)
        rows.append(dict(files=files, cold_s=round(cold, 3), slowest_health_ms=round(slowest * 1000),
                         warm_req_s=round(rate), rss_mb=round(tree_rss_mb(proxy.pid))))
        log(f"  {rows[-1]}")
        lab.procs.stop(proxy)
    results["page_curve"] = rows


def make_cache(folder: Path, count: int) -> None:
    files = folder / "files"
    pages = folder / "pages"
    pages.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        key = hashlib.sha256(b"%d" % i).hexdigest()
        (files / key[:2]).mkdir(parents=True, exist_ok=True)
        (files / key[:2] / key).write_bytes(b"x" * (i % 2000))
    for i in range(count // 10):
        page = {"source": "http://127.0.0.1:9/simple/", "fetched_at": 0, "etag": None, "last_modified": None,
                "page": {"name": f"project-{i}", "files": [{"filename": f"project_{i}-1.0.tar.gz",
                                                             "url": "http://127.0.0.1:9/f", "hashes": {}}]}}
        (pages / f"project-{i}.json").write_text(json.dumps(page))


def startup_curve(lab: Lab, results: dict, sizes) -> None:
    log("== (S2b) start-up with caches of %s files (a tenth as many pages)" % "/".join(map(str, sizes)))
    rows = []
    for count in sizes:
        folder = lab.work / f"startup-{count}"
        make_cache(folder, count)
        proxy, root, up = lab.proxy(folder, "--upstream", lab.upstream, "--max-cache-size", "100G")
        sampler = HealthSampler(root)
        sampler.start()
        time.sleep(3)
        slowest = sampler.stop()
        rows.append(dict(files=count, pages=count // 10, first_health_s=round(up, 2),
                         slowest_health_ms_3s_after=round(slowest * 1000), rss_mb=round(tree_rss_mb(proxy.pid))))
        log(f"  {rows[-1]}")
        lab.procs.stop(proxy)
        shutil.rmtree(folder)
    results["startup_curve"] = rows


def logging_rate(lab: Lab, results: dict, seconds: int) -> None:
    log("== (S3) a warm page's rate: default logging, --access-log FILE")
    write_page(lab.root, "demo", 10)
    rows = {}
    for label, extra in (("default", ()), ("access_log", ("--access-log", str(lab.work / "access.log")))):
        proxy, root, _ = lab.proxy(lab.work / f"cache-log-{label}", "--upstream", lab.upstream, *extra)
        http_get(root + "simple/demo/")
        rows[label + "_req_s"] = round(wrk(root + "simple/demo/", seconds))
        lab.procs.stop(proxy)
    results["logging_rate"] = rows
    log(f"  {rows}")


def accel(lab: Lab, results: dict, mib: int) -> None:
    log(f"== (S4) a cached {mib} MiB file: nginx alone, nginx + --accel-redirect, pypiproxy alone")
    data = os.urandom(1024 * 1024)
    packages = lab.root / "packages"
    packages.mkdir(exist_ok=True)
    big = packages / "bigfile-1.0-py3-none-any.whl"
    digest = hashlib.sha256()
    with open(big, "wb") as out:
        for _ in range(mib):
            out.write(data)
            digest.update(data)
    folder = lab.root / "simple" / "bigfile"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.html").write_text(
        f'<a href="../../packages/{big.name}#sha256={digest.hexdigest()}">{big.name}</a>\n')
    cache = lab.work / "cache-accel"
    proxy, root, _ = lab.proxy(cache, "--upstream", lab.upstream, "--accel-redirect", "/_pypiproxy_cache")
    front_port = free_port()
    conf = lab.work / "nginx-front.conf"
    conf.write_text(
        f"server {{ listen 127.0.0.1:{front_port};\n"
        f"  location / {{ proxy_pass {root}; proxy_buffering off; proxy_http_version 1.1;\n"
        "    proxy_set_header Connection \"\"; }\n"
        f"  location /_pypiproxy_cache/ {{ internal; alias {cache}/; etag off;\n"
        "    add_header ETag $upstream_http_etag; }\n}\n")
    lab.procs.stop(lab.nginx)
    lab.start_nginx(f"include {conf};\n")
    _, page, _ = http_get(root + "simple/bigfile/")
    href = re.search(rb'href="([^"#]+)', page).group(1).decode()
    path = "files/" + href.split("files/", 1)[1]
    http_get(root + path, timeout=300)  # cold: now cached

    def speed(url: str) -> float:
        out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{size_download} %{time_total} %{http_code}", url],
                             capture_output=True, text=True, check=True).stdout.split()
        assert int(out[0]) == mib * 1024 * 1024, (url, out)
        return int(out[0]) / float(out[1]) / 1e6

    # Another process on the same cache, without --accel-redirect: pypiproxy sending it itself.
    alone, alone_root, _ = lab.proxy(cache, "--upstream", lab.upstream, name="alone")
    rows = {}
    for label, url in (("nginx_direct", f"http://127.0.0.1:{lab.nginx_port}/packages/{big.name}"),
                       ("nginx_accel_redirect", f"http://127.0.0.1:{front_port}/{path}"),
                       ("pypiproxy_alone", alone_root + path)):
        speed(url)  # once to warm the page cache
        rows[label + "_mb_s"] = round(max(speed(url) for _ in range(3)))
    results["accel"] = rows
    log(f"  {rows}")
    lab.procs.stop(proxy)
    lab.procs.stop(alone)


SECTIONS = ("list", "pages", "startup", "logging", "accel")


def run(work: Path, repo: Path, quick: bool, only=SECTIONS) -> dict:
    procs = Processes(work)
    lab = Lab(work, repo, procs)
    results: dict = {"quick": quick, "repo": str(repo)}
    try:
        lab.start_nginx()
        seconds = 2 if quick else 5
        if "list" in only:
            cold_list(lab, results, 750_000, seconds)
        if "pages" in only:
            page_curve(lab, results, (100, 1000, 10000), seconds)
        if "startup" in only:
            startup_curve(lab, results, (1000, 10_000, 100_000) if quick else (1000, 10_000, 100_000, 200_000))
        if "logging" in only:
            logging_rate(lab, results, seconds)
        if "accel" in only:
            accel(lab, results, 100 if quick else 274)
    finally:
        procs.stop_all()
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2 s load runs, caches up to 100k files, 100 MiB file")
    p.add_argument("--repo", default=str(HERE.parent), help="the pypiproxy tree to run [%(default)s]")
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pypiproxy-scale-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as d:
        results = run(Path(d), Path(args.repo), args.quick, args.only)
    print(json.dumps(results, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
