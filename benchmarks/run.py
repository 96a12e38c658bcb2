#!/usr/bin/env python3
"""Benchmark pypiproxy against a static nginx index (direct) and against peers.

    python3 benchmarks/run.py                  # direct nginx + pypiproxy
    python3 benchmarks/run.py --peers          # + devpi-server and proxpi
    python3 benchmarks/run.py --quick          # smoke run: 1 run, 50 MB big file
    python3 benchmarks/run.py --only install pages --runs 5 --json out.json

Everything it starts (nginx, proxies, relays, load generators) runs in its own
process group and is stopped on exit, on errors and on Ctrl-C.  Only loopback
addresses are used.  See benchmarks/README.md.

Sections (``--only``):
  install  (1) cold and (2) warm ``uv pip install --no-cache`` of the whole corpus
  bigfile  (3) big file cold: time to first byte, MB/s; (4) big file warm: MB/s
  pages    (5) cached index pages: requests/s and p99 at concurrency 10 and 100
  herd     (6) N clients on the same cold big file: upstream fetches, time, peak RSS
  tiers    (8) uv straight from a remote tier vs through a local tier chained to it,
               over a link of 1, 10 and 50 ms round-trip time (delaying TCP relay)
The peak RSS of each proxy over the whole run (7) is always reported.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import html
import http.client
import json
import os
import queue
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SECTIONS = ("install", "bigfile", "pages", "herd", "tiers")
ALL_TARGETS = ("direct", "pypiproxy", "devpi", "proxpi")
PEERS = ("devpi", "proxpi")

# The Accept header uv sends for index pages (PEP 691 negotiation).
UV_ACCEPT = ("application/vnd.pypi.simple.v1+json, "
             "application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01")

# A fixed, realistic set of top-level requirements (their dependency trees are
# downloaded too): pure and binary wheels, big binary wheels (scipy, numpy,
# pandas, botocore, mypy) and three sdist-only projects (docopt, wget as .zip,
# sgmllib3k).
CORPUS_REQUIREMENTS = """
requests==2.34.2
flask==3.1.3
django==5.2.19
fastapi==0.165.0
uvicorn==0.54.0
pydantic==2.14.4
sqlalchemy==2.1.9
numpy==2.4.6
pandas==3.1.1
scipy==1.17.1
matplotlib==3.11.2
pillow==13.0.0
lxml==6.1.3
pyyaml==6.0.4
cryptography==50.0.2
boto3==1.44.8
aiohttp==3.14.5
httpx==0.28.1
click==8.5.1
rich==15.0.0
jinja2==3.1.6
pytest==9.2.0
black==26.10.1
mypy==2.4.1
psycopg2-binary==2.9.13
redis==8.1.0
celery==5.7.0
gunicorn==27.0.1
python-dateutil==2.9.0.post0
tqdm==4.70.1
orjson==3.13.0
protobuf==7.36.2
grpcio==1.85.3
beautifulsoup4==4.15.0
markdown==3.11.3
feedparser==6.0.14
omegaconf==2.4.0
fire==0.7.1
docopt==0.6.2
wget==3.2
sgmllib3k==1.0.0
setuptools==84.2.1
wheel==0.48.0
""".split()

BIG_PROJECT = "bigdata"

PEER_PACKAGES = {
    "devpi": ["devpi-server==6.20.3", "devpi-client==7.3.0"],
    "proxpi": ["proxpi==1.3.1", "gunicorn==27.0.1"],
}


# --------------------------------------------------------------------------
# small helpers


def log(*a):
    print("[bench %s]" % time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


CHILD_TMPDIR = None  # set to a tmpfs dir by Bench: the disk here is far slower than tmpfs


def clean_env(**extra) -> dict:
    """The environment every client and server runs with: no PIP_*/UV_*
    variables, no machine-wide pip config, no proxies for loopback."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "UV_")) and k.lower() not in (
               "http_proxy", "https_proxy", "all_proxy", "virtual_env")}
    env["PIP_CONFIG_FILE"] = "/dev/null"
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONUNBUFFERED"] = "1"
    if CHILD_TMPDIR:
        env["TMPDIR"] = str(CHILD_TMPDIR)
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url, accept="*/*", timeout=60) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with _opener.open(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers or {})


def wait_http(url, timeout=60, proc=None, ok=lambda status: status < 500):
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


# --------------------------------------------------------------------------
# processes: everything we start is tracked and stopped on exit


class Procs:
    running: list[subprocess.Popen] = []

    @classmethod
    def start(cls, argv, log_path=None, env=None, cwd=None) -> subprocess.Popen:
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL
        p = subprocess.Popen([str(a) for a in argv], stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=env or clean_env(), cwd=cwd,
                             start_new_session=True)
        if log_path:
            out.close()
        cls.running.append(p)
        return p

    @classmethod
    def stop(cls, p: subprocess.Popen, sig=signal.SIGTERM, timeout=15):
        if p is None:
            return
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, sig)  # its own process group (start_new_session)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
        # leftovers of the group (e.g. gunicorn workers)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)
        if p in cls.running:
            cls.running.remove(p)

    @classmethod
    def stop_all(cls):
        for p in list(reversed(cls.running)):
            with contextlib.suppress(Exception):
                cls.stop(p, timeout=5)


def run(argv, env=None, check=True, timeout=None, quiet=True, cwd=None):
    r = subprocess.run([str(a) for a in argv], env=env or clean_env(), cwd=cwd,
                       stdout=subprocess.PIPE if quiet else None,
                       stderr=subprocess.STDOUT if quiet else None,
                       stdin=subprocess.DEVNULL, timeout=timeout, start_new_session=True)
    if check and r.returncode != 0:
        out = r.stdout.decode(errors="replace")[-3000:] if quiet else ""
        raise RuntimeError("command failed (%s): %s\n%s" % (r.returncode, " ".join(map(str, argv)), out))
    return r


# --------------------------------------------------------------------------
# process tree memory


