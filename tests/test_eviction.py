"""--max-cache-size: least recently used upstream files go first; the limit holds."""

from __future__ import annotations

import os

import pytest_twisted

from support.cache import cached_files, file_path
from support.waiting import wait_until


@pytest_twisted.ensureDeferred
async def test_least_recently_used_files_are_evicted_to_stay_under_the_limit(make_proxy, fake_index, wheels):
    files = [wheels.wheel(f"p{i}", "1.0", extra_bytes=100_000) for i in range(4)]
    for built in files:
        fake_index.add(built.name, built)
    limit = int(2.5 * files[0].size)
    proxy = await make_proxy(fake_index.url, max_cache_size=limit)
    paths = [await file_path(proxy, built.name, built.filename) for built in files]

    # Budget bookkeeping follows the download's commit by a reactor turn or two.
    for path in paths[:2]:
        await proxy.get(path)
    await wait_until(lambda: proxy.budget.total == files[0].size + files[1].size, what="p0 and p1 counted")
    await proxy.get(paths[0])  # p0 is now more recently used than p1
    await proxy.get(paths[2])
    await wait_until(lambda: proxy.budget.total == files[0].size + files[2].size, what="p1 evicted for p2")
    cached = set(cached_files(proxy.cache_dir))
    assert cached == {files[0].sha256, files[2].sha256}
    assert proxy.stats["evictions"] == 1
    total = sum(p.stat().st_size for p in proxy.store.files.rglob("*") if p.is_file())
    assert total <= limit

    # An evicted file comes back from the upstream, whole.
    response, body = await proxy.get(paths[1])
    assert body == files[1].data


@pytest_twisted.ensureDeferred
async def test_the_limit_is_applied_to_what_a_restart_finds(make_proxy, fake_index, wheels, tmp_path):
    files = [wheels.wheel(f"q{i}", "1.0", extra_bytes=50_000) for i in range(3)]
    for built in files:
        fake_index.add(built.name, built)
    first = await make_proxy(fake_index.url, cache_dir=tmp_path / "shared")
    for built in files:
        await first.get(await file_path(first, built.name, built.filename))
    await wait_until(lambda: all(first.store.path(built.sha256).exists() for built in files), what="three files stored")
    # Oldest use first: q0, then q1, then q2.
    for age, built in zip((300, 200, 100), files):
        path = first.store.path(built.sha256)
        os.utime(path, (path.stat().st_atime - age, path.stat().st_mtime - age))
    second = await make_proxy(fake_index.url, cache_dir=tmp_path / "shared", max_cache_size=files[0].size + 10)
    cached = set(cached_files(second.cache_dir))
    assert cached == {files[2].sha256}


@pytest_twisted.ensureDeferred
async def test_metadata_we_announced_is_served_after_another_process_evicted_the_wheel(proxy, fake_index, wheels):
    import json

    built = wheels.wheel("gone", "1.0", requires_dist=["x"])
    fake_index.add("gone", built, metadata=False)
    path = await file_path(proxy, "gone", built.filename)
    await proxy.get(path)
    await wait_until(proxy.store.metadata_path(built.sha256).exists, what="the wheel's METADATA extracted")
    _, page = await proxy.get("simple/gone/", {"Accept": "application/vnd.pypi.simple.v1+json"})
    assert json.loads(page)["files"][0]["core-metadata"] == {"sha256": built.metadata_sha256}
    # Another process sharing the directory evicts the wheel and its metadata.
    proxy.store.path(built.sha256).unlink()
    proxy.store.metadata_path(built.sha256).unlink()

    response, body = await proxy.get(path + ".metadata")
    assert response.code == 200 and body == built.metadata
    assert fake_index.count(f"/files/gone/{built.filename}", "GET") == 2


def test_the_start_up_scan_keeps_files_used_meanwhile_as_the_most_recent(tmp_path):
    from pypiproxy.cache import FileStore, LRUBudget
    from pypiproxy.stats import Stats
    from twisted.internet.task import Clock

    store = FileStore(tmp_path)
    keys = [f"{i:064x}" for i in range(5)]
    for age, key in enumerate(keys):
        path = store.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 100)
        os.utime(path, (1000 + age, 1000 + age))  # keys[0] least recently used
    evicted: list[str] = []
    budget = LRUBudget(store, 350, Stats(), Clock(), on_evict=evicted.append)
    scanned = budget.scan()  # in a thread at start; meanwhile a client is served keys[0]
    budget.used(keys[0], 100)
    budget.load(scanned)
    assert budget.total == 300
    assert evicted == [keys[1], keys[2]]
    assert sorted(p.name for p in store.files.rglob("*") if p.is_file()) == sorted([keys[0], keys[3], keys[4]])


def test_a_cache_far_over_the_limit_at_start_is_evicted_a_slice_a_reactor_turn(tmp_path):
    from pypiproxy.cache import FileStore, LRUBudget
    from pypiproxy.cache.eviction import EVICT_SLICE
    from pypiproxy.stats import Stats
    from twisted.internet.task import Clock

    store = FileStore(tmp_path)
    keys = [f"{i:064x}" for i in range(2 * EVICT_SLICE + 30)]
    for age, key in enumerate(keys):
        path = store.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 100)
        os.utime(path, (1000 + age, 1000 + age))  # oldest first
    clock, evicted = Clock(), []

    def next_turn() -> None:
        # What the reactor does in a turn: the calls due when it starts (Clock.advance would
        # also run those they schedule for now).
        due, clock.calls[:] = list(clock.calls), []
        for call in due:
            call.called = 1
            call.func(*call.args, **call.kw)

    budget = LRUBudget(store, 10 * 100, Stats(), clock, on_evict=evicted.append)  # room for ten
    budget.load(budget.scan())
    assert evicted == keys[:EVICT_SLICE]  # one slice now: the reactor serves in between
    next_turn()
    assert evicted == keys[:2 * EVICT_SLICE]
    budget.used(keys[-1], 100)  # a client meanwhile: its use evicts too, no more than a slice
    assert evicted == keys[:-10] and budget.total == 10 * 100
    next_turn()
    assert evicted == keys[:-10]
    assert sorted(p.name for p in store.files.rglob("*") if p.is_file()) == keys[-10:]
    assert clock.getDelayedCalls() == []

    # A lowered limit again, and the service stops before the next slice: nothing is left running.
    budget = LRUBudget(store, 100, Stats(), clock, on_evict=evicted.append)
    budget.load(budget.scan())
    budget.stop()
    assert clock.getDelayedCalls() == []
