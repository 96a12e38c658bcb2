"""A real index behind the company cache: big pages and the big project list never stall the
server (``/+health`` keeps answering while they are fetched, parsed and rendered)."""

from __future__ import annotations

import gzip
import json
import time

import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.web.resource import Resource
from twisted.web.server import Site

JSON = "application/vnd.pypi.simple.v1+json"
HTML = "application/vnd.pypi.simple.v1+html"
# Generous for a loaded 2-core machine; a stall of the reactor on these pages took seconds.
STALL_BOUND = 0.5


def big_page(name: str, files: int) -> dict:
    """A PEP 691 page shaped like a big real project's (boto3 has ~4,300 files)."""
    return {
        "meta": {"api-version": "1.1"}, "name": name,
        "files": [{
            "filename": f"{name}-1.{i}.0-py3-none-any.whl",
            "url": f"../../packages/{i % 256:02x}/{name}-1.{i}.0-py3-none-any.whl",
            "hashes": {"sha256": f"{i:064x}"}, "requires-python": ">=3.8",
            "core-metadata": {"sha256": f"{i + 1:064x}"}, "size": 100_000 + i,
            "upload-time": "2024-01-01T00:00:00.000000Z", "yanked": False,
        } for i in range(files)],
    }


class Pages(Resource):
    """An upstream serving prepared bodies by path, gzipped when the client asks."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.bodies: dict[bytes, tuple[bytes, str]] = {}

    def render_GET(self, request):
        found = self.bodies.get(request.path)
        if found is None:
            request.setResponseCode(404)
            return b"not found\n"
        body, content_type = found
        request.setHeader(b"content-type", content_type.encode())
        if b"gzip" in (request.getHeader(b"accept-encoding") or b""):
            request.setHeader(b"content-encoding", b"gzip")
            body = gzip.compress(body, compresslevel=1)
        return body


@pytest_twisted.async_yield_fixture()
async def pages_upstream():
    upstream = Pages()
    site = Site(upstream)
    site.noisy = False
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    upstream.url = f"http://127.0.0.1:{port.getHost().port}/simple/"
    yield upstream
    await port.stopListening()


class HealthSampler:
    """Asks ``/+health`` every 20 ms while it runs; keeps the slowest answer's time."""

    def __init__(self, proxy) -> None:
        self._proxy = proxy
        self.slowest = 0.0
        self.samples = 0
        self._running = True
        self._done = defer.ensureDeferred(self._run())

    async def _run(self) -> None:
        while self._running:
            started = time.monotonic()
            response, _ = await self._proxy.get("/+health")
            assert response.code == 200
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.samples += 1
            await deferLater(reactor, 0.02, lambda: None)

    async def stop(self) -> float:
        self._running = False
        await self._done
        return self.slowest


@pytest_twisted.ensureDeferred
async def test_a_5000_file_page_is_fetched_parsed_and_rendered_beside_the_reactor(make_proxy, pages_upstream):
    page = big_page("big", 5000)
    pages_upstream.bodies[b"/simple/big/"] = (json.dumps(page).encode(), JSON)
    html_page = big_page("html-big", 5000)
    pages_upstream.bodies[b"/simple/html-big/"] = (
        "".join(f'<a href="{f["url"]}#sha256={f["hashes"]["sha256"]}" data-requires-python="&gt;=3.8">'
                f'{f["filename"]}</a><br>\n' for f in html_page["files"]).encode(), "text/html")
    proxy = await make_proxy(pages_upstream.url)
    sampler = HealthSampler(proxy)
    await deferLater(reactor, 0.1, lambda: None)
    for project in ("big", "html-big"):
        for headers in ({"Accept": JSON}, {"Accept": HTML}, {"Accept": JSON, "Accept-Encoding": "gzip"},
                        {"Accept": HTML, "Accept-Encoding": "gzip"}):
            response, body = await proxy.get(f"/simple/{project}/", headers)
            assert response.code == 200
            if "Accept-Encoding" in headers:
                body = gzip.decompress(body)
            if headers["Accept"] == JSON:
                assert len(json.loads(body)["files"]) == 5000
            else:
                assert body.count(b"<a ") == 5000
    # Another process on the same cache: the stored page is read and parsed beside the reactor too.
    other = await make_proxy(cache_dir=proxy.config.cache_dir, offline=True)
    response, body = await other.get("/simple/big/", {"Accept": JSON})
    assert len(json.loads(body)["files"]) == 5000
    slowest = await sampler.stop()
    print(f"slowest /+health {slowest:.3f}s of {sampler.samples}")
    assert sampler.samples >= 5
    assert slowest < STALL_BOUND, f"/+health took {slowest:.3f}s while a big page was processed"
