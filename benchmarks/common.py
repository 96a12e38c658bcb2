"""Small helpers every module of the benchmark uses: logging, plain HTTP GETs
that bypass any proxy, free loopback ports, medians."""

from __future__ import annotations

import re
import socket
import statistics
import sys
import time
import urllib.error
import urllib.request


def log(*a):
    print("[bench %s]" % time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def http_get(url, accept="*/*", timeout=60) -> tuple[int, bytes, dict]:
    """GET url with no proxy (loopback only): status, body, headers."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers or {})


def wait_http(url, timeout=60, proc=None, ok=lambda status: status < 500):
    """Poll url until ok(status); fail early if proc exits."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s while waiting for %s" % (proc.returncode, url))
        try:
            status, _, _ = http_get(url, timeout=5)
            if ok(status):
                return
            last = "HTTP %s" % status
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise RuntimeError("timed out waiting for %s (%s)" % (url, last))
