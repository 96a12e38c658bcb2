"""The targets: what serves the corpus to the clients.

`Direct` is nginx itself (the baseline); `PyPIProxy`, `Devpi` and `Proxpi` are
proxies with nginx as their upstream, each started as a process of its own
with its cache on tmpfs.  All of them get a `Lab`: what one run shares.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from common import free_port, wait_http
from nginx import Nginx
from processes import Processes, reset_peak, tree_rss_mb
from venvs import BASELINE, Venvs

ALL_TARGETS = ("direct", "pypiproxy", BASELINE, "devpi", "proxpi")
PEERS = ("devpi", "proxpi")


@dataclass(frozen=True)
class Lab:
    """What the targets of one run share."""

    procs: Processes
    nginx: Nginx
    venvs: Venvs
    work: Path  # tmpfs: each target's logs in work/NAME, its cache in work/NAME-cache


class Target:
    """A thing that serves the corpus: start/stop, index_url, cold reset, rss."""

    name = "?"
    is_proxy = True
    sticky_port = False  # keep the same port across restarts
    slow = False  # use the rate-limited upstream (herd section)

    @property
    def upstream(self) -> str:
        return self.lab.nginx.slow_url if self.slow else self.lab.nginx.url

    def __init__(self, lab: Lab):
        self.lab = lab
        self.work = lab.work / self.name
        self.cache = lab.work / ("%s-cache" % self.name)
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
            self.lab.procs.stop(self.proc)
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
        if self.lab.nginx.proc:
            self.peak_rss_mb = max(self.peak_rss_mb, self.peak_mb())

    @property
    def proc(self):
        return self.lab.nginx.proc

    @proc.setter
    def proc(self, v):
        pass

    @property
    def index_url(self):
        return self.upstream


class PyPIProxy(Target):
    name = "pypiproxy"
    venv_name = "pypiproxy"  # built from --tree; PyPIProxyBase's from --baseline-tree

    def __init__(self, lab: Lab, upstream=None, name=None, sticky_port=False, venv=None, args=(), access_log=True):
        """args: more options of pypiproxy's; access_log: --access-log to a file of its own
        (as nginx's is: see the README), else the default (the server's log)."""
        if name:
            self.name = name
        super().__init__(lab)
        self._upstream = upstream
        self.sticky_port = sticky_port
        self.venv = venv
        self.args = tuple(args)
        self.access_log = access_log

    def prepare(self):
        self.venv = self.venv or self.lab.venvs.pypiproxy(self.venv_name)

    @property
    def upstream(self):
        return self._upstream or super().upstream

    def _start(self):
        self.proc = self.lab.procs.start(
            [self.venv / "bin/twistd", "-n", "--pidfile=", "pypiproxy", "--listen", "tcp:%d:interface=127.0.0.1" % self.port,
             "--upstream", self.upstream, "--cache-dir", self.cache, *self.args,
             *(("--access-log", self.work / ("access-%d.log" % self.port)) if self.access_log else ())],
            self.logfile(), cwd=self.work)
        wait_http("http://127.0.0.1:%d/+health" % self.port, 30, self.proc, ok=lambda s: s == 200)

    @property
    def index_url(self):
        return "http://127.0.0.1:%d/simple/" % self.port


class Devpi(Target):
    name = "devpi"

    def prepare(self):
        self.venv = self.lab.venvs.peer("devpi")
        procs = self.lab.procs
        # A template server dir with the mirror index, copied for each cold start.
        self.template = self.work / "template"
        if self.template.exists():
            shutil.rmtree(self.template)
        self.work.mkdir(parents=True, exist_ok=True)
        procs.run([self.venv / "bin/devpi-init", "--serverdir", self.template, "--no-root-pypi"], timeout=120)
        self.port = free_port()
        self.proc = procs.start(self._server_argv(self.template), self.logfile())
        wait_http("http://127.0.0.1:%d/+api" % self.port, 60, self.proc, ok=lambda s: s == 200)
        client = ["--clientdir", self.work / "client"]
        d = self.venv / "bin/devpi"
        procs.run([d, "use", "http://127.0.0.1:%d" % self.port] + client)
        procs.run([d, "login", "root", "--password", ""] + client)
        procs.run([d, "index", "-c", "root/mirror", "type=mirror",
                   "mirror_url=%s" % self.lab.nginx.url] + client)
        procs.run([d, "index", "-c", "root/slow", "type=mirror",
                   "mirror_url=%s" % self.lab.nginx.slow_url] + client)
        procs.stop(self.proc)
        self.proc = None

    def _server_argv(self, serverdir):
        return [self.venv / "bin/devpi-server", "--serverdir", serverdir, "--host", "127.0.0.1",
                "--port", self.port]

    def _start(self):
        if not any(self.cache.iterdir()):
            shutil.rmtree(self.cache)
            shutil.copytree(self.template, self.cache)
        self.proc = self.lab.procs.start(self._server_argv(self.cache), self.logfile())
        wait_http("http://127.0.0.1:%d/+api" % self.port, 60, self.proc, ok=lambda s: s == 200)

    @property
    def index_url(self):
        return "http://127.0.0.1:%d/root/%s/+simple/" % (self.port, "slow" if self.slow else "mirror")


class Proxpi(Target):
    name = "proxpi"

    def prepare(self):
        self.venv = self.lab.venvs.peer("proxpi")

    def _start(self):
        env = self.lab.procs.env(PROXPI_INDEX_URL=self.upstream, PROXPI_CACHE_DIR=str(self.cache),
                                 PROXPI_EXTRA_INDEX_URLS="")
        # One worker with threads (its caches live in the worker's memory).
        self.proc = self.lab.procs.start(
            [self.venv / "bin/gunicorn", "--workers", "1", "--threads", "16",
             "--bind", "127.0.0.1:%d" % self.port, "--timeout", "300", "proxpi.server:app"],
            self.logfile(), env=env)
        wait_http("http://127.0.0.1:%d/health" % self.port, 30, self.proc, ok=lambda s: s == 200)

    @property
    def index_url(self):
        return "http://127.0.0.1:%d/index/" % self.port


class PyPIProxyBase(PyPIProxy):
    name = venv_name = BASELINE


TARGET_CLASSES = MappingProxyType({"direct": Direct, "pypiproxy": PyPIProxy, BASELINE: PyPIProxyBase,
                                   "devpi": Devpi, "proxpi": Proxpi})
