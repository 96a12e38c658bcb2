"""The scale sections (issue "a real index behind the company cache"), run by ``run.py --only
scale`` (or any of list, curves, logging, accel): a synthetic index written here to tmpfs and
served by an nginx of its own (gzip on), and ``twistd pypiproxy`` processes in front of it.

(S1) list: the cold 750,000-name project list: total time, the slowest /+health sampled every
20 ms meanwhile, peak RSS; then warm list requests/s. (S2) curves: a project page of 100 /
1,000 / 10,000 files (cold time, warm req/s, RSS) and caches of 1k / 10k / 100k / 200k files
(start-up time, RSS). (S3) logging: a warm page's rate with the default logging and with
--access-log. (S4) accel: a big cached file from nginx directly, through nginx with
--accel-redirect, and from pypiproxy alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
import time
from pathlib import Path

from bench import Bench
from common import free_port, http_get, log, median, wait_http
from nginx import Nginx
from processes import Processes
from targets import PyPIProxy

LIST_NAMES = 750_000
PAGE_SIZES = (100, 1000, 10_000)
CACHE_SIZES = (1000, 10_000, 100_000, 200_000)
ACCEL_PREFIX = "/_pypiproxy_cache"
FOLDER_SETTLED = 2.5  # seconds
ACCEL_ROUNDS = 15  # a 274 MiB download takes 0.1-0.3 s here


class HealthSampler(threading.Thread):
    """GET /+health every 20 ms until stopped; the slowest answer's time."""

    def __init__(self, root: str) -> None:
        super().__init__(daemon=True)
        self.root, self.slowest, self.samples, self.failures = root, 0.0, 0, 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            started = time.monotonic()
            try:
                status, _, _ = http_get(self.root + "+health", timeout=60)
            except OSError:
                status = None
            # A failed or timed-out sample counts with the time it took.
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.samples += 1
            self.failures += status != 200
            time.sleep(0.02)

    def stop(self) -> float:
        self._halt.set()
        self.join()
        return self.slowest


class Floor:
    """``floor.py`` (a bare Twisted Site with one fixed body) in a process of its own, with the
    pypiproxy venv's Python: what any page served through twisted.web costs here."""

    def __init__(self, venv: Path, work: Path, body: bytes, content_type: str, procs: Processes) -> None:
        self.procs = procs
        self.port = free_port()
        body_file = work / f"floor-{self.port}.body"
        body_file.write_bytes(body)
        script = Path(__file__).resolve().with_name("floor.py")
        self.proc = procs.start([venv / "bin/python", script, self.port, body_file, content_type],
                                work / f"floor-{self.port}.log")
        wait_http(self.root, proc=self.proc)

    @property
    def root(self) -> str:
        return "http://127.0.0.1:%d/" % self.port

    def stop(self) -> None:
        self.procs.stop(self.proc)


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
        f'<a href="../../files/{name}-1.{i}.0-py3-none-any.whl#sha256={i:064x}" '
        f'data-requires-python="&gt;=3.8" data-dist-info-metadata="sha256={i + 1:064x}" '
        f'data-core-metadata="sha256={i + 1:064x}">{name}-1.{i}.0-py3-none-any.whl</a><br/>\n'
        for i in range(files)))


@contextlib.contextmanager
def synthetic_index(b: Bench, name: str, names: int = 0):
    """An nginx (gzip on) serving a fresh index dir on tmpfs whose list has `names` names:
    the index and the nginx, stopped at the end."""
    root = b.work / f"{name}-www"
    (root / "simple").mkdir(parents=True)
    write_list(root, names)
    nginx = Nginx(root, b.work, b.procs, name=f"{name}-nginx", gzip=True)
    nginx.start()
    try:
        yield nginx
    finally:
        nginx.stop()
        shutil.rmtree(root, ignore_errors=True)


