"""Shared pytest fixtures: a fake upstream index, built packages, a clean client environment."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_twisted

# pytest's default "prepend" import mode already does this; keep it working under importlib mode.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from fakeindex import Built, FakeIndex, build_sdist, build_wheel  # noqa: E402


def clean_client_env() -> dict[str, str]:
    """os.environ without any pip/uv settings: this machine's own find-links must not leak in."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith(("PIP_", "UV_"))
        # requests (in pip and twine) lets these override an explicit --cert.
        and key.upper() not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    }
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        UV_NO_CONFIG="1",
    )
    return env


@pytest_twisted.async_yield_fixture()
async def fake_index() -> AsyncIterator[FakeIndex]:
    """A started, empty FakeIndex on 127.0.0.1; stopped (connections aborted) afterwards."""
    from twisted.internet import reactor

    index = FakeIndex()
    await index.start(reactor)
    try:
        yield index
    finally:
        await index.stop()


class WheelCache:
    """Builds each (kind, name, version, options) once per session; building is pure."""

    def __init__(self) -> None:
        self._built: dict[tuple[object, ...], Built] = {}

    def _get(self, builder: Callable[..., Built], name: str, version: str, **options: object) -> Built:
        key = (builder.__name__, name, version, tuple(sorted((k, repr(v)) for k, v in options.items())))
        if key not in self._built:
            self._built[key] = builder(name, version, **options)
        return self._built[key]

    def wheel(self, name: str, version: str, **options: object) -> Built:
        """build_wheel(name, version, **options), cached."""
        return self._get(build_wheel, name, version, **options)

    def sdist(self, name: str, version: str, **options: object) -> Built:
        """build_sdist(name, version, **options), cached."""
        return self._get(build_sdist, name, version, **options)


@pytest.fixture(scope="session")
def wheels() -> WheelCache:
    """Session-wide cache of built wheels/sdists (large extra_bytes ones are worth reusing)."""
    return WheelCache()


@pytest.fixture
def client_env() -> dict[str, str]:
    """clean_client_env() as a fixture."""
    return clean_client_env()


# --------------------------------------------------------------------------- the proxy


class RunningProxy:
    """An in-process pypiproxy listening on 127.0.0.1, plus a client of its own."""

    def __init__(self, config, site, store, client, port, http, factory) -> None:
        self.factory = factory  # a WrappingFactory: it knows the open connections
        self.config = config
        self.site = site
        self.store = store
        self.upstream_client = client
        self.port = port
        self.http = http

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port.getHost().port}/"

    @property
    def url(self) -> str:
        """The Simple API root clients are pointed at."""
        return self.root_url + "simple/"

    @property
    def stats(self):
        return self.site.resource._stats

    async def get(self, path: str, headers: dict[str, str] | None = None, method: str = "GET"):
        """(response, body) for a path below the root, as sent (no decoding, no redirects).

        Raises if the body is cut off, as a client would see a broken transfer.
        """
        from twisted.web.client import readBody
        from twisted.web.http_headers import Headers

        sent = Headers({k: [v] for k, v in (headers or {}).items()})
        url = (self.root_url + path.lstrip("/")).encode()
        response = await self.http.request(method.encode(), url, sent)
        body = await readBody(response)
        return response, body

    async def stop(self) -> None:
        await self.port.stopListening()
        for connection in list(self.factory.protocols):
            connection.transport.abortConnection()
        if self.upstream_client is not None:
            await self.upstream_client.close()


async def start_proxy(cache_dir: Path, upstreams: list[str], pool_holder: list, **overrides) -> RunningProxy:
    from twisted.internet import reactor
    from twisted.web.client import Agent, HTTPConnectionPool

    from pypiproxy.config import Config, parse_upstream
    from pypiproxy.server import build_site

    settings = dict(
        listen=("tcp:0:interface=127.0.0.1",),
        upstreams=tuple(parse_upstream(u) for u in upstreams),
        cache_dir=cache_dir,
        upstream_timeout=3.0,
    )
    settings.update(overrides)
    config = Config(**settings)
    site, store, client, budget = build_site(config, reactor)
    if budget is not None:
        budget.load(budget.scan())
    site.noisy = False
    from twisted.protocols.policies import WrappingFactory

    factory = WrappingFactory(site)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    pool = HTTPConnectionPool(reactor, persistent=False)
    pool_holder.append(pool)
    http = Agent(reactor, pool=pool)
    return RunningProxy(config, site, store, client, port, http, factory)