def _ppid_map() -> dict[int, int]:
    m = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d, "rb") as f:
                    s = f.read()
                m[int(d)] = int(s[s.rindex(b")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    return m


def tree_pids(root: int) -> list[int]:
    m = _ppid_map()
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        if p in m or p == root:
            out.append(p)
        todo.extend(c for c, pp in m.items() if pp == p)
    return out


def _status_kb(pid, field) -> int:
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mb(root, field="VmRSS") -> float:
    return sum(_status_kb(p, field) for p in tree_pids(root)) / 1024.0


def reset_peak(root):
    for p in tree_pids(root):
        with contextlib.suppress(OSError):
            with open("/proc/%d/clear_refs" % p, "w") as f:
                f.write("5")  # resets VmHWM to the current RSS


# --------------------------------------------------------------------------
# corpus


def build_corpus(data: Path, big_mib: int) -> dict:
    corpus = data / "corpus"
    files = corpus / "files"
    files.mkdir(parents=True, exist_ok=True)
    stamp = corpus / "downloaded.json"
    want = sorted(CORPUS_REQUIREMENTS)
    if not stamp.exists() or json.loads(stamp.read_text()).get("requirements") != want:
        log("downloading the corpus (pip download of %d requirements + deps) into %s" % (len(want), files))
        req = corpus / "requirements.in"
        req.write_text("\n".join(want) + "\n")
        # The public index through pip's ordinary client, no machine-wide config.
        run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
             "-d", files, "-r", req], timeout=1800)
        stamp.write_text(json.dumps({"requirements": want}))
    big = make_big_wheel(files, big_mib)
    return write_index(corpus, big)


def make_big_wheel(files: Path, mib: int) -> Path:
    """A real wheel: one big stored member of incompressible bytes, valid
    METADATA/WHEEL/RECORD, so uv and pip can read its metadata."""
    version = "1.0.%d" % mib
    name = "%s-%s-py3-none-any.whl" % (BIG_PROJECT, version)
    path = files / name
    if path.exists():
        return path
    log("generating %s (%d MiB)" % (name, mib))
    tmp = path.with_suffix(".tmp")
    di = "%s-%s.dist-info" % (BIG_PROJECT, version)
    record = []

    def rec(arcname, data_hash, size):
        record.append("%s,sha256=%s,%d" % (
            arcname, base64.urlsafe_b64encode(data_hash).rstrip(b"=").decode(), size))

    def add(zf, arcname, text):
        b = text.encode()
        zf.writestr(zipfile.ZipInfo(arcname, (2024, 1, 1, 0, 0, 0)), b)
        rec(arcname, hashlib.sha256(b).digest(), len(b))

    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        add(zf, "%s/__init__.py" % BIG_PROJECT, '"""A big blob for benchmarks."""\n')
        zi = zipfile.ZipInfo("%s/blob.bin" % BIG_PROJECT, (2024, 1, 1, 0, 0, 0))
        zi.compress_type = zipfile.ZIP_STORED
        h = hashlib.sha256()
        chunk = 4 << 20
        with zf.open(zi, "w", force_zip64=True) as w:
            for _ in range(mib * (1 << 20) // chunk):
                b = os.urandom(chunk)
                h.update(b)
                w.write(b)
        rec(zi.filename, h.digest(), mib << 20)
        add(zf, di + "/METADATA",
            "Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: %d MiB of random bytes\n"
            "Requires-Python: >=3.8\n" % (BIG_PROJECT, version, mib))
        add(zf, di + "/WHEEL", "Wheel-Version: 1.0\nGenerator: pypiproxy-bench\n"
            "Root-Is-Purelib: true\nTag: py3-none-any\n")
        record.append(di + "/RECORD,,")
        zf.writestr(zipfile.ZipInfo(di + "/RECORD", (2024, 1, 1, 0, 0, 0)), "\n".join(record) + "\n")
    tmp.rename(path)
    return path


def _dist_name_version(fn: str):
    if fn.endswith(".whl"):
        parts = fn[:-4].split("-")
        return parts[0], parts[1]
    for ext in (".tar.gz", ".zip", ".tar.bz2"):
        if fn.endswith(ext):
            n, v = fn[:-len(ext)].rsplit("-", 1)
            return n, v
    return None, None


def _requires_python(path: Path):
    try:
        if path.name.endswith(".whl"):
            with zipfile.ZipFile(path) as z:
                meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
                text = z.read(meta).decode("utf-8", "replace")
        elif path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as z:
                meta = min((n for n in z.namelist() if n.endswith("PKG-INFO")), key=len)
                text = z.read(meta).decode("utf-8", "replace")
        else:
            with tarfile.open(path) as t:
                meta = min((m for m in t.getmembers() if m.name.endswith("PKG-INFO")), key=lambda m: len(m.name))
                text = t.extractfile(meta).read().decode("utf-8", "replace")
    except (StopIteration, ValueError, OSError, zipfile.BadZipFile, tarfile.TarError):
        return None
    head = text.split("\n\n", 1)[0]
    m = re.search(r"^Requires-Python:\s*(.+)$", head, re.M)
    return m.group(1).strip() if m else None


def write_index(corpus: Path, big: Path) -> dict:
    """A static PEP 503 index (HTML, sha256 fragments, data-requires-python)."""
    files = corpus / "files"
    cache_path = corpus / "hashes.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    projects: dict[str, list] = {}
    dists = []
    for p in sorted(files.iterdir()):
        name, version = _dist_name_version(p.name)
        if not name or (normalize(name) == BIG_PROJECT and p.name != big.name):
            continue  # only the big file of the size asked for is listed
        st = p.stat()
        key = "%s:%d:%d" % (p.name, st.st_size, st.st_mtime_ns)
        if key not in cache:
            h = hashlib.sha256()
            with open(p, "rb") as f:
                while b := f.read(1 << 20):
                    h.update(b)
            cache[key] = {"sha256": h.hexdigest(), "requires_python": _requires_python(p)}
        info = cache[key]
        projects.setdefault(normalize(name), []).append((p.name, info, st.st_size))
        if normalize(name) != BIG_PROJECT:
            dists.append((normalize(name), version))
    cache_path.write_text(json.dumps(cache, indent=0))
    simple = corpus / "simple"
    if simple.exists():
        shutil.rmtree(simple)
    simple.mkdir()
    root = ['<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0">'
            '<title>Simple index</title></head><body>']
    for proj in sorted(projects):
        root.append('<a href="%s/">%s</a><br>' % (proj, proj))
        lines = ['<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0">'
                 '<title>Links for %s</title></head><body><h1>Links for %s</h1>' % (proj, proj)]
        for fn, info, _size in projects[proj]:
            rp = info["requires_python"]
            attr = ' data-requires-python="%s"' % html.escape(rp) if rp else ""
            lines.append('<a href="../../files/%s#sha256=%s"%s>%s</a><br>' % (
                urllib.parse.quote(fn), info["sha256"], attr, html.escape(fn)))
        lines.append("</body></html>\n")
        (simple / proj).mkdir()
        (simple / proj / "index.html").write_text("\n".join(lines))
    root.append("</body></html>\n")
    (simple / "index.html").write_text("\n".join(root))
    reqs = corpus / "install-requirements.txt"
    reqs.write_text("".join("%s==%s\n" % d for d in sorted(set(dists))))
    total = sum(s for ps in projects.values() for _, _, s in ps) - big.stat().st_size
    return {
        "dir": corpus, "requirements": reqs, "projects": sorted(projects),
        "n_dists": len(dists), "corpus_bytes": total,
        "big_name": big.name, "big_size": big.stat().st_size,
        "n_sdists": sum(1 for ps in projects.values() for fn, _, _ in ps if not fn.endswith(".whl")),
    }


# --------------------------------------------------------------------------
# nginx: the static upstream and the direct baseline


class Nginx:
    def __init__(self, corpus: Path, work: Path, slow_rate_mbps: float = 0):
        self.corpus = corpus
        self.slow_rate = int(slow_rate_mbps * 1e6)
        self.dir = work / "nginx"
        self.port = free_port()
        self.proc = None
        self.access_log = self.dir / "access.log"

    @property
    def url(self):
        return "http://127.0.0.1:%d/simple/" % self.port

    @property
    def slow_url(self):
        """The same index, its files sent at most at --herd-rate per connection."""
        return "http://127.0.0.1:%d/slow/simple/" % self.port

    def start(self):
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(nginx):
            raise SystemExit("nginx not found: apt-get install nginx")
        self.dir.mkdir(parents=True, exist_ok=True)
        for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.dir / d).mkdir(exist_ok=True)
        conf = self.dir / "nginx.conf"
        conf.write_text("""
daemon off;
master_process on;
worker_processes auto;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    types {{ text/html html; application/octet-stream whl gz zip bz2; }}
    default_type application/octet-stream;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    log_format bench '$request_method $uri $status $body_bytes_sent $request_time $http_range';
    access_log {d}/access.log bench;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    absolute_redirect off;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root};
        location /simple/ {{ index index.html; }}
        location /files/ {{ }}
        location /slow/ {{ alias {root}/; index index.html; limit_rate {rate}; }}
    }}
}}
""".format(d=self.dir, port=self.port, root=self.corpus, rate=self.slow_rate))
        self.proc = Procs.start([nginx, "-c", conf, "-p", self.dir], self.dir / "stderr.log")
        wait_http(self.url, 20, self.proc, ok=lambda s: s == 200)

    def stop(self):
        Procs.stop(self.proc, signal.SIGQUIT)
        self.proc = None

    def log_offset(self) -> int:
        try:
            return self.access_log.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset) -> list[list[str]]:
        with open(self.access_log, "rb") as f:
            f.seek(offset)
            return [line.decode(errors="replace").split() for line in f.read().splitlines()]


