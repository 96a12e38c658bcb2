"""A real index behind the company cache: big pages and the big project list never stall the
server (``/+health`` keeps answering while they are fetched, parsed and rendered)."""

from __future__ import annotations

import gzip
import json
import re
import threading
import time

import pytest_twisted
from twisted.internet import defer, reactor, threads
from twisted.internet.task import deferLater
from twisted.web.resource import Resource
from twisted.web.server import Site

from support.fakeindex import serving
from support.clients import get
from support.waiting import wait_until

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
    async with serving(Pages()) as upstream:
        yield upstream


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
            took = time.monotonic() - started
            if took > 0.1:
                print(f"slow /+health at {started:.2f}: {took:.3f}s")
            self.slowest = max(self.slowest, took)
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
    html_page = big_page("htmlbig", 5000)
    pages_upstream.bodies[b"/simple/htmlbig/"] = (
        "".join(f'<a href="{f["url"]}#sha256={f["hashes"]["sha256"]}" data-requires-python="&gt;=3.8">'
                f'{f["filename"]}</a><br>\n' for f in html_page["files"]).encode(), "text/html")
    proxy = await make_proxy(pages_upstream.url)
    sampler = HealthSampler(proxy)
    await deferLater(reactor, 0.1, lambda: None)
    for project in ("big", "htmlbig"):
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


LIST_SIZE = 750_000


def write_list(folder, count: int) -> set[str]:
    """A PEP 503 project list of ``count`` generated names, as a public index writes it;
    the normalised names it holds."""
    folder.mkdir(parents=True)
    with open(folder / "index.html", "w") as out:
        out.write('<!DOCTYPE html>\n<html>\n  <head>\n    <meta name="pypi:repository-version" content="1.1">\n'
                  "    <title>Simple index</title>\n  </head>\n  <body>\n")
        for i in range(count):
            name = f"Proj_{i:x}.Lib" if i % 3 else f"p{i}"
            out.write(f'    <a href="/simple/{name.lower()}/">{name}</a>\n')
        out.write("  </body>\n</html>\n")
    return {f"proj-{i:x}-lib" if i % 3 else f"p{i}" for i in range(count)}


class ThreadSampler(threading.Thread):
    """Asks a process's ``/+health`` every 20 ms from a thread; keeps the slowest answer's time."""

    def __init__(self, root_url: str) -> None:
        super().__init__(daemon=True)
        self.root_url, self.slowest, self.samples = root_url, 0.0, 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            started = time.monotonic()
            status, _, _ = get(self.root_url + "+health", timeout=30)
            assert status == 200
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.samples += 1
            time.sleep(0.02)

    def stop(self) -> float:
        self._halt.set()
        self.join()
        return self.slowest


@pytest_twisted.ensureDeferred
async def test_the_750000_name_list_is_streamed_without_stalling_and_merged_with_private_names(
    twistd, tmp_path, wheels
):
    from twisted.web.static import File

    from pypiproxy.private import PrivateStore
    from pypiproxy.private.validation import check_distribution

    expected = write_list(tmp_path / "upstream" / "simple", LIST_SIZE)
    site = Site(File(str(tmp_path / "upstream")))
    site.noisy = False
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    try:
        cache_dir = tmp_path / "proxy"
        store = PrivateStore(cache_dir / "private", lambda name: tmp_path / f"{name}.part")
        for name in ("zz-private-one", "aaa-private-two"):
            built = wheels.wheel(name, "1.0")
            temporary = store.temporary(built.filename)
            temporary.write_bytes(built.data)
            store.add(temporary, check_distribution(temporary, built.filename))
        upstream = f"http://127.0.0.1:{port.getHost().port}/simple/"
        # A real server process, as in production (and none of this test process's heap).
        proxy = twistd(["--upstream", upstream, "--upstream-timeout", "60"], name="proxy")
        await threads.deferToThread(proxy.wait_ready)
        sampler = ThreadSampler(proxy.root_url)
        sampler.start()
        await deferLater(reactor, 0.1, lambda: None)
        # Cold: fetched (from this process, which keeps serving), sorted and rendered there.
        status, headers, body = await threads.deferToThread(get, proxy.url, None, 300)
        assert status == 200
        status, _, gzipped = await threads.deferToThread(
            get, proxy.url, {"Accept": JSON, "Accept-Encoding": "gzip"}, 300)
        slowest = await threads.deferToThread(sampler.stop)
        print(f"slowest /+health {slowest:.3f}s of {sampler.samples}")
        assert sampler.samples >= 10
        assert slowest < STALL_BOUND, f"/+health took {slowest:.3f}s while the project list was fetched"

        listed = [name.decode() for name in re.findall(rb'<a href="([^"/]+)/">', body)]
        assert listed == sorted(expected | {"zz-private-one", "aaa-private-two"})
        assert [p["name"] for p in json.loads(gzip.decompress(gzipped))["projects"]] == listed
        assert (cache_dir / "pages" / "+simple" / "names.txt").read_text().split() == listed
        # The ETag is the body's: a client holding it gets a 304, with no body sent.
        status, _, again = await threads.deferToThread(get, proxy.url, {"If-None-Match": headers["ETag"]})
        assert (status, again) == (304, b"")
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_an_expired_page_is_answered_at_once_and_one_background_request_refreshes_it(
    make_proxy, fake_index, wheels
):
    fake_index.add("demo", wheels.wheel("demo", "1.0"))
    proxy = await make_proxy(fake_index.url, index_ttl=0.0)
    response, body = await proxy.get("/simple/demo/", {"Accept": JSON})
    assert len(json.loads(body)["files"]) == 1
    fake_index.page_delay = 2.0  # a slow link from now on
    fake_index.add("demo", wheels.wheel("demo", "2.0"))
    before = fake_index.count("/simple/demo/")

    started = time.monotonic()
    answers = await defer.gatherResults([
        defer.ensureDeferred(proxy.get("/simple/demo/", {"Accept": JSON})) for _ in range(5)
    ])
    assert time.monotonic() - started < 1.0, "an expired page must not wait for the upstream"
    assert all(len(json.loads(body)["files"]) == 1 for _, body in answers)
    assert proxy.stats["stale_while_revalidate"] == 5
    await deferLater(reactor, 0.2, lambda: None)
    assert fake_index.count("/simple/demo/") == before + 1, "the clients share one revalidation"

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        _, body = await proxy.get("/simple/demo/", {"Accept": JSON})
        if len(json.loads(body)["files"]) == 2:
            break
        await deferLater(reactor, 0.1, lambda: None)
    assert len(json.loads(body)["files"]) == 2, "the revalidated page is served after it"


