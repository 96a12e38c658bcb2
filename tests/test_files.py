"""The file cache: one download per file, streamed while cached, verified, never half-served."""

from __future__ import annotations

import json
import os

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.protocol import Protocol
from twisted.web.client import ResponseNeverReceived

from support.cache import cached_files, file_path, no_temporaries_left
from support.clients import header, timed_get
from support.waiting import wait_until

JSON = "application/vnd.pypi.simple.v1+json"


@pytest_twisted.ensureDeferred
async def test_cached_file_headers(memory_proxy, memory_index, wheels):
    built = wheels.wheel("demo", "1.0")
    memory_index.add("demo", built)
    path = await file_path(memory_proxy, "demo", built.filename)
    for expected_cache in ("MISS", "HIT"):
        response, body = await memory_proxy.get(path, {"Accept-Encoding": "gzip"})
        assert response.code == 200
        assert body == built.data
        assert response.length == built.size  # Content-Length, as the client parsed it
        assert header(response, "ETag") == f'"{built.sha256}"'
        assert header(response, "Cache-Control") == "max-age=31536000, immutable"
        assert header(response, "Content-Encoding") is None
        assert header(response, "X-Cache") == expected_cache
    assert memory_index.count(f"/files/demo/{built.filename}", "GET") == 1
    assert list(cached_files(memory_proxy.cache_dir)) == [built.sha256]


@pytest_twisted.ensureDeferred
async def test_sdist_is_never_content_encoded(memory_proxy, memory_index, wheels):
    built = wheels.sdist("demo", "1.0")
    memory_index.add("demo", built)
    path = await file_path(memory_proxy, "demo", built.filename)
    for _ in range(2):
        response, body = await memory_proxy.get(path, {"Accept-Encoding": "gzip"})
        assert header(response, "Content-Encoding") is None
        assert body == built.data


@pytest.mark.parametrize("warm", [False, True])
@pytest_twisted.ensureDeferred
async def test_ranges_and_if_range(memory_proxy, memory_index, wheels, warm):
    built = wheels.wheel("demo", "1.0", extra_bytes=100_000)
    memory_index.add("demo", built)
    path = await file_path(memory_proxy, "demo", built.filename)
    if warm:
        await memory_proxy.get(path)
    etag = f'"{built.sha256}"'
    response, body = await memory_proxy.get(path, {"Range": "bytes=10-19"})
    assert response.code == 206
    assert body == built.data[10:20]
    assert header(response, "Content-Range") == f"bytes 10-19/{built.size}"
    response, body = await memory_proxy.get(path, {"Range": "bytes=-100", "If-Range": etag})
    assert response.code == 206 and body == built.data[-100:]
    response, body = await memory_proxy.get(path, {"Range": "bytes=50000-"})
    assert response.code == 206 and body == built.data[50000:]
    # A changed validator means the client's partial copy is not ours: the whole file.
    response, body = await memory_proxy.get(path, {"Range": "bytes=10-19", "If-Range": '"other"'})
    assert response.code == 200 and body == built.data
    # So does a date (pip sends one when it has no ETag): it is not exactly our validator.
    response, body = await memory_proxy.get(path, {"Range": "bytes=10-19", "If-Range": "Tue, 01 Dec 2026 09:00:00 GMT"})
    assert response.code == 200 and body == built.data
    response, _ = await memory_proxy.get(path, {"Range": f"bytes={built.size + 10}-"})
    assert response.code == 416
    assert header(response, "Content-Range") == f"bytes */{built.size}"
    whole = [r for r in memory_index.requests if r.path.endswith(built.filename) and "range" not in r.headers]
    assert len(whole) == 1


@pytest_twisted.ensureDeferred
async def test_cold_range_does_not_wait_for_the_whole_download(proxy, fake_index, wheels):
    built = wheels.wheel("demo", "1.0", extra_bytes=400_000)
    fake_index.add("demo", built, behaviour="slow")
    fake_index.slow_chunks, fake_index.slow_delay = 10, 0.3  # about 3 s for the whole file
    path = await file_path(proxy, "demo", built.filename)
    started = reactor.seconds()
    response, body = await proxy.get(path, {"Range": "bytes=-2000"})
    assert response.code == 206 and body == built.data[-2000:]
    assert reactor.seconds() - started < 1.5
    assert proxy.stats["range_passthroughs"] == 1
    # Meanwhile the whole file is being cached for the download that follows.
    response, body = await proxy.get(path)
    assert body == built.data
    assert list(cached_files(proxy.cache_dir)) == [built.sha256]