def measured(b: Bench) -> bool:
    """Whether pypiproxy is among the targets (its venv is the one the sections run)."""
    if any(t.name == "pypiproxy" for t in b.targets):
        return True
    log("  skipped: pypiproxy is not running")
    return False


def proxy(b: Bench, nginx: Nginx, name: str, *args, access_log=False) -> PyPIProxy:
    """A pypiproxy (not started) in front of the synthetic index, with the default logging
    unless access_log."""
    base = next(t for t in b.targets if t.name == "pypiproxy")
    return PyPIProxy(b.lab, upstream=nginx.url, name=name, venv=base.venv, args=args, access_log=access_log)


def root_of(t: PyPIProxy) -> str:
    return "http://127.0.0.1:%d/" % t.port


def cold_list(b: Bench):
    """(S1) the cold 750,000-name list."""
    log(f"== (S1) cold project list of {LIST_NAMES} names")
    if not measured(b):
        return
    with synthetic_index(b, "scale-list", LIST_NAMES) as nginx:
        t = proxy(b, nginx, "scale-list", "--upstream-timeout", "120")
        try:
            t.reset()
            root, before = root_of(t), t.rss_mb()
            sampler = HealthSampler(root)
            sampler.start()
            started = time.monotonic()
            status, body, _ = http_get(root + "simple/", timeout=300)
            total = time.monotonic() - started
            slowest = sampler.stop()
            if status != 200:
                raise RuntimeError(f"GET /simple/ -> {status}")
            peak = t.peak_mb()
            load = b.clients.load(root, ["simple"], 4, b.args.duration, headers={"Accept-Encoding": "gzip"},
                                  threads=1)
            b.results["scale"]["list"] = dict(
                names=body.count(b"<a href="), total_s=round(total, 2), slowest_health_ms=round(slowest * 1000, 1),
                health_samples=sampler.samples, health_failures=sampler.failures,
                rss_before_mb=round(before), peak_rss_mb=round(peak),
                warm_gzip_req_s=round(load["rps"], 1), warm_errors=load["errors"] + load["non2xx"])
            log(f"  {b.results['scale']['list']}")
        except Exception as e:  # noqa: BLE001
            b.fail(t, "list", e)
        finally:
            t.stop()


def make_cache(folder: Path, count: int) -> None:
    """A cache dir of count files and a tenth as many pages, as pypiproxy lays them out."""
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


def curves(b: Bench):
    """(S2a) project pages of 100 / 1,000 / 10,000 files; (S2b) start-up with big caches."""
    log("== (S2a) project pages of %s files" % "/".join(map(str, PAGE_SIZES)))
    if not measured(b):
        return
    sizes = CACHE_SIZES[:3] if b.args.quick else CACHE_SIZES
    with synthetic_index(b, "scale-curves") as nginx:
        rows = b.results["scale"]["pages"] = []
        for files in PAGE_SIZES:
            name = f"big{files}"
            write_page(nginx.root, name, files)
            t = proxy(b, nginx, f"scale-{name}")
            try:
                t.reset()
                sampler = HealthSampler(root_of(t))
                sampler.start()
                started = time.monotonic()
                status, body, _ = http_get(root_of(t) + f"simple/{name}/", timeout=120)
                cold = time.monotonic() - started
                slowest = sampler.stop()
                if status != 200 or body.count(b"<a ") != files:
                    raise RuntimeError(f"GET /simple/{name}/ -> {status}, {body.count(b'<a ')} anchors")
                load = b.clients.load(root_of(t) + "simple/", [name], 10, b.args.duration, headers={}, threads=1)
                rows.append(dict(files=files, cold_s=round(cold, 3), slowest_health_ms=round(slowest * 1000, 1),
                                 warm_req_s=round(load["rps"]), rss_mb=round(t.rss_mb())))
                log(f"  {rows[-1]}")
            except Exception as e:  # noqa: BLE001
                b.fail(t, "curves", e)
            finally:
                t.stop()
        log("== (S2b) start-up with caches of %s files (a tenth as many pages)" % "/".join(map(str, sizes)))
        rows = b.results["scale"]["startup"] = []
        for count in sizes:
            t = proxy(b, nginx, f"scale-startup-{count}", "--max-cache-size", "100G")
            try:
                make_cache(t.cache, count)
                started = time.monotonic()
                t.start()
                up = time.monotonic() - started
                sampler = HealthSampler(root_of(t))
                sampler.start()
                time.sleep(3)
                slowest = sampler.stop()
                rows.append(dict(files=count, pages=count // 10, first_health_s=round(up, 2),
                                 slowest_health_ms_3s_after=round(slowest * 1000, 1), rss_mb=round(t.rss_mb())))
                log(f"  {rows[-1]}")
            except Exception as e:  # noqa: BLE001
                b.fail(t, "curves", e)
            finally:
                t.stop()
                shutil.rmtree(t.cache, ignore_errors=True)