# --------------------------------------------------------------------------
# targets


class Target:
    """A thing that serves the corpus: start/stop, index_url, cold reset, rss."""

    name = "?"
    is_proxy = True
    sticky_port = False  # keep the same port across restarts
    slow = False  # use the rate-limited upstream (herd section)

    @property
    def upstream(self) -> str:
        return self.bench.nginx.slow_url if self.slow else self.bench.nginx.url

    def __init__(self, bench):
        self.bench = bench
        self.work = bench.work / self.name
        self.cache = bench.shm / ("%s-cache" % self.name)
        self.proc = None
        self.port = None
        self.peak_rss_mb = 0.0
        self.error = None

    # to override
    def prepare(self):
        """Install the software (once per run of the benchmark)."""

    def _start(self):
        raise NotImplementedError

    @property
    def index_url(self) -> str:
        raise NotImplementedError

    # common
    def start(self):
        self.work.mkdir(parents=True, exist_ok=True)
        self.cache.mkdir(parents=True, exist_ok=True)
        if self.port is None or not self.sticky_port:
            self.port = free_port()
        self._start()

    def stop(self):
        if self.proc is not None:
            self.peak_rss_mb = max(self.peak_rss_mb, self.peak_mb())
            Procs.stop(self.proc)
            self.proc = None

    def reset(self):
        """Stop, empty the cache, start: a cold proxy."""
        self.stop()
        if self.cache.exists():
            shutil.rmtree(self.cache)
        self.start()

    def rss_mb(self) -> float:
        return tree_rss_mb(self.proc.pid) if self.proc else 0.0

    def peak_mb(self) -> float:
        return tree_rss_mb(self.proc.pid, "VmHWM") if self.proc else 0.0

    def reset_peak(self):
        if self.proc:
            reset_peak(self.proc.pid)

    def logfile(self) -> Path:
        return self.work / "server.log"


class Direct(Target):
    name = "direct"
    is_proxy = False

    def _start(self):
        pass

    def reset(self):
        pass

    def stop(self):
        if self.bench.nginx.proc:
            self.peak_rss_mb = max(self.peak_rss_mb, self.peak_mb())

    @property
    def proc(self):
        return self.bench.nginx.proc

    @proc.setter
    def proc(self, v):
        pass

    @property
    def index_url(self):
        return self.upstream


def ensure_venv(path: Path, packages: list[str], marker_extra="") -> Path:
    """A virtualenv with packages from the package registry (pip's ordinary
    client, no machine-wide config); reused while the spec is unchanged."""
    marker = path / ".bench-spec"
    spec = json.dumps([packages, marker_extra, sys.version])
    if marker.exists() and marker.read_text() == spec:
        return path
    if path.exists():
        shutil.rmtree(path)
    log("creating venv %s: %s" % (path, " ".join(packages)))
    run([sys.executable, "-m", "venv", path])
    run([path / "bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check"] + packages,
        timeout=1800)
    marker.write_text(spec)
    return path


class PyPIProxy(Target):
    name = "pypiproxy"

    def __init__(self, bench, upstream=None, name=None, sticky_port=False):
        if name:
            self.name = name
        super().__init__(bench)
        self._upstream = upstream
        self.sticky_port = sticky_port

    def prepare(self):
        self.venv = self.bench.pypiproxy_venv()

    @property
    def upstream(self):
        return self._upstream or super().upstream

    def _start(self):
        self.proc = Procs.start(
            [self.venv / "bin/twistd", "-n", "--pidfile=", "pypiproxy", "--listen", "tcp:%d:interface=127.0.0.1" % self.port,
             "--upstream", self.upstream, "--cache-dir", self.cache,
             # Access log on, in a file of its own (as nginx's is): see the README.
             "--access-log", str(self.work / ("access-%d.log" % self.port))],
            self.logfile(), cwd=self.work)
        wait_http("http://127.0.0.1:%d/+health" % self.port, 30, self.proc, ok=lambda s: s == 200)

    @property
    def index_url(self):
        return "http://127.0.0.1:%d/simple/" % self.port


class Devpi(Target):
    name = "devpi"

    def prepare(self):
        self.venv = ensure_venv(self.bench.data / "venvs" / "devpi", PEER_PACKAGES["devpi"])
        # A template server dir with the mirror index, copied for each cold start.
        self.template = self.work / "template"
        if self.template.exists():
            shutil.rmtree(self.template)
        self.work.mkdir(parents=True, exist_ok=True)
        run([self.venv / "bin/devpi-init", "--serverdir", self.template, "--no-root-pypi"], timeout=120)
        self.port = free_port()
        self.proc = Procs.start(self._server_argv(self.template), self.logfile())
        wait_http("http://127.0.0.1:%d/+api" % self.port, 60, self.proc, ok=lambda s: s == 200)
        client = ["--clientdir", self.work / "client"]
        d = self.venv / "bin/devpi"
        run([d, "use", "http://127.0.0.1:%d" % self.port] + client)
        run([d, "login", "root", "--password", ""] + client)
        run([d, "index", "-c", "root/mirror", "type=mirror",
             "mirror_url=%s" % self.bench.nginx.url] + client)
        run([d, "index", "-c", "root/slow", "type=mirror",
             "mirror_url=%s" % self.bench.nginx.slow_url] + client)
        Procs.stop(self.proc)
        self.proc = None

    def _server_argv(self, serverdir):
        return [self.venv / "bin/devpi-server", "--serverdir", serverdir, "--host", "127.0.0.1",
                "--port", self.port]

    def _start(self):
        if not any(self.cache.iterdir()):
            shutil.rmtree(self.cache)
            shutil.copytree(self.template, self.cache)
        self.proc = Procs.start(self._server_argv(self.cache), self.logfile())
        wait_http("http://127.0.0.1:%d/+api" % self.port, 60, self.proc, ok=lambda s: s == 200)

    @property
    def index_url(self):
        return "http://127.0.0.1:%d/root/%s/+simple/" % (self.port, "slow" if self.slow else "mirror")


