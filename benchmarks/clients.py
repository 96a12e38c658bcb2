"""The clients: uv installs, curl downloads (one, or a herd of them at once),
and load on the index pages with wrk; Python fallbacks when curl or wrk is
missing.  Every client runs with the environment of `Processes.env()`."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

from common import http_get, log
from processes import Processes

# The Accept header uv sends for index pages (PEP 691 negotiation).
UV_ACCEPT = ("application/vnd.pypi.simple.v1+json, "
             "application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01")


class Clients:
    """The client programs of one run; tmp is a scratch dir on tmpfs."""

    def __init__(self, procs: Processes, tmp: Path, uv: str, python: str, install_timeout: int,
                 wrk_threads: int | None = None):
        self.procs, self.tmp = procs, tmp
        self.uv, self.python, self.install_timeout = uv, python, install_timeout
        self.wrk_threads = wrk_threads
        self.wrk = shutil.which("wrk")
        self.curl = shutil.which("curl")
        self.install_counter = 0

    # ---- uv

    def uv_install(self, index_url: str, requirements: Path, label: str) -> float | None:
        """`uv pip install --no-cache` of requirements into a fresh target dir: seconds."""
        self.install_counter += 1
        target_dir = self.tmp / ("site-%d" % self.install_counter)
        argv = [self.uv, "pip", "install", "--no-config", "--no-cache", "--quiet",
                "--python", self.python, "--target", target_dir, "--link-mode", "copy",
                "--index-url", index_url, "-r", requirements]
        t0 = time.perf_counter()
        r = subprocess.run([str(a) for a in argv], env=self.procs.env(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                           timeout=self.install_timeout)
        dt = time.perf_counter() - t0
        shutil.rmtree(target_dir, ignore_errors=True)
        if r.returncode != 0:
            raise RuntimeError("uv pip install (%s) failed after %.1fs: %s" % (
                label, dt, r.stdout.decode(errors="replace")[-3000:]))
        log("  %-28s %7.2f s" % (label, dt))
        return dt

    # ---- downloads

    @staticmethod
    def file_url(index_url: str, project: str, filename: str) -> str:
        """The URL of filename as listed on the project's page of the index."""
        page = index_url + project + "/"
        status, body, _ = http_get(page, accept="text/html")
        if status != 200:
            raise RuntimeError("GET %s -> %s" % (page, status))
        for href in re.findall(r'href="([^"]+)"', body.decode()):
            if filename in urllib.parse.unquote(href):
                return urllib.parse.urljoin(page, href.split("#")[0].replace("&amp;", "&"))
        raise RuntimeError("%s not listed on %s" % (filename, page))

    def curl_argv(self, url):
        return [self.curl, "-sS", "-L", "-o", "/dev/null", "-H", "Accept: */*", "--max-time", "600",
                "-w", r"%{http_code} %{time_starttransfer} %{time_total} %{size_download} %{num_redirects}\n",
                url]

    def download(self, url) -> dict:
        """One download: status, time to first byte, total time, MB/s."""
        if self.curl:
            r = subprocess.run(self.curl_argv(url), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=self.procs.env(), timeout=700)
            return parse_curl(r.stdout.decode(), r.stderr.decode())
        return python_download(url)

    def download_many(self, url, n) -> list[dict]:
        """n downloads of url started at once."""
        if not self.curl:
            return threaded(lambda: python_download(url), n)
        procs = []
        try:
            for _ in range(n):
                procs.append(subprocess.Popen(self.curl_argv(url), stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE, env=self.procs.env()))
            return [parse_curl(*(x.decode() for x in p.communicate(timeout=900))) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()

    # ---- load

    def load(self, index_url, projects, conc, duration, headers=None, threads=None) -> dict:
        """Requests/s, p50, p99, errors, non-2xx of GETs cycling through the projects' pages,
        with the Accept header uv sends unless headers are given."""
        u = urllib.parse.urlsplit(index_url)
        paths = [u.path + p + "/" for p in projects]
        headers = {"Accept": UV_ACCEPT} if headers is None else headers
        if not self.wrk:
            return builtin_load(u.hostname, u.port, paths, conc, duration, headers)
        script = self.tmp / "pages.lua"
        script.write_text(WRK_LUA % {
            "paths": ", ".join('"%s"' % p for p in paths),
            "headers": ", ".join('["%s"] = "%s"' % item for item in headers.items())})
        threads = threads or (min(2, conc) if self.wrk_threads is None else self.wrk_threads)
        argv = [self.wrk, "-t", str(threads),
                "-c", str(conc), "-d", "%ds" % duration, "--timeout", "5s", "-s", script,
                "http://%s:%d" % (u.hostname, u.port)]
        r = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env=self.procs.env(), timeout=duration + 60)
        out = r.stdout.decode(errors="replace")
        m = re.search(r"^JSON (\{.*\})$", out, re.M)
        if not m:
            raise RuntimeError("wrk: %s" % out[-2000:])
        d = json.loads(m.group(1))
        return {"rps": d["requests"] / (d["duration_us"] / 1e6), "p50_ms": d["p50_us"] / 1000,
                "p99_ms": d["p99_us"] / 1000, "errors": d["errors"], "non2xx": d["status"]}