@pytest_twisted.ensureDeferred
async def test_cold_head_is_answered_from_the_index_without_a_download(memory_proxy, memory_index, wheels):
    built = wheels.wheel("demo", "1.0")
    memory_index.add("demo", built)
    path = await file_path(memory_proxy, "demo", built.filename)
    response, body = await memory_proxy.get(path, method="HEAD")
    assert response.code == 200 and body == b""
    assert header(response, "Accept-Ranges") == "bytes"
    assert memory_index.count("/files/", "GET") == 0


@pytest_twisted.ensureDeferred
async def test_ten_concurrent_cold_requests_share_one_download(proxy, fake_index, wheels):
    built = wheels.wheel("demo", "1.0", extra_bytes=2_000_000)
    fake_index.add("demo", built, behaviour="slow")
    fake_index.slow_delay = 0.05
    path = await file_path(proxy, "demo", built.filename)
    results = await defer.gatherResults(
        [defer.ensureDeferred(proxy.get(path)) for _ in range(10)]
    )
    assert [r.code for r, _ in results] == [200] * 10
    assert all(body == built.data for _, body in results)
    assert fake_index.count(f"/files/demo/{built.filename}", "GET") == 1
    assert proxy.stats["download_joins"] == 9


@pytest_twisted.ensureDeferred
async def test_first_byte_arrives_long_before_a_slow_download_ends(proxy, fake_index, wheels):
    built = wheels.wheel("demo", "1.0", extra_bytes=500_000)
    fake_index.add("demo", built, behaviour="slow")
    fake_index.slow_chunks, fake_index.slow_delay = 10, 0.15  # about 1.5 s in all
    path = await file_path(proxy, "demo", built.filename)
    response, timer, started = await timed_get(proxy, path)
    total = reactor.seconds() - started
    assert timer.failed is None and timer.received == built.size
    assert timer.first - started < total / 3, (timer.first - started, total)


@pytest.mark.parametrize("behaviour", ["die", "wrong-hash"])
@pytest_twisted.ensureDeferred
async def test_broken_download_aborts_every_client_and_caches_nothing(proxy, fake_index, wheels, behaviour):
    built = wheels.wheel("demo", "1.0", extra_bytes=300_000)
    fake_index.add("demo", built, behaviour=behaviour)
    path = await file_path(proxy, "demo", built.filename)
    async def attempt():
        try:
            return await timed_get(proxy, path)
        except ResponseNeverReceived:
            return None  # aborted before the first byte: a failed transfer too

    outcomes = await defer.gatherResults([defer.ensureDeferred(attempt()) for _ in range(3)])
    for outcome in outcomes:
        if outcome is None:
            continue
        response, timer, _ = outcome
        assert response.code in (200, 502)
        if response.code == 200:
            assert timer.failed is not None, "a broken download must not end as a clean response"
            assert timer.received < built.size
    assert cached_files(proxy.cache_dir) == {}
    await no_temporaries_left(proxy.cache_dir)
    if behaviour == "wrong-hash":
        assert proxy.stats["hash_mismatches"] >= 1  # a late client may have tried anew
    # The next request tries again (and, with the upstream mended, succeeds).
    fake_index.entry(built.filename).behaviour = "ok"
    response, body = await proxy.get(path)
    assert response.code == 200 and body == built.data


@pytest_twisted.ensureDeferred
async def test_upstream_file_error_is_502_and_hang_is_cut_off(make_proxy, fake_index, wheels):
    proxy = await make_proxy(fake_index.url, upstream_timeout=1.0)
    broken = wheels.wheel("broken", "1.0")
    hanging = wheels.wheel("hanging", "1.0", extra_bytes=50_000)
    fake_index.add("broken", broken, behaviour="500")
    fake_index.add("hanging", hanging, behaviour="hang")
    response, body = await proxy.get(await file_path(proxy, "broken", broken.filename))
    assert response.code == 502 and b"500" in body
    started = reactor.seconds()
    response, timer, _ = await timed_get(proxy, await file_path(proxy, "hanging", hanging.filename))
    assert timer.failed is not None
    assert reactor.seconds() - started < 4
    assert cached_files(proxy.cache_dir) == {}
    await no_temporaries_left(proxy.cache_dir)