@pytest_twisted.async_yield_fixture()
async def make_proxy(tmp_path):
    """A factory of in-process proxies (``await make_proxy(upstream_url, **config)``)."""
    started: list[RunningProxy] = []
    pools: list = []
    counter = iter(range(1000))

    async def make(*upstreams: str, cache_dir: Path | None = None, **overrides) -> RunningProxy:
        directory = cache_dir or tmp_path / f"proxy{next(counter)}"
        proxy = await start_proxy(directory, list(upstreams), pools, **overrides)
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        await proxy.stop()
    for pool in pools:
        await pool.closeCachedConnections()


@pytest_twisted.async_yield_fixture()
async def proxy(make_proxy, fake_index):
    """A proxy whose one upstream is the fake index."""
    yield await make_proxy(fake_index.url)


# --------------------------------------------------------------------------- real processes

REPO = Path(__file__).resolve().parent.parent
# The twistd script of the environment running the tests (installed with Twisted).
TWISTD = str(Path(sys.executable).with_name("twistd"))


def stop_process(process, signal_number: int | None = None) -> None:
    """Ask a child to stop (SIGTERM, or the signal given), kill it after 10 s; reap it."""
    import signal
    import subprocess

    if process.poll() is None:
        process.send_signal(signal_number or signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Twistd:
    """A real ``twistd -n pypiproxy`` subprocess on a free loopback port."""

    def __init__(self, args: list[str], cache_dir: Path, scheme: str = "http", port: int | None = None,
                 listen: str | None = None) -> None:
        import subprocess

        self.port = port or free_port()
        self.cache_dir = cache_dir
        self.scheme = scheme
        self.log_path = cache_dir.parent / f"twistd-{self.port}.log"
        listen = listen or f"tcp:{self.port}:interface=127.0.0.1"
        env = clean_client_env()
        env["PYTHONPATH"] = str(REPO)
        self.argv = [TWISTD, "--nodaemon", "--pidfile=", "--logfile", str(self.log_path),
                     "pypiproxy", "--listen", listen, "--cache-dir", str(cache_dir), *args]
        self.process = subprocess.Popen(self.argv, env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    @property
    def root_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/"

    @property
    def url(self) -> str:
        return self.root_url + "simple/"

    def log(self) -> str:
        try:
            return self.log_path.read_text()
        except FileNotFoundError:
            return ""

    def wait_ready(self, timeout: float = 20.0, ssl_context=None) -> "Twistd":
        """Block (in a thread, please) until /+health answers, or fail with the log."""
        import time
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"twistd exited {self.process.returncode}: "
                                   f"{self.process.stderr.read().decode()} {self.log()}")
            try:
                with urllib.request.urlopen(self.root_url + "+health", timeout=2, context=ssl_context):
                    return self
            except urllib.error.HTTPError:
                return self  # it answers (e.g. 401 with --auth all): it is up
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"twistd did not come up: {self.log()}")

    def stop(self) -> None:
        stop_process(self.process)
        if self.process.stderr:
            self.process.stderr.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def twistd(tmp_path):
    """A factory of twistd subprocesses: ``twistd(args, name=...)``; all stopped afterwards."""
    started: list[Twistd] = []

    def start(args: list[str], name: str = "proxy", **kwargs) -> Twistd:
        process = Twistd(args, tmp_path / name, **kwargs)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def run_client(argv: list[str], timeout: float = 180) -> "subprocess.CompletedProcess[str]":
    """Run a real client (pip, uv, twine) isolated from this machine's configuration."""
    import subprocess

    return subprocess.run(argv, capture_output=True, text=True, env=clean_client_env(),
                          timeout=timeout, stdin=subprocess.DEVNULL)


def pip_install(index_url: str, target: Path, *requirements: str, extra: list[str] = ()) -> "subprocess.CompletedProcess[str]":
    return run_client([sys.executable, "-m", "pip", "install", "--isolated", "--no-cache-dir",
                       "--disable-pip-version-check", "--index-url", index_url,
                       "--target", str(target), *extra, *requirements])
