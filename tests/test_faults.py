"""Faults on our side: a full disk while caching, a full disk while storing pages."""

from __future__ import annotations

import errno
import json
import time

import pytest_twisted
from twisted.web.client import ResponseNeverReceived

from pypiproxy.upstream import READ_SIZE
from support.cache import cached_files, file_path, no_temporaries_left
from support.clients import timed_get
from support.fakeindex import FakeIndex

JSON = "application/vnd.pypi.simple.v1+json"


class FaultyFile:
    """A temporary file on a misbehaving disk: ``fault(data)`` runs before each write (in
    the download's writer thread, so it may sleep) and may raise."""

    def __init__(self, path, fault) -> None:
        self._file = open(path, "wb", buffering=0)
        self._fault = fault

    def write(self, data) -> int:
        self._fault(data)
        return self._file.write(data)

    def close(self) -> None:
        self._file.close()


def filling_up(room: int):
    """A disk that is full after ``room`` bytes."""

    def fault(data) -> None:
        nonlocal room
        if len(data) > room:
            raise OSError(errno.ENOSPC, "No space left on device")
        room -= len(data)

    return fault


def stalling_once(seconds: float):
    """A disk whose first write takes ``seconds``."""
    stalls = [seconds]

    def fault(data) -> None:
        if stalls:
            time.sleep(stalls.pop())

    return fault


@pytest_twisted.ensureDeferred
async def test_disk_full_while_caching_aborts_cleanly_and_the_server_keeps_serving(proxy, fake_index, wheels, monkeypatch):
    big = wheels.wheel("big", "1.0", extra_bytes=600_000)
    small = wheels.wheel("small", "1.0")
    fake_index.add("big", big)
    fake_index.add("small", small)
    big_path = await file_path(proxy, "big", big.filename)
    monkeypatch.setattr(proxy.store, "create", lambda path: FaultyFile(path, filling_up(100_000)))

    try:
        response, timer, _ = await timed_get(proxy, big_path)
    except ResponseNeverReceived:
        pass  # aborted before the headers: a failed transfer too
    else:
        if response.code == 200:
            assert timer.failed is not None, "a download the disk could not hold must not look complete"
            # Readers are sent chunks from memory while they are being written: they may get
            # more than the disk held, never the whole file.
            assert timer.received < len(big.data)
        else:
            assert response.code == 502
    assert cached_files(proxy.cache_dir) == {}
    await no_temporaries_left(proxy.cache_dir)

    monkeypatch.undo()
    response, body = await proxy.get(await file_path(proxy, "small", small.filename))
    assert response.code == 200 and body == small.data
    response, body = await proxy.get(big_path)
    assert response.code == 200 and body == big.data


@pytest_twisted.ensureDeferred
async def test_a_stalled_disk_pauses_the_upstream_without_timing_it_out(make_proxy, fake_index, wheels, monkeypatch):
    from pypiproxy.cache import download as files

    built = wheels.wheel("big", "1.0", extra_bytes=3_000_000)
    fake_index.add("big", built)
    proxy = await make_proxy(fake_index.url, upstream_timeout=0.5)
    path = await file_path(proxy, "big", built.filename)
    monkeypatch.setattr(files, "MAX_BACKLOG", 256 * 1024)
    backlogs = []
    real_write = files.DiskWriter.write

    def write(writer, data):
        backlogs.append(writer.backlog)
        real_write(writer, data)

    monkeypatch.setattr(files.DiskWriter, "write", write)
    # The disk stalls for longer than the upstream timeout.
    monkeypatch.setattr(proxy.store, "create", lambda p: FaultyFile(p, stalling_once(1.5)))

    response, body = await proxy.get(path)
    assert response.code == 200 and body == built.data
    assert proxy.stats["upstream_pauses"] >= 1
    # Memory stays bounded: reading stops near the limit (a read under way still lands).
    assert max(backlogs) <= files.MAX_BACKLOG + 2 * READ_SIZE
    assert cached_files(proxy.cache_dir)
    await no_temporaries_left(proxy.cache_dir)


@pytest_twisted.ensureDeferred
async def test_disk_full_while_storing_a_page_still_answers(proxy, fake_index, wheels, monkeypatch):
    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(proxy.store, "write", full)
    fake_index.add("demo", wheels.wheel("demo", "1.0"))
    response, body = await proxy.get("simple/demo/", {"Accept": JSON})
    assert response.code == 200 and json.loads(body)["name"] == "demo"


@pytest_twisted.ensureDeferred
async def test_upstream_redirect_is_followed_and_credentials_stay_on_their_host(make_proxy, wheels):
    from twisted.internet import reactor

    index = FakeIndex(require_auth=("reader", "hunter2"))
    await index.start(reactor)
    try:
        built = wheels.wheel("demo", "1.0")
        index.add("demo", built, behaviour="redirect")
        proxy = await make_proxy(index.auth_url)
        response, body = await proxy.get(await file_path(proxy, "demo", built.filename))
        assert response.code == 200 and body == built.data
        on_main = [r for r in index.requests if r.port == index.port and r.path.endswith(built.filename)]
        on_other = [r for r in index.requests if r.port == index.other_port and r.path.endswith(built.filename)]
        assert len(on_main) == 1 and "authorization" in on_main[0].headers
        assert len(on_other) == 1 and "authorization" not in on_other[0].headers
    finally:
        await index.stop()


@pytest_twisted.ensureDeferred
async def test_two_hundred_concurrent_clients_on_cached_and_uncached_files_and_pages(make_proxy, fake_index, wheels):
    import hashlib
    import random

    from twisted.internet import defer, reactor
    from twisted.web.client import Agent, HTTPConnectionPool, readBody
    from twisted.web.http_headers import Headers

    projects = [f"load{i}" for i in range(8)]
    built = {p: wheels.wheel(p, "1.0", extra_bytes=200_000) for p in projects}
    for project, b in built.items():
        fake_index.add(project, b, behaviour="slow")
    fake_index.slow_chunks, fake_index.slow_delay = 4, 0.05
    proxy = await make_proxy(fake_index.url)
    paths = {p: await file_path(proxy, p, b.filename) for p, b in built.items()}
    for project in projects[:3]:  # some warm, some cold
        await proxy.get(paths[project])

    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 200
    agent = Agent(reactor, pool=pool)
    chooser = random.Random(7)

    async def one(i: int) -> tuple[str, str, int, bytes]:
        project = chooser.choice(projects)
        kind = "page" if i % 4 == 0 else "file"
        path = f"simple/{project}/" if kind == "page" else paths[project]
        response = await agent.request(b"GET", (proxy.root_url + path).encode(),
                                       Headers({"Accept": [JSON]}))
        return kind, project, response.code, await readBody(response)

    try:
        results = await defer.gatherResults([defer.ensureDeferred(one(i)) for i in range(200)])
    finally:
        await pool.closeCachedConnections()
    assert [code for _, _, code, _ in results] == [200] * 200
    for kind, project, _, body in results:
        if kind == "file":
            assert hashlib.sha256(body).hexdigest() == built[project].sha256
        else:
            assert json.loads(body)["files"][0]["hashes"]["sha256"] == built[project].sha256
    fetched = set(projects[:3]) | {project for kind, project, _, _ in results if kind == "file"}
    for project, b in built.items():
        whole = [r for r in fake_index.requests if r.path.endswith(f"/{b.filename}")]
        assert len(whole) == (1 if project in fetched else 0), project
    assert proxy.stats["upstream_errors"] == 0