class Proxpi(Target):
    name = "proxpi"

    def prepare(self):
        self.venv = ensure_venv(self.bench.data / "venvs" / "proxpi", PEER_PACKAGES["proxpi"])

    def _start(self):
        env = clean_env(PROXPI_INDEX_URL=self.upstream, PROXPI_CACHE_DIR=str(self.cache),
                        PROXPI_EXTRA_INDEX_URLS="")
        # One worker with threads (its caches live in the worker's memory).
        self.proc = Procs.start(
            [self.venv / "bin/gunicorn", "--workers", "1", "--threads", "16",
             "--bind", "127.0.0.1:%d" % self.port, "--timeout", "300", "proxpi.server:app"],
            self.logfile(), env=env)
        wait_http("http://127.0.0.1:%d/health" % self.port, 30, self.proc, ok=lambda s: s == 200)

    @property
    def index_url(self):
        return "http://127.0.0.1:%d/index/" % self.port


TARGET_CLASSES = {"direct": Direct, "pypiproxy": PyPIProxy, "devpi": Devpi, "proxpi": Proxpi}


# --------------------------------------------------------------------------
# delaying TCP relay (simulated RTT between tiers)


def relay_main(listen_port: int, dest_port: int, one_way_ms: float):
    delay = one_way_ms / 1000.0

    async def pipe(reader, writer, q_delay):
        loop = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue(maxsize=512)

        async def sender():
            try:
                while True:
                    t, data = await q.get()
                    wait = t - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    if data is None:
                        if writer.can_write_eof():
                            writer.write_eof()
                        return
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                return

        task = asyncio.ensure_future(sender())
        try:
            while True:
                data = await reader.read(262144)
                await q.put((loop.time() + q_delay, data or None))
                if not data:
                    break
        except (ConnectionError, OSError):
            await q.put((loop.time(), None))
        await task

    conns = [0]

    async def handle(creader, cwriter):
        conns[0] += 1
        if conns[0] % 50 == 0:
            print("connections: %d" % conns[0], flush=True)
        # Opening the connection to the far side costs one round trip.
        try:
            await asyncio.sleep(2 * delay)
            sreader, swriter = await asyncio.open_connection("127.0.0.1", dest_port)
        except OSError:
            cwriter.close()
            return
        for w in (cwriter, swriter):
            w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(pipe(creader, swriter, delay), pipe(sreader, cwriter, delay),
                             return_exceptions=True)
        for w in (cwriter, swriter):
            with contextlib.suppress(Exception):
                w.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", listen_port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class Relay:
    def __init__(self, work: Path, dest_port: int, rtt_ms: float):
        self.port = free_port()
        self.proc = Procs.start([sys.executable, __file__, "--_relay", str(self.port), str(dest_port),
                                 str(rtt_ms / 2.0)], work / ("relay-%d.log" % self.port))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
                return
            time.sleep(0.05)
        raise RuntimeError("relay did not start")

    def stop(self):
        Procs.stop(self.proc)


# --------------------------------------------------------------------------
# the benchmark


