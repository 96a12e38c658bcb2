"""Shared pytest fixtures; what they are made of lives in tests/support/."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_twisted

# pytest's default "prepend" import mode already does this; keep it working under importlib mode.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from support.browser import Browser, close_browser, open_browser  # noqa: E402
from support.builders import WheelCache  # noqa: E402
from support.clients import clean_client_env  # noqa: E402
from support.fakeindex import FakeIndex  # noqa: E402
from support.inprocess import LoopbackProxy, start_proxy  # noqa: E402
from support.memory import MemoryNetwork, MemoryProxy  # noqa: E402
from support.processes import Twistd  # noqa: E402


@pytest.fixture(scope="session")
def wheels() -> WheelCache:
    """Session-wide cache of built wheels/sdists (large extra_bytes ones are worth reusing)."""
    return WheelCache()


@pytest.fixture
def client_env() -> dict[str, str]:
    """clean_client_env() as a fixture."""
    return clean_client_env()


# --------------------------------------------------------------------------- over loopback


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


@pytest_twisted.async_yield_fixture()
async def make_proxy(tmp_path):
    """A factory of in-process proxies on loopback (``await make_proxy(upstream_url, **config)``)."""
    started: list[LoopbackProxy] = []
    counter = iter(range(1000))

    async def make(*upstreams: str, cache_dir: Path | None = None, **overrides) -> LoopbackProxy:
        directory = cache_dir or tmp_path / f"proxy{next(counter)}"
        proxy = start_proxy(directory, list(upstreams), **overrides)
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        await proxy.stop()


@pytest_twisted.async_yield_fixture()
async def proxy(make_proxy, fake_index):
    """A proxy on loopback whose one upstream is the fake index."""
    yield await make_proxy(fake_index.url)


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


# --------------------------------------------------------------------------- in memory


@pytest_twisted.async_yield_fixture()
async def memory(tmp_path) -> AsyncIterator[MemoryNetwork]:
    """An in-memory network: ``memory.index(**options)``, ``memory.proxy(index.url, **config)``."""
    network = MemoryNetwork(tmp_path)
    try:
        yield network
    finally:
        await network.close()


@pytest.fixture
def memory_index(memory) -> FakeIndex:
    """An empty FakeIndex served in memory (no socket)."""
    return memory.index()


@pytest.fixture
def memory_proxy(memory, memory_index) -> MemoryProxy:
    """A proxy in memory whose one upstream is the in-memory fake index."""
    return memory.proxy(memory_index.url)


@pytest.fixture
def browser(tmp_path) -> Iterator[Browser]:
    """A fresh headless Chromium (skipped where Debian's chromium is missing); screenshots
    go to ``tmp_path / "screenshots"``."""
    started = open_browser(tmp_path)
    yield started
    close_browser(started)