@pytest_twisted.ensureDeferred
async def test_an_expired_list_is_answered_at_once_and_a_failing_upstream_keeps_it(make_proxy, pages_upstream):
    def listing(*names: str) -> None:
        pages_upstream.bodies[b"/simple/"] = ("".join(f'<a href="{n}/">{n}</a>' for n in names).encode(), "text/html")

    listing("one", "two")
    proxy = await make_proxy(pages_upstream.url, index_ttl=0.0)
    _, body = await proxy.get("/simple/", {"Accept": JSON})
    assert [p["name"] for p in json.loads(body)["projects"]] == ["one", "two"]

    del pages_upstream.bodies[b"/simple/"]  # now a 404: a failing upstream
    _, body = await proxy.get("/simple/", {"Accept": JSON})
    assert [p["name"] for p in json.loads(body)["projects"]] == ["one", "two"]
    deadline = time.monotonic() + 10
    while proxy.stats["upstream_errors"] < 1 and time.monotonic() < deadline:
        await deferLater(reactor, 0.05, lambda: None)
    assert proxy.stats["upstream_errors"] == 1
    _, body = await proxy.get("/simple/", {"Accept": JSON})
    assert [p["name"] for p in json.loads(body)["projects"]] == ["one", "two"]

    listing("three", "One")
    await deferLater(reactor, 0.1, lambda: None)
    deadline = time.monotonic() + 40  # after the retry backoff (30 s, or the TTL) at the latest
    names: list = []
    while time.monotonic() < deadline:
        _, body = await proxy.get("/simple/", {"Accept": JSON})
        names = [p["name"] for p in json.loads(body)["projects"]]
        if names != ["one", "two"]:
            break
        await deferLater(reactor, 0.1, lambda: None)
    assert names == ["one", "three"]
    assert proxy.stats["stale_while_revalidate"] >= 2


@pytest_twisted.ensureDeferred
async def test_a_revalidation_answered_304_only_touches_the_stored_page(make_proxy, fake_index, wheels, tmp_path):
    """Nothing of a page changes on a 304 but its freshness, kept as the stored file's time:
    the page (3.5 MB of JSON for 10,000 files) is not written again, and a process that
    starts on the directory later (or runs beside) takes it for as fresh as it is."""
    fake_index.add("demo", wheels.wheel("demo", "1.0"))
    cache_dir = tmp_path / "shared"
    proxy = await make_proxy(fake_index.url, cache_dir=cache_dir, index_ttl=1.0)
    await proxy.get("/simple/demo/", {"Accept": JSON})
    stored = cache_dir / "pages" / "demo.json"
    await wait_until(stored.exists, what="the page on disk")
    content, written = stored.read_bytes(), stored.stat().st_mtime
    await deferLater(reactor, 3.0, lambda: None)  # expired, and long ago for a TTL of 2.5 s

    response, _ = await proxy.get("/simple/demo/", {"Accept": JSON})
    assert response.code == 200
    await wait_until(lambda: proxy.stats["upstream_page_not_modified"] == 1 and stored.stat().st_mtime > written,
                     what="the 304 and its touch")
    assert stored.read_bytes() == content

    fetches = fake_index.count("/simple/demo/")
    later = await make_proxy(fake_index.url, cache_dir=cache_dir, index_ttl=2.5)  # fresh by the touch only
    response, body = await later.get("/simple/demo/", {"Accept": JSON})
    assert response.code == 200 and len(json.loads(body)["files"]) == 1
    assert later.stats["stale_while_revalidate"] == 0 and fake_index.count("/simple/demo/") == fetches