class Bench:
    def __init__(self, args):
        self.args = args
        self.data = Path(args.data_dir).resolve()
        self.data.mkdir(parents=True, exist_ok=True)
        # Logs, caches, install targets and the clients' temp files all live on
        # tmpfs: uv --no-cache unpacks into TMPDIR, and this machine's disk makes
        # that 4x slower and very noisy.
        self.shm = Path(tempfile.mkdtemp(prefix="pypiproxy-bench-", dir="/dev/shm"
                                         if os.path.isdir("/dev/shm") else None))
        self.tmp = self.work = self.shm
        global CHILD_TMPDIR
        CHILD_TMPDIR = self.shm / "tmp"
        CHILD_TMPDIR.mkdir()
        self.big_sha256 = None
        self.results: dict = {"meta": {}, "metrics": {}, "runs": {}, "tiers": {}, "errors": []}
        self.nginx = None
        self.targets: list[Target] = []
        self._pypiproxy_venv = None
        self.uv = None
        self.install_counter = 0

    # ---- setup

    def find_uv(self) -> str:
        if self.args.uv:
            return self.args.uv
        for cand in (shutil.which("uv"), "/work/venv/bin/uv"):
            if cand and os.access(cand, os.X_OK):
                return cand
        venv = ensure_venv(self.data / "venvs" / "tools", ["uv"])
        return str(venv / "bin/uv")

    def pypiproxy_venv(self) -> Path:
        """A non-editable install of the repo this script lives in, in its own venv.
        The repo is copied first so that the build leaves nothing in it."""
        if self._pypiproxy_venv:
            return self._pypiproxy_venv
        venv = self.data / "venvs" / "pypiproxy"
        src = self.tmp / "pypiproxy-src"
        shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
            ".git", "build", "dist", "*.egg-info", "__pycache__", ".venv", "venv", "benchmarks"))
        h = hashlib.sha256()
        for f in sorted(src.rglob("*")):
            if f.is_file():
                h.update(str(f.relative_to(src)).encode() + b"\0" + f.read_bytes())
        self.results["meta"]["pypiproxy_source_sha256"] = h.hexdigest()[:16]
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True)
        self.results["meta"]["pypiproxy_git_head"] = head.stdout.strip() or None
        ensure_venv(venv, ["setuptools>=68", "wheel"], marker_extra="base")
        log("installing pypiproxy from %s (non-editable)" % REPO)
        pip = [venv / "bin/python", "-m", "pip", "--disable-pip-version-check"]
        wheels = self.tmp / "pypiproxy-wheel"
        run(pip + ["wheel", "-q", "--no-deps", "-w", wheels, src], timeout=600)
        whl = next(wheels.glob("*.whl"))
        run(pip + ["install", "-q", whl], timeout=1800)  # dependencies, fetched the first time only
        run(pip + ["install", "-q", "--force-reinstall", "--no-deps", whl], timeout=600)
        self._pypiproxy_venv = venv
        return venv

    def setup(self):
        a = self.args
        self.uv = self.find_uv()
        uv_version = run([self.uv, "--version"]).stdout.decode().strip()
        self.corpus = build_corpus(self.data, a.big_mib)
        log("corpus: %d distributions (%d sdists), %.0f MB; big file %s (%.0f MB)" % (
            self.corpus["n_dists"], self.corpus["n_sdists"], self.corpus["corpus_bytes"] / 1e6,
            self.corpus["big_name"], self.corpus["big_size"] / 1e6))
        self.nginx = Nginx(self.corpus["dir"], self.work, a.herd_rate)
        self.nginx.start()
        self.wrk = shutil.which("wrk")
        self.curl = shutil.which("curl")
        self.results["meta"].update({
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "python": sys.version.split()[0],
            "uv": uv_version, "nproc": os.cpu_count(), "runs": a.runs, "quick": a.quick,
            "n_dists": self.corpus["n_dists"], "n_sdists": self.corpus["n_sdists"],
            "corpus_mb": round(self.corpus["corpus_bytes"] / 1e6, 1),
            "big_file": self.corpus["big_name"], "big_mb": round(self.corpus["big_size"] / 1e6, 1),
            "load_generator": "wrk" if self.wrk else "builtin", "targets": a.targets,
            "herd_clients": a.herd_clients, "herd_rate_mb_s": a.herd_rate, "rtts_ms": a.rtts,
        })
        for name in a.targets:
            t = TARGET_CLASSES[name](self)
            try:
                t.prepare()
                t.reset()
            except Exception as e:  # noqa: BLE001 - a target that fails is reported, the rest goes on
                self.fail(t, "setup", e)
                with contextlib.suppress(Exception):
                    t.stop()
                continue
            self.targets.append(t)
            log("target %s ready at %s" % (t.name, t.index_url))

    def fail(self, target, section, exc):
        msg = "%s: %s: %s" % (target.name if target else "-", section, str(exc).strip()[-2000:])
        log("ERROR " + msg)
        tail = ""
        if target is not None and target.logfile().exists():
            tail = target.logfile().read_text(errors="replace")[-2000:]
        self.results["errors"].append({"target": target.name if target else None,
                                       "section": section, "error": str(exc)[-4000:],
                                       "server_log_tail": tail})

    def cleanup(self):
        for t in self.targets:
            with contextlib.suppress(Exception):
                t.stop()
        if self.nginx:
            with contextlib.suppress(Exception):
                self.nginx.stop()
        Procs.stop_all()
        if self.args.keep:
            log("kept %s" % self.shm)
        else:
            shutil.rmtree(self.shm, ignore_errors=True)

    # ---- recording

    def record(self, target, metric, value):
        self.results["runs"].setdefault(metric, {}).setdefault(target.name, []).append(value)

    def finish_metrics(self):
        for metric, per in self.results["runs"].items():
            for tname, vals in per.items():
                self.results["metrics"].setdefault(metric, {})[tname] = median(vals)
        for t in self.targets:
            t.stop()
            self.results["metrics"].setdefault("peak_rss_mb", {})[t.name] = round(t.peak_rss_mb, 1)

    # ---- clients

    def uv_install(self, index_url: str, label: str) -> float | None:
        self.install_counter += 1
        target_dir = self.shm / ("site-%d" % self.install_counter)
        argv = [self.uv, "pip", "install", "--no-config", "--no-cache", "--quiet",
                "--python", self.args.python, "--target", target_dir, "--link-mode", "copy",
                "--index-url", index_url, "-r", self.corpus["requirements"]]
        t0 = time.perf_counter()
        r = subprocess.run([str(a) for a in argv], env=clean_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                           timeout=self.args.install_timeout)
        dt = time.perf_counter() - t0
        shutil.rmtree(target_dir, ignore_errors=True)
        if r.returncode != 0:
            raise RuntimeError("uv pip install (%s) failed after %.1fs: %s" % (
                label, dt, r.stdout.decode(errors="replace")[-3000:]))
        log("  %-28s %7.2f s" % (label, dt))
        return dt

    def big_url(self, t: Target) -> str:
        page = t.index_url + BIG_PROJECT + "/"
        status, body, _ = http_get(page, accept="text/html")
        if status != 200:
            raise RuntimeError("GET %s -> %s" % (page, status))
        for href in re.findall(r'href="([^"]+)"', body.decode()):
            if self.corpus["big_name"] in urllib.parse.unquote(href):
                return urllib.parse.urljoin(page, href.split("#")[0].replace("&amp;", "&"))
        raise RuntimeError("%s not listed on %s" % (self.corpus["big_name"], page))

    def curl_argv(self, url):
        return [self.curl, "-sS", "-L", "-o", "/dev/null", "-H", "Accept: */*", "--max-time", "600",
                "-w", r"%{http_code} %{time_starttransfer} %{time_total} %{size_download} %{num_redirects}\n",
                url]

    def download(self, url) -> dict:
        """One download: status, time to first byte, total time, MB/s."""
        if self.curl:
            r = subprocess.run(self.curl_argv(url), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=clean_env(), timeout=700)
            return self._parse_curl(r.stdout.decode(), r.stderr.decode())
        return python_download(url)

    def _parse_curl(self, out, err):
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

    # ---- sections

    def section_install(self):
        log("== (1,2) uv pip install --no-cache of %d distributions: cold and warm" % self.corpus["n_dists"])
        # one discarded install first: page cache, uv binary, interpreter files
        self.uv_install(self.nginx.url, "priming (discarded)")
        for i in range(self.args.runs):
            for t in self.targets:
                try:
                    t.reset()
                    self.record(t, "install_cold_s", self.uv_install(t.index_url, "%s cold #%d" % (t.name, i + 1)))
                    self.record(t, "install_warm_s", self.uv_install(t.index_url, "%s warm #%d" % (t.name, i + 1)))
                except Exception as e:  # noqa: BLE001
                    self.fail(t, "install", e)

    def section_bigfile(self):
        log("== (3,4) big file %s, cold and warm" % self.corpus["big_name"])
        want = self.corpus["big_size"]
        for i in range(self.args.runs):
            for t in self.targets:
                try:
                    t.reset()
                    url = self.big_url(t)
                    for phase in ("cold", "warm"):
                        d = self.download(url)
                        if d.get("status") != 200 or d.get("size") != want:
                            raise RuntimeError("%s download: %s" % (phase, d))
                        log("  %-28s ttfb %7.1f ms  %7.1f MB/s  (%.2f s%s)" % (
                            "%s %s #%d" % (t.name, phase, i + 1), d["ttfb"] * 1000, d["mbps"], d["total"],
                            ", redirected" if d.get("redirects") else ""))
                        self.record(t, "big_%s_ttfb_ms" % phase, d["ttfb"] * 1000)
                        self.record(t, "big_%s_mbps" % phase, d["mbps"])
                        self.record(t, "big_%s_s" % phase, d["total"])
                        if d.get("redirects"):
                            self.record(t, "big_%s_redirected" % phase, 1)
                except Exception as e:  # noqa: BLE001
                    self.fail(t, "bigfile", e)
            try:
                self.relay_floor()
            except Exception as e:  # noqa: BLE001
                self.fail(HashingRelay, "bigfile", e)

    def relay_floor(self):
        big = self.corpus["dir"] / "files" / self.corpus["big_name"]
        if self.big_sha256 is None:
            with open(big, "rb") as f:
                self.big_sha256 = hashlib.file_digest(f, "sha256").hexdigest()
        relay = HashingRelay(self.nginx.port, "/files/" + urllib.parse.quote(big.name), self.shm / "relay.part")
        d = self.download(relay.url)
        relay.thread.join(60)
        if d.get("status") != 200 or d.get("size") != self.corpus["big_size"] or relay.sha256 != self.big_sha256:
            raise RuntimeError("relay download: %s, sha256 %s" % (d, relay.sha256))
        log("  %-28s %7.1f MB/s  (%.2f s)" % ("hashing relay (floor)", d["mbps"], d["total"]))
        self.record(HashingRelay, "big_cold_mbps", d["mbps"])

    def section_pages(self):
        projects = [p for p in self.corpus["projects"] if p != BIG_PROJECT]
        log("== (5) index pages: %d cached project pages, concurrency %s, %s" % (
            len(projects), self.args.concurrency, "wrk" if self.wrk else "builtin load generator"))
        for t in self.targets:
            try:
                for p in projects:  # fill the cache (and check every page works)
                    status, _, _ = http_get(t.index_url + p + "/", accept=UV_ACCEPT)
                    if status != 200:
                        raise RuntimeError("GET %s%s/ -> %s" % (t.index_url, p, status))
            except Exception as e:  # noqa: BLE001
                self.fail(t, "pages", e)
        for i in range(self.args.runs):
            for c in self.args.concurrency:
                for t in self.targets:
                    try:
                        r = self.load(t.index_url, projects, c, self.args.duration)
                        log("  %-28s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  errors %d  non-2xx %d" % (
                            "%s c=%d #%d" % (t.name, c, i + 1), r["rps"], r["p50_ms"], r["p99_ms"],
                            r["errors"], r["non2xx"]))
                        self.record(t, "pages_c%d_rps" % c, r["rps"])
                        self.record(t, "pages_c%d_p99_ms" % c, r["p99_ms"])
                        self.record(t, "pages_c%d_errors" % c, r["errors"] + r["non2xx"])
                    except Exception as e:  # noqa: BLE001
                        self.fail(t, "pages", e)

    def load(self, index_url, projects, conc, duration) -> dict:
        u = urllib.parse.urlsplit(index_url)
        paths = [u.path + p + "/" for p in projects]
        if not self.wrk:
            return builtin_load(u.hostname, u.port, paths, conc, duration, UV_ACCEPT)
        script = self.tmp / "pages.lua"
        script.write_text(WRK_LUA % {
            "paths": ", ".join('"%s"' % p for p in paths), "accept": UV_ACCEPT})
        argv = [self.wrk, "-t", str(min(2, conc) if self.args.wrk_threads is None else self.args.wrk_threads),
                "-c", str(conc), "-d", "%ds" % duration, "--timeout", "5s", "-s", script,
                "http://%s:%d" % (u.hostname, u.port)]
        r = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env=clean_env(), timeout=duration + 60)
        out = r.stdout.decode(errors="replace")
        m = re.search(r"^JSON (\{.*\})$", out, re.M)
        if not m:
            raise RuntimeError("wrk: %s" % out[-2000:])
        d = json.loads(m.group(1))
        return {"rps": d["requests"] / (d["duration_us"] / 1e6), "p50_ms": d["p50_us"] / 1000,
                "p99_ms": d["p99_us"] / 1000, "errors": d["errors"], "non2xx": d["status"]}

    def section_herd(self):
        n = self.args.herd_clients
        rate = self.args.herd_rate
        log("== (6) %d clients on one cold big file at once (upstream sends it at %s per connection)" % (
            n, "%g MB/s" % rate if rate else "full speed"))
        skip = set()
        for i in range(self.args.runs):
            for t in self.targets:
                if t.name in skip:
                    continue
                try:
                    t.slow = bool(rate)
                    path = urllib.parse.urlsplit(t.upstream).path.replace("/simple/", "/files/") + \
                        self.corpus["big_name"]
                    # the reference: one client alone on the same cold file
                    t.reset()
                    d = self.download(self.big_url(t))
                    if d.get("status") != 200 or d.get("size") != self.corpus["big_size"]:
                        raise RuntimeError("single download: %s" % d)
                    self.record(t, "herd_single_s", d["total"])
                    t.reset()
                    url = self.big_url(t)
                    time.sleep(0.2)
                    t.reset_peak()
                    off = self.nginx.log_offset()
                    t0 = time.perf_counter()
                    if self.curl:
                        procs = []
                        try:
                            for _ in range(n):
                                procs.append(subprocess.Popen(self.curl_argv(url), stdout=subprocess.PIPE,
                                                              stderr=subprocess.PIPE, env=clean_env()))
                            outs = [self._parse_curl(*(x.decode() for x in p.communicate(timeout=900)))
                                    for p in procs]
                        finally:
                            for p in procs:
                                if p.poll() is None:
                                    p.kill()
                                    p.wait()
                    else:
                        outs = threaded(lambda: python_download(url), n)
                    total = time.perf_counter() - t0
                    peak = t.peak_mb()
                    fetches = self._upstream_gets(off, path)  # waits for background fetches too
                    bad = [o for o in outs if o.get("status") != 200 or o.get("size") != self.corpus["big_size"]]
                    slowest = max(o.get("total") or 0 for o in outs)
                    x = slowest / d["total"]
                    log("  %-28s upstream GETs %d  total %.2f s  slowest %.2f s = %.2fx single (%.2f s)  "
                        "peak RSS %.0f MB%s" % ("%s #%d" % (t.name, i + 1), fetches, total, slowest, x,
                                                d["total"], peak,
                                                "  FAILED %d: %s" % (len(bad), bad[0]) if bad else ""))
                    self.record(t, "herd_upstream_gets", fetches)
                    self.record(t, "herd_total_s", total)
                    self.record(t, "herd_slowest_x_single", x)
                    self.record(t, "herd_peak_rss_mb", peak)
                    self.record(t, "herd_failed_clients", len(bad))
                    t.peak_rss_mb = max(t.peak_rss_mb, peak)
                    if total > self.args.herd_cap and i + 1 < self.args.runs:
                        log("  %s took over %g s: measured once (--herd-cap)" % (t.name, self.args.herd_cap))
                        skip.add(t.name)
                except Exception as e:  # noqa: BLE001
                    self.fail(t, "herd", e)
                finally:
                    t.slow = False

    def _upstream_gets(self, off, path, settle=1.0, limit=30.0) -> int:
        deadline = time.monotonic() + limit
        last, stable_since = None, time.monotonic()
        while time.monotonic() < deadline:
            n = sum(1 for f in self.nginx.log_since(off) if len(f) >= 2 and f[0] == "GET" and f[1] == path)
            if n != last:
                last, stable_since = n, time.monotonic()
            elif time.monotonic() - stable_since >= settle:
                break
            time.sleep(0.2)
        return last or 0

    def section_tiers(self):
        if "pypiproxy" not in [t.name for t in self.targets]:
            log("== (8) tiers: skipped (pypiproxy is not running)")
            return
        log("== (8) tiers: uv straight from a remote pypiproxy vs via a local pypiproxy chained to it")
        base = next(t for t in self.targets if t.name == "pypiproxy")
        base.stop()
        remote = PyPIProxy(self, name="tier-remote", sticky_port=True)
        remote.venv = base.venv
        try:
            for rtt in self.args.rtts:
                res = self.results["tiers"].setdefault(str(rtt), {})
                remote.reset()
                relay = Relay(self.work, remote.port, rtt)
                local = PyPIProxy(self, upstream="http://127.0.0.1:%d/simple/" % relay.port, name="tier-local", sticky_port=True)
                local.venv = base.venv
                try:
                    for i in range(self.args.runs):
                        lab = "rtt %g ms #%d" % (rtt, i + 1)
                        remote.reset()
                        via_relay = "http://127.0.0.1:%d/simple/" % relay.port
                        res.setdefault("remote_cold_s", []).append(self.uv_install(via_relay, "remote cold " + lab))
                        res.setdefault("remote_warm_s", []).append(self.uv_install(via_relay, "remote warm " + lab))
                        remote.reset()
                        local.reset()
                        res.setdefault("chained_cold_s", []).append(self.uv_install(local.index_url, "chained cold " + lab))
                        res.setdefault("chained_warm_s", []).append(self.uv_install(local.index_url, "chained warm " + lab))
                        local.reset()  # a new dev box behind a warm company tier
                        res.setdefault("chained_local_cold_s", []).append(
                            self.uv_install(local.index_url, "chained local-cold " + lab))
                finally:
                    local.stop()
                    relay.stop()
        except Exception as e:  # noqa: BLE001
            self.fail(remote, "tiers", e)
        finally:
            remote.stop()
        for rtt, res in self.results["tiers"].items():
            for k in list(res):
                if k.endswith("_s") and isinstance(res[k], list):
                    res[k + "_median"] = median(res[k])

    # ---- report

    def report(self) -> str:
        m = self.results["metrics"]
        names = [t.name for t in self.targets] or self.args.targets
        peers = [n for n in names if n in PEERS]
        rows = [
            ("install_cold_s", "(1) cold install, s", "low"),
            ("install_warm_s", "(2) warm install, s", "low"),
            ("big_cold_ttfb_ms", "(3) big file cold TTFB, ms", "low"),
            ("big_cold_mbps", "(3) big file cold, MB/s", "high"),
            ("big_warm_ttfb_ms", "(4) big file warm TTFB, ms", "low"),
            ("big_warm_mbps", "(4) big file warm, MB/s", "high"),
        ]
        for c in self.args.concurrency:
            rows += [("pages_c%d_rps" % c, "(5) pages c=%d, req/s" % c, "high"),
                     ("pages_c%d_p99_ms" % c, "(5) pages c=%d, p99 ms" % c, "low"),
                     ("pages_c%d_errors" % c, "(5) pages c=%d, errors" % c, "low")]
        rows += [
            ("herd_upstream_gets", "(6) %d clients: upstream GETs" % self.args.herd_clients, "low"),
            ("herd_single_s", "(6) one client alone: s", "low"),
            ("herd_total_s", "(6) %d clients: total s" % self.args.herd_clients, "low"),
            ("herd_slowest_x_single", "(6) slowest client / single", "low"),
            ("herd_peak_rss_mb", "(6) peak RSS during herd, MB", "low"),
            ("herd_failed_clients", "(6) failed clients", "low"),
            ("peak_rss_mb", "(7) peak RSS over the run, MB", "low"),
        ]

        def fmt(v):
            if v is None:
                return "-"
            if abs(v) >= 100:
                return "%.0f" % v
            if abs(v) >= 10:
                return "%.1f" % v
            return "%.2f" % v

        def ratio(a, b):
            return "%.2fx" % (a / b) if a is not None and b not in (None, 0) else "-"

        lines = []
        head = ["metric"] + names + ["%s/direct" % n for n in names if n != "direct"] + \
               ["pypiproxy/%s" % p for p in peers if "pypiproxy" in names]
        table = [head]
        for key, label, _better in rows:
            if key not in m:
                continue
            v = m[key]
            row = [label] + [fmt(v.get(n)) for n in names]
            row += [ratio(v.get(n), v.get("direct")) for n in names if n != "direct"]
            if "pypiproxy" in names:
                row += [ratio(v.get("pypiproxy"), v.get(p)) for p in peers]
            table.append(row)
        widths = [max(len(r[i]) for r in table) for i in range(len(head))]
        for j, r in enumerate(table):
            lines.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)))
            if j == 0:
                lines.append("  ".join("-" * w for w in widths))
        floor = m.get("big_cold_mbps", {})
        if floor.get("relay"):
            lines.append("")
            lines.append("(3) floor: a minimal Python relay that hashes and keeps a copy in a second thread: "
                         "%.0f MB/s = %s of direct; pypiproxy cold = %s of it" % (
                             floor["relay"], ratio(floor["relay"], floor.get("direct")),
                             ratio(floor.get("pypiproxy"), floor["relay"])))
        if self.results["tiers"]:
            lines.append("")
            lines.append("(8) uv install --no-cache, remote pypiproxy tier over a delayed link (median s)")
            cols = ["remote_cold_s", "remote_warm_s", "chained_cold_s", "chained_warm_s", "chained_local_cold_s"]
            t2 = [["RTT"] + [c[:-2] for c in cols] + ["chained/remote cold", "chained/remote warm"]]
            for rtt, res in self.results["tiers"].items():
                med = {c: res.get(c + "_median") for c in cols}
                t2.append(["%s ms" % rtt] + [fmt(med[c]) for c in cols] +
                          [ratio(med["chained_cold_s"], med["remote_cold_s"]),
                           ratio(med["chained_warm_s"], med["remote_warm_s"])])
            w2 = [max(len(r[i]) for r in t2) for i in range(len(t2[0]))]
            for r in t2:
                lines.append("  ".join(c.rjust(w2[i]) for i, c in enumerate(r)))
        goals = self.goals()
        if goals:
            lines.append("")
            lines.append("pypiproxy targets:")
            for text, ok, val in goals:
                lines.append("  [%s] %s: %s" % ({True: "met", False: "MISSED", None: "n/a"}[ok], text, val))
        if self.results["errors"]:
            lines.append("")
            lines.append("errors:")
            for e in self.results["errors"]:
                lines.append("  %s/%s: %s" % (e["target"], e["section"], e["error"].strip().splitlines()[-1][:300]
                                               if e["error"].strip() else ""))
        return "\n".join(lines)

    def goals(self):
        m = self.results["metrics"]

        def g(key, name="pypiproxy"):
            return m.get(key, {}).get(name)

        def r(key):
            a, b = g(key), g(key, "direct")
            return a / b if a is not None and b else None

        out = []

        def check(text, val, ok, shown):
            out.append((text, None if val is None else bool(ok), shown if val is not None else "not measured"))

        v = r("install_warm_s")
        check("warm install / direct <= 1.10", v, v is not None and v <= 1.10, "%.2f" % v if v else "")
        v = r("install_cold_s")
        check("cold install / direct <= 1.30", v, v is not None and v <= 1.30, "%.2f" % v if v else "")
        v = g("big_cold_ttfb_ms")
        check("big file cold TTFB < 50 ms", v, v is not None and v < 50, "%.1f ms" % v if v is not None else "")
        v = r("big_cold_mbps")
        check("big file cold >= 90% of direct MB/s", v, v is not None and v >= 0.9, "%.0f%%" % (100 * v) if v else "")
        v = r("big_warm_mbps")
        check("big file warm >= 90% of nginx MB/s", v, v is not None and v >= 0.9, "%.0f%%" % (100 * v) if v else "")
        if 10 in self.args.concurrency:
            v, p = g("pages_c10_rps"), g("pages_c10_p99_ms")
            check("index pages c=10 >= 8000 req/s, p99 < 10 ms", v,
                  v is not None and p is not None and v >= 8000 and p < 10,
                  "%.0f req/s, p99 %.2f ms" % (v, p) if v is not None else "")
        if 100 in self.args.concurrency:
            v = g("pages_c100_errors")
            check("index pages c=100: no errors", v, v == 0, "%d errors" % v if v is not None else "")
        v = g("herd_upstream_gets")
        check("%d clients on a cold big file: exactly 1 upstream fetch" % self.args.herd_clients, v, v == 1,
              "%s" % v)
        v = g("herd_slowest_x_single")
        check("slowest client within 1.3x of a single download", v, v is not None and v <= 1.3,
              "%.2fx" % v if v else "")
        v = g("herd_peak_rss_mb")
        check("peak RSS during the herd < 100 MB", v, v is not None and v < 100, "%.0f MB" % v if v else "")
        return out


