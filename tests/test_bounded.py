"""Upstream index pages are read under --max-page-size: a gzip bomb or a huge page is refused
while it is read, like a failing upstream (the stale copy, or a fast 502)."""

from __future__ import annotations

import gzip
import json
import time
import zlib

import pytest
import pytest_twisted
from twisted.web.resource import Resource

from support.fakeindex import serving
from support.waiting import wait_until
from pypiproxy.upstream import UpstreamError
from pypiproxy.upstream.bounded import STEP, BoundedDecoder, PageTooLarge

JSON = "application/vnd.pypi.simple.v1+json"
MiB = 1024 * 1024


def bomb(decoded_size: int) -> bytes:
    """A gzip stream of ``decoded_size`` zero bytes (about a thousandth of that compressed)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MiB)
    parts = [compressor.compress(block) for _ in range(decoded_size // MiB)]
    return b"".join(parts) + compressor.flush()


def test_a_gzip_bomb_is_refused_after_at_most_the_limit_decoded():
    received = []
    decoder = BoundedDecoder("gzip", 4 * MiB, received.append)
    body = bomb(64 * MiB)
    with pytest.raises(PageTooLarge):
        for start in range(0, len(body), 65536):
            decoder(body[start:start + 65536])
    assert decoder.decoded <= 4 * MiB + STEP
    assert sum(map(len, received)) <= 4 * MiB


def test_a_plain_body_is_counted_as_sent():
    decoder = BoundedDecoder(None, 1000, lambda data: None)
    decoder(b"x" * 1000)
    with pytest.raises(PageTooLarge):
        decoder(b"x")


def test_a_compressed_body_cut_short_or_broken_is_an_upstream_error():
    whole = gzip.compress(b"<html>" * 1000)
    received = []
    decoder = BoundedDecoder("gzip", MiB, received.append)
    decoder(whole[: len(whole) // 2])
    with pytest.raises(UpstreamError):
        decoder.finish()
    BoundedDecoder("gzip", MiB, received.append).finish()  # an empty body (a 304) is no error
    with pytest.raises(UpstreamError):
        BoundedDecoder("gzip", MiB, received.append)(b"not gzip at all")
    with pytest.raises(UpstreamError):
        BoundedDecoder("br", MiB, received.append)


class Switchable(Resource):
    """An upstream whose project page is good until the test makes it hostile."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.body = json.dumps({
            "meta": {"api-version": "1.1"}, "name": "demo",
            "files": [{"filename": "demo-1.0.tar.gz", "url": "demo-1.0.tar.gz", "hashes": {"sha256": "a" * 64}}],
        }).encode()
        self.encoding: bytes | None = None
        self.requests = 0

    def render_GET(self, request):
        self.requests += 1
        request.setHeader(b"content-type", JSON.encode())
        if self.encoding:
            request.setHeader(b"content-encoding", self.encoding)
        return self.body


@pytest_twisted.async_yield_fixture()
async def switchable():
    async with serving(Switchable()) as upstream:
        yield upstream


@pytest_twisted.ensureDeferred
async def test_a_bomb_or_a_huge_page_is_a_fast_502_or_the_stale_copy(make_proxy, switchable):
    proxy = await make_proxy(switchable.url, index_ttl=0.0, max_page_size=MiB)
    response, body = await proxy.get("/simple/demo/", {"Accept": JSON})
    assert response.code == 200, body
    assert json.loads(body)["files"][0]["filename"] == "demo-1.0.tar.gz"

    # Expired (TTL 0) and now a bomb: the stale copy is served at once, and the background
    # revalidation refuses the bomb and keeps that copy.
    switchable.body, switchable.encoding = bomb(64 * MiB), b"gzip"
    started = time.monotonic()
    response, body = await proxy.get("/simple/demo/", {"Accept": JSON})
    assert response.code == 200 and json.loads(body)["name"] == "demo"
    await wait_until(lambda: proxy.stats["stale_pages_served"] == 1, timeout=10)
    assert time.monotonic() - started < 5
    assert proxy.stats["upstream_errors"] == 1

    # A project never seen before: a 502 saying why, quickly; and a plain page over the cap too.
    started = time.monotonic()
    response, body = await proxy.get("/simple/other/", {"Accept": JSON})
    assert response.code == 502 and b"max-page-size" in body
    switchable.body, switchable.encoding = b"[" + b" " * (2 * MiB) + b"]", None
    response, body = await proxy.get("/simple/third/", {"Accept": JSON})
    assert response.code == 502 and b"max-page-size" in body
    assert time.monotonic() - started < 5