def parse_curl(out, err):
    try:
        code, ttfb, total, size, redirects = out.split()
        res = {"status": int(code), "ttfb": float(ttfb), "total": float(total),
               "size": int(float(size)), "redirects": int(redirects)}
    except ValueError:
        return {"status": 0, "error": (out + err).strip()[-500:]}
    res["mbps"] = res["size"] / res["total"] / 1e6 if res["total"] else None
    if err.strip():
        res["error"] = err.strip()[-500:]
    return res


WRK_LUA = r"""
local paths = { %(paths)s }
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter %% #paths) + 1], { %(headers)s })
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'JSON {"requests": %%d, "duration_us": %%d, "errors": %%d, "status": %%d, "p50_us": %%f, "p99_us": %%f}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


def python_download(url) -> dict:
    """Fallback client when curl is missing."""
    u = urllib.parse.urlsplit(url)
    t0 = time.perf_counter()
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    c.request("GET", u.path, headers={"Accept": "*/*"})
    r = c.getresponse()
    buf = bytearray(1 << 20)
    first = r.readinto(memoryview(buf)[:1])
    ttfb = time.perf_counter() - t0
    size = first
    while n := r.readinto(buf):
        size += n
    total = time.perf_counter() - t0
    c.close()
    return {"status": r.status, "ttfb": ttfb, "total": total, "size": size, "redirects": 0,
            "mbps": size / total / 1e6}


def threaded(fn, n):
    out = [None] * n

    def w(i):
        try:
            out[i] = fn()
        except Exception as e:  # noqa: BLE001
            out[i] = {"status": 0, "error": str(e)}

    ths = [threading.Thread(target=w, args=(i,)) for i in range(n)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    return out


def builtin_load(host, port, paths, conc, duration, headers) -> dict:
    """Fallback load generator (threads, keep-alive); far slower than wrk."""
    stop = time.monotonic() + duration
    lat: list[float] = []
    errs = [0, 0]
    lock = threading.Lock()

    def worker(k):
        c = None
        mine, i = [], k
        while time.monotonic() < stop:
            try:
                if c is None:
                    c = http.client.HTTPConnection(host, port, timeout=5)
                t0 = time.perf_counter()
                c.request("GET", paths[i % len(paths)], headers=headers)
                r = c.getresponse()
                r.read()
                mine.append(time.perf_counter() - t0)
                if r.status >= 400:
                    errs[1] += 1
            except (OSError, http.client.HTTPException):
                errs[0] += 1
                c = None
            i += 1
        with lock:
            lat.extend(mine)

    t0 = time.monotonic()
    threaded(lambda: worker(id(threading.current_thread())), conc)
    el = time.monotonic() - t0
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else 0  # noqa: E731
    return {"rps": len(lat) / el, "p50_ms": q(0.5), "p99_ms": q(0.99), "errors": errs[0], "non2xx": errs[1]}