def logging_rate(b: Bench):
    """(S3) a warm 10-file page: the default logging against --access-log FILE, and both
    against the floor (a bare Twisted Site sending the same bytes), in turn, twice."""
    log("== (S3) a warm page's rate: default logging, --access-log FILE, a bare Twisted Site")
    if not measured(b):
        return
    with synthetic_index(b, "scale-logging") as nginx:
        write_page(nginx.root, "demo", 10)
        rows = b.results["scale"]["logging"] = {}
        runs: dict[str, list[dict]] = {"default": [], "access_log": [], "floor": []}
        page: tuple[bytes, str] | None = None
        for _ in range(2):
            for label, access_log in (("default", False), ("access_log", True)):
                t = proxy(b, nginx, f"scale-log-{label}", access_log=access_log)
                try:
                    t.reset()
                    _, body, headers = http_get(root_of(t) + "simple/demo/")
                    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "text/html")
                    page = body, content_type
                    # A fresh cache: the private store trusts what it read of its folder only
                    # once the folder is 2 s old (private/store.py, RACY_NS). Before, every
                    # page rescanned it; measured after, as a server that has run a while.
                    time.sleep(FOLDER_SETTLED)
                    runs[label].append(b.clients.load(root_of(t) + "simple/", ["demo"], 10, b.args.duration,
                                                      headers={}, threads=1))
                except Exception as e:  # noqa: BLE001
                    b.fail(t, "logging", e)
                finally:
                    t.stop()
            if page is not None:
                venv = next(t for t in b.targets if t.name == "pypiproxy").venv
                floor = Floor(venv, b.work, *page, b.procs)
                try:
                    runs["floor"].append(b.clients.load(floor.root + "simple/", ["demo"], 10, b.args.duration,
                                                        headers={}, threads=1))
                finally:
                    floor.stop()
        for label, loads in runs.items():
            if loads:
                rows[label + "_req_s"] = round(median([load["rps"] for load in loads]))
                rows[label + "_p99_ms"] = round(median([load["p99_ms"] for load in loads]), 2)
        if rows.get("floor_req_s"):
            for label in ("default", "access_log"):
                if label + "_req_s" in rows:
                    rows[label + "_of_floor"] = round(rows[label + "_req_s"] / rows["floor_req_s"], 3)
        log(f"  {rows}")


def write_big(root: Path, mib: int) -> str:
    """A wheel of mib MiB of random bytes in root/files and its page: its name."""
    data = os.urandom(1024 * 1024)
    (root / "files").mkdir(exist_ok=True)
    big = root / "files" / "bigfile-1.0-py3-none-any.whl"
    digest = hashlib.sha256()
    with open(big, "wb") as out:
        for _ in range(mib):
            out.write(data)
            digest.update(data)
    page = root / "simple" / "bigfile"
    page.mkdir(parents=True, exist_ok=True)
    (page / "index.html").write_text(f'<a href="../../files/{big.name}#sha256={digest.hexdigest()}">{big.name}</a>\n')
    return big.name