@pytest_twisted.ensureDeferred
async def test_client_that_leaves_does_not_cancel_the_download(proxy, fake_index, wheels):
    from twisted.web.http_headers import Headers

    built = wheels.wheel("demo", "1.0", extra_bytes=400_000)
    fake_index.add("demo", built, behaviour="slow")
    fake_index.slow_chunks, fake_index.slow_delay = 8, 0.1
    path = await file_path(proxy, "demo", built.filename)

    class Leaver(Protocol):
        def dataReceived(self, data: bytes) -> None:
            self.transport.stopProducing()  # hang up after the first bytes

    response = await proxy.http.request(b"GET", (proxy.root_url + path).encode(), Headers())
    response.deliverBody(Leaver())
    await wait_until(lambda: list(cached_files(proxy.cache_dir)) == [built.sha256])
    assert proxy.store.path(built.sha256).read_bytes() == built.data


@pytest_twisted.ensureDeferred
async def test_metadata_is_cached_and_404_where_the_index_has_none(memory_proxy, memory_index, wheels):
    with_meta = wheels.wheel("demo", "1.0", requires_dist=["dep>=1"])
    without = wheels.wheel("demo", "2.0")
    memory_index.add("demo", with_meta)
    memory_index.add("demo", without, metadata=False)
    path = await file_path(memory_proxy, "demo", with_meta.filename)
    for _ in range(2):
        response, body = await memory_proxy.get(path + ".metadata")
        assert response.code == 200 and body == with_meta.metadata
    assert memory_index.count(".metadata") == 1
    response, _ = await memory_proxy.get(await file_path(memory_proxy, "demo", without.filename) + ".metadata")
    assert response.code == 404


@pytest_twisted.ensureDeferred
async def test_unknown_key_or_filename_is_404(memory_proxy, memory_index, wheels):
    built = wheels.wheel("demo", "1.0")
    memory_index.add("demo", built)
    path = await file_path(memory_proxy, "demo", built.filename)
    wrong_key = path.replace(built.sha256, "0" * 64)
    response, _ = await memory_proxy.get(wrong_key)
    assert response.code == 404
    response, _ = await memory_proxy.get(path.replace(built.filename, "demo-9.0-py3-none-any.whl"))
    assert response.code == 404


@pytest_twisted.ensureDeferred
async def test_crash_leftovers_are_removed_at_start(make_proxy, fake_index, tmp_path):
    from pypiproxy.cache import FileStore

    dead = tmp_path / "cache" / "tmp" / f"{os.uname().nodename}.999999999"
    dead.mkdir(parents=True)
    (dead / "x.part").write_bytes(b"half a file")
    store = FileStore(tmp_path / "cache")
    assert dead in store.clean_leftovers()
    assert not dead.exists()
    assert store.tmp.exists()


@pytest_twisted.ensureDeferred
async def test_cached_wheels_announce_their_metadata_where_the_upstream_had_none(memory_proxy, memory_index, wheels):
    built = wheels.wheel("demo", "1.0", requires_dist=["dep>=2"])
    memory_index.add("demo", built, metadata=False)
    path = await file_path(memory_proxy, "demo", built.filename)
    _, page = await memory_proxy.get("simple/demo/", {"Accept": JSON})
    assert "core-metadata" not in json.loads(page)["files"][0]
    response, _ = await memory_proxy.get(path + ".metadata")
    assert response.code == 404

    await memory_proxy.get(path)
    await wait_until(lambda: memory_proxy.store.metadata_path(built.sha256).exists())
    response, page = await memory_proxy.get("simple/demo/", {"Accept": JSON})
    (entry,) = json.loads(page)["files"]
    assert entry["core-metadata"] == {"sha256": built.metadata_sha256}
    _, html = await memory_proxy.get("simple/demo/", {"Accept": "text/html"})
    assert f'data-core-metadata="sha256={built.metadata_sha256}"'.encode() in html
    response, body = await memory_proxy.get(path + ".metadata")
    assert response.code == 200 and body == built.metadata
    assert memory_index.count(".metadata") == 0