WRK_LUA = r"""
local paths = { %(paths)s }
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter %% #paths) + 1], { ["Accept"] = "%(accept)s" })
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'JSON {"requests": %%d, "duration_us": %%d, "errors": %%d, "status": %%d, "p50_us": %%f, "p99_us": %%f}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


class HashingRelay:
    """The floor under any caching proxy written in Python, for section (3).

    It forwards one download from nginx to one client while a second thread computes the
    sha256 and writes the copy to tmpfs: blocking sockets, 1 MiB reads, no HTTP framework,
    no checks beyond the hash. What it reaches is what verifying and keeping a copy cost on
    this machine, set beside nginx's sendfile."""

    name = "relay"

    def __init__(self, upstream_port: int, path: str, out: Path):
        self.upstream_port, self.path, self.out = upstream_port, path, out
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d/" % self.listener.getsockname()[1]
        self.sha256 = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        client, _ = self.listener.accept()
        self.listener.close()
        with client, socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
            client.recv(65536)
            upstream.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                             % self.path.encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += upstream.recv(65536)
            head, body = head.split(b"\r\n\r\n", 1)
            length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
            client.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % length)
            chunks: "queue.SimpleQueue[bytes | None]" = queue.SimpleQueue()
            digest = hashlib.sha256()

            def keep():
                with open(self.out, "wb", buffering=0) as f:
                    while (chunk := chunks.get()) is not None:
                        digest.update(chunk)
                        f.write(chunk)

            keeper = threading.Thread(target=keep)
            keeper.start()
            got = 0
            while body:
                chunks.put(body)
                client.sendall(body)
                got += len(body)
                body = upstream.recv(1 << 20) if got < length else b""
            chunks.put(None)
            keeper.join()
            self.sha256 = digest.hexdigest()
        self.out.unlink(missing_ok=True)


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