def accel(b: Bench):
    """(S4) a cached big file: nginx alone, nginx in front of pypiproxy --accel-redirect, pypiproxy alone."""
    mib = b.args.accel_mib
    log(f"== (S4) a cached {mib} MiB file: nginx alone, nginx + --accel-redirect, pypiproxy alone")
    if not measured(b):
        return
    with synthetic_index(b, "scale-accel") as nginx:
        filename = write_big(nginx.root, mib)
        t = proxy(b, nginx, "scale-accel", "--accel-redirect", ACCEL_PREFIX)
        front, front_port = None, free_port()
        try:
            t.reset()
            _, page, _ = http_get(root_of(t) + "simple/bigfile/")
            href = re.search(rb'href="([^"#]+)', page).group(1).decode()
            path = "files/" + href.split("files/", 1)[1]
            http_get(root_of(t) + path, timeout=300)  # cold: now cached
            # The nginx side of --accel-redirect, the location of etc/nginx-lb.conf's.
            front = Nginx(nginx.root, b.work, b.procs, name="scale-front-nginx", extra=(
                "server { listen 127.0.0.1:%d;\n"
                "  location / { proxy_pass %s; proxy_buffering off; proxy_http_version 1.1;\n"
                "    proxy_set_header Connection \"\"; }\n"
                "  location %s/ { internal; alias %s/; etag off; types { }\n"
                "    default_type application/octet-stream; add_header ETag $upstream_http_etag; }\n}\n"
                % (front_port, root_of(t), ACCEL_PREFIX, t.cache)))
            front.start()
            want = mib * 1024 * 1024
            urls = {"nginx_direct": nginx.base + "files/" + filename,
                    "nginx_accel_redirect": "http://127.0.0.1:%d/%s" % (front_port, path)}
            rows = b.results["scale"]["accel"] = {}
            speeds = interleaved_speeds(b, urls, want, ACCEL_ROUNDS)
            for label, measured_speeds in speeds.items():
                rows[label + "_mb_s"] = round(max(measured_speeds))
                rows[label + "_median_mb_s"] = round(median(measured_speeds))
            rows["accel_of_direct_median"] = round(median(
                [a / d for a, d in zip(speeds["nginx_accel_redirect"], speeds["nginx_direct"])]), 3)
            t.stop()  # the same cache, without --accel-redirect: pypiproxy sending it itself
            t.args = ()
            t.start()
            rows["pypiproxy_alone_mb_s"] = round(best_speed(b, root_of(t) + path, want))
            log(f"  {rows}")
        except Exception as e:  # noqa: BLE001
            b.fail(t, "accel", e)
        finally:
            t.stop()
            if front:
                front.stop()
            shutil.rmtree(t.cache, ignore_errors=True)


def interleaved_speeds(b: Bench, urls: dict[str, str], size: int, rounds: int) -> dict[str, list[float]]:
    """MB/s of each url's downloads, taken in turn (the order reversed every other round) after
    one each to warm the page cache: a busy moment of the machine slows a round's alike, where
    best-of-3 of one after best-of-3 of the other swung from 82 % to 114 %."""
    speeds: dict[str, list[float]] = {label: [] for label in urls}
    order = list(urls.items())
    for i in range(rounds + 1):
        for label, url in order if i % 2 else reversed(order):
            d = b.clients.download(url)
            if d.get("status") != 200 or d.get("size") != size:
                raise RuntimeError(f"download of {url}: {d}")
            if i:
                speeds[label].append(d["mbps"])
    return speeds


def best_speed(b: Bench, url: str, size: int, runs: int = 3) -> float:
    """The best MB/s of runs downloads of url, after one to warm the page cache."""
    return max(interleaved_speeds(b, {"url": url}, size, runs)["url"])