@pytest_twisted.ensureDeferred
async def test_a_client_that_stops_reading_is_cut_off(proxy, fake_index, wheels, monkeypatch):
    import socket

    from pypiproxy.web.producer import FileProducer

    monkeypatch.setattr(FileProducer, "stall_timeout", 0.5)
    built = wheels.wheel("demo", "1.0", extra_bytes=20_000_000)
    fake_index.add("demo", built)
    path = await file_path(proxy, "demo", built.filename)
    await proxy.get(path)  # cached

    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    stalled.connect(("127.0.0.1", proxy.port.getHost().port))
    stalled.sendall(f"GET /{path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    try:
        await wait_until(lambda: not proxy.factory.protocols or all(
            p.transport.disconnecting or not p.transport.connected for p in proxy.factory.protocols
        ), timeout=10)
    finally:
        stalled.close()


@pytest_twisted.ensureDeferred
async def test_cold_tail_range_passes_through_when_the_index_gives_no_size(proxy, fake_index, wheels, monkeypatch):
    import pypiproxy.simple

    # A plain PEP 503 page says nothing of sizes: take the size out of what we parse.
    real = pypiproxy.simple.parse_project_json

    def without_sizes(*args, **kwargs):
        page = real(*args, **kwargs)
        from dataclasses import replace
        return replace(page, files=tuple(replace(f, size=None) for f in page.files))

    monkeypatch.setattr(pypiproxy.simple, "parse_project_json", without_sizes)
    built = wheels.wheel("demo", "1.0", extra_bytes=400_000)
    fake_index.add("demo", built, behaviour="slow")
    fake_index.slow_chunks, fake_index.slow_delay = 10, 0.3
    path = await file_path(proxy, "demo", built.filename)
    started = reactor.seconds()
    response, body = await proxy.get(path, {"Range": "bytes=-3000"})
    assert response.code == 206 and body == built.data[-3000:]
    assert header(response, "Content-Range") == f"bytes {built.size - 3000}-{built.size - 1}/{built.size}"
    assert reactor.seconds() - started < 1.5
    response, body = await proxy.get(path, {"Range": "bytes=100-199"})
    assert response.code == 206 and body == built.data[100:200]


@pytest_twisted.ensureDeferred
async def test_files_arrive_byte_for_byte_whatever_the_content_encoding(proxy, fake_index, wheels):
    # An sdist a server labels "Content-Encoding: gzip" (the bytes are the .tar.gz itself),
    # and a wheel a server would compress on the fly for a client that accepts gzip.
    labelled = wheels.sdist("labelled", "1.0")
    compressible = wheels.wheel("compressible", "1.0")
    fake_index.add("labelled", labelled, behaviour="gzip-label")
    fake_index.add("compressible", compressible, behaviour="gzip-if-asked")
    for project, built in (("labelled", labelled), ("compressible", compressible)):
        response, body = await proxy.get(await file_path(proxy, project, built.filename))
        assert response.code == 200 and body == built.data
        fetches = [r for r in fake_index.requests if r.path.endswith(built.filename)]
        assert [r.headers.get("accept-encoding") for r in fetches] == ["identity"]
    assert proxy.stats["hash_mismatches"] == 0


@pytest_twisted.ensureDeferred
async def test_a_cold_range_the_running_download_brings_at_once_is_answered_from_it(memory_proxy, memory_index, wheels):
    """As uv reads METADATA on a plain PEP 503 page (no sizes): a HEAD, which starts the
    download, then the wheel's last bytes, which that download brings at once."""
    built = wheels.wheel("demo", "1.0", extra_bytes=50_000)
    memory_index.add("demo", built)
    anchor = f'<a href="../../files/demo/{built.filename}#sha256={built.sha256}">{built.filename}</a>'
    memory_index.raw_pages["demo"] = (f"<!DOCTYPE html><html><body>{anchor}</body></html>".encode(), "text/html")
    path = await file_path(memory_proxy, "demo", built.filename)
    response, _ = await memory_proxy.get(path, method="HEAD")
    assert response.code == 200 and header(response, "Content-Length") == str(built.size)
    response, body = await memory_proxy.get(path, {"Range": "bytes=-16384"})
    assert response.code == 206 and body == built.data[-16384:]
    assert memory_proxy.stats["range_passthroughs"] == 0
    assert [r.headers.get("range") for r in memory_index.requests if r.path.endswith(built.filename)] == [None]