def builtin_load(host, port, paths, conc, duration, accept) -> dict:
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
                c.request("GET", paths[i % len(paths)], headers={"Accept": accept})
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


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="/work/benchdata",
                   help="corpus and virtualenvs, kept between runs (never inside the repo) [%(default)s]")
    p.add_argument("--peers", action="store_true", help="also run devpi-server and proxpi")
    p.add_argument("--targets", nargs="+", choices=ALL_TARGETS,
                   help="explicit list of targets (default: direct pypiproxy [+ peers])")
    p.add_argument("--runs", type=int, help="runs per measurement, the median is reported [3; --quick: 1]")
    p.add_argument("--only", nargs="+", choices=SECTIONS, metavar="SECTION",
                   help="run only these sections: %s" % " ".join(SECTIONS))
    p.add_argument("--json", help="write the results as JSON to this file")
    p.add_argument("--quick", action="store_true", help="fast smoke run: 1 run, 50 MiB big file, short load runs")
    p.add_argument("--big-mib", type=int, help="size of the generated big wheel in MiB [512; --quick: 50]")
    p.add_argument("--duration", type=int, help="seconds per load run for index pages [5; --quick: 2]")
    p.add_argument("--concurrency", type=int, nargs="+", default=[10, 100])
    p.add_argument("--wrk-threads", type=int)
    p.add_argument("--herd-clients", type=int, default=20)
    p.add_argument("--herd-rate", type=float, default=100.0,
                   help="MB/s per connection the upstream sends the big file at in the herd section, "
                        "like a real uplink (0: unlimited) [%(default)s]")
    p.add_argument("--herd-cap", type=float, default=60.0,
                   help="a target whose herd run takes longer than this many seconds is run once [%(default)s]")
    p.add_argument("--rtts", type=float, nargs="+", help="link RTTs in ms for the tiers section [1 10 50]")
    p.add_argument("--python", default=sys.executable, help="interpreter uv installs for [%(default)s]")
    p.add_argument("--uv", help="uv binary (default: on PATH, else installed into DATA_DIR/venvs/tools)")
    p.add_argument("--install-timeout", type=int, default=600)
    p.add_argument("--keep", action="store_true", help="keep the temp dirs (logs, caches)")
    p.add_argument("--_relay", nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a._relay:
        return a
    a.runs = a.runs or (1 if a.quick else 3)
    a.big_mib = a.big_mib or (50 if a.quick else 512)
    a.duration = a.duration or (2 if a.quick else 5)
    a.rtts = a.rtts or ([10.0] if a.quick else [1.0, 10.0, 50.0])
    a.rtts = [int(r) if r == int(r) else r for r in a.rtts]
    if not a.targets:
        a.targets = ["direct", "pypiproxy"] + (list(PEERS) if a.peers else [])
    elif "direct" not in a.targets:
        a.targets = ["direct"] + a.targets
    if Path(a.data_dir).resolve().is_relative_to(REPO):
        p.error("--data-dir must not be inside the repository")
    return a


def main(argv=None):
    args = parse_args(argv)
    if args._relay:
        lp, dp, ms = args._relay
        relay_main(int(lp), int(dp), float(ms))
        return 0

    def on_signal(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    bench = Bench(args)
    t0 = time.monotonic()
    try:
        bench.setup()
        sections = args.only or SECTIONS
        for s in SECTIONS:
            if s in sections:
                getattr(bench, "section_" + s)()
        bench.finish_metrics()
    except KeyboardInterrupt:
        log("interrupted; stopping everything")
        bench.cleanup()
        return 130
    finally:
        bench.results["meta"]["elapsed_s"] = round(time.monotonic() - t0, 1)
        if args.json:
            Path(args.json).write_text(json.dumps(bench.results, indent=2, default=str))
        bench.cleanup()
    print(bench.report())
    if args.json:
        log("JSON written to %s" % args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
