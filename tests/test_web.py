"""The resource tree against a fake upstream: pages, negotiation, caching headers, errors."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from pathlib import Path
from urllib.parse import urljoin

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, threads
from twisted.internet.task import Clock, deferLater
from twisted.web.resource import IResource
from twisted.web.test.requesthelper import DummyRequest

from support.cache import file_path
from support.waiting import wait_until
from support.clients import header, run_client

from pypiproxy import simple
from pypiproxy.cache import CachedPage, FileStore, PageCache
from pypiproxy.stats import Stats
from pypiproxy.web.negotiation import Negotiated, Negotiations

JSON = "application/vnd.pypi.simple.v1+json"
HTML = "text/html"


def file_urls(body: bytes, page: str = "simple/demo/") -> list[str]:
    """The files' URLs, as paths below the proxy's root (resolved like a client would)."""
    base = "http://proxy/" + page
    return [urljoin(base, f["url"]).removeprefix("http://proxy/") for f in json.loads(body)["files"]]


@pytest_twisted.ensureDeferred
async def test_json_page_keeps_every_attribute_and_points_files_at_the_proxy(memory_proxy, memory_index, wheels):
    new = wheels.wheel("demo", "2.0", requires_python=">=3.8")
    old = wheels.wheel("demo", "1.0")
    memory_index.add("demo", new, upload_time="2024-01-02T03:04:05.000000Z", gpg_sig=True)
    memory_index.add("demo", old, yanked="broken build", metadata=False)

    response, body = await memory_proxy.get("simple/demo/", {"Accept": JSON})

    assert response.code == 200
    assert header(response, "Content-Type") == JSON
    assert "Accept" in header(response, "Vary")
    page = json.loads(body)
    assert page["meta"]["api-version"] == "1.1"
    assert page["versions"] == ["1.0", "2.0"] or sorted(page["versions"]) == ["1.0", "2.0"]
    files = {f["filename"]: f for f in page["files"]}
    assert files[new.filename]["hashes"] == {"sha256": new.sha256}
    assert files[new.filename]["requires-python"] == ">=3.8"
    assert files[new.filename]["core-metadata"] == {"sha256": new.metadata_sha256}
    assert files[new.filename]["gpg-sig"] is True
    assert files[new.filename]["size"] == new.size
    assert files[new.filename]["upload-time"] == "2024-01-02T03:04:05.000000Z"
    assert files[old.filename]["yanked"] == "broken build"
    assert "core-metadata" not in files[old.filename]
    for f in page["files"]:
        assert not f["url"].startswith("http"), "file URLs must point back at the proxy"
        assert str(memory_index.port) not in f["url"]


@pytest_twisted.ensureDeferred
async def test_html_page_keeps_fragments_and_data_attributes(memory_proxy, memory_index, wheels):
    built = wheels.wheel("demo", "1.0", requires_python=">=3.8")
    memory_index.add("demo", built, yanked="no longer")

    response, body = await memory_proxy.get("simple/demo/", {"Accept": HTML})

    assert response.code == 200
    assert header(response, "Content-Type").startswith("text/html")
    text = body.decode()
    assert f"#sha256={built.sha256}" in text
    assert 'data-requires-python="&gt;=3.8"' in text
    assert 'data-yanked="no longer"' in text
    assert f'data-core-metadata="sha256={built.metadata_sha256}"' in text
    assert f'data-dist-info-metadata="sha256={built.metadata_sha256}"' in text
    assert "127.0.0.1" not in text


@pytest.mark.parametrize(
    "accept, query, expected",
    [
        (None, "", "text/html"),
        ("*/*", "", "text/html"),
        ("application/vnd.pypi.simple.v1+html", "", "application/vnd.pypi.simple.v1+html"),
        ("application/vnd.pypi.simple.latest+json", "", JSON),
        ("text/html;q=0.5, application/vnd.pypi.simple.v1+json", "", JSON),
        ("text/html", "?format=application/vnd.pypi.simple.v1%2Bjson", JSON),
        ("text/html", "?format=application/vnd.pypi.simple.v1+json", JSON),
    ],
)
@pytest_twisted.ensureDeferred
async def test_content_negotiation(memory_proxy, memory_index, wheels, accept, query, expected):
    memory_index.add("demo", wheels.wheel("demo", "1.0"))
    response, body = await memory_proxy.get("simple/demo/" + query, {"Accept": accept} if accept else {})
    assert response.code == 200
    assert header(response, "Content-Type").split(";")[0] == expected
    if expected == JSON:
        assert json.loads(body)["name"] == "demo"


def test_negotiations_are_remembered_by_every_header_that_decides_them_and_bounded():
    negotiations = Negotiations()

    def ask(accept: str | None, encoding: str | None = None, fmt: str | None = None):
        request = DummyRequest([b""])
        for name, value in ((b"accept", accept), (b"accept-encoding", encoding)):
            if value is not None:
                request.requestHeaders.setRawHeaders(name, [value.encode()])
        if fmt is not None:
            request.args = {b"format": [fmt.encode()]}
        answer = negotiations.of(request)
        assert request.responseHeaders.getRawHeaders(b"vary") == [b"Accept, Accept-Encoding"]
        return answer

    for _ in range(2):  # asked again, each is answered as the first time
        assert ask(JSON, "gzip") == Negotiated("json", JSON, True)
        assert ask(JSON) == Negotiated("json", JSON, False)
        assert ask(JSON, "gzip;q=0") == Negotiated("json", JSON, False)
        assert ask(JSON, fmt="text/html") == Negotiated("html", "text/html", False)
        assert ask(None, "gzip") == Negotiated("html", "text/html", True)
        assert IResource.providedBy(ask("image/png"))
    for i in range(Negotiations.LIMIT * 3):  # made-up headers: parsed, never piled up
        assert IResource.providedBy(ask(f"application/x-{i}"))
        assert len(negotiations._known) <= Negotiations.LIMIT
    assert ask(JSON, "gzip") == Negotiated("json", JSON, True)


@pytest_twisted.ensureDeferred
async def test_unacceptable_format_is_406(memory_proxy, memory_index, wheels):
    memory_index.add("demo", wheels.wheel("demo", "1.0"))
    response, _ = await memory_proxy.get("simple/demo/", {"Accept": "image/png"})
    assert response.code == 406


@pytest.mark.parametrize("path, location", [
    ("simple/Demo_Pkg/", "../demo-pkg/"),
    ("simple/demo.pkg/?format=x", "../demo-pkg/?format=x"),
    ("simple/demo-pkg", "demo-pkg/"),
])
@pytest_twisted.ensureDeferred
async def test_names_are_normalised_with_a_301(memory_proxy, path, location):
    response, _ = await memory_proxy.get(path)
    assert response.code == 301
    assert header(response, "Location") == location


@pytest.mark.parametrize("segment", ["-bad-", "demo%0A", "Demo%0a"])
@pytest_twisted.ensureDeferred
async def test_invalid_names_are_refused_without_asking_upstream(memory_proxy, memory_index, segment):
    response, body = await memory_proxy.get(f"simple/{segment}/")
    assert response.code == 404
    assert b"not a valid project name" in body
    assert memory_index.count("/simple/") == 0


@pytest_twisted.ensureDeferred
async def test_unknown_project_is_404(memory_proxy, memory_index):
    response, _ = await memory_proxy.get("simple/nothing-here/")
    assert response.code == 404
    assert memory_index.count("/simple/nothing-here/") == 1
    # Briefly remembered: a second ask does not go upstream again.
    response, _ = await memory_proxy.get("simple/nothing-here/")
    assert response.code == 404
    assert memory_index.count("/simple/nothing-here/") == 1


@pytest.mark.parametrize("url_style", ["relative", "absolute", "other-host"])
@pytest_twisted.ensureDeferred
async def test_files_are_fetched_whatever_the_upstream_url_style(memory_proxy, memory_index, wheels, url_style):
    memory_index.url_style = url_style
    built = wheels.wheel("demo", "1.0")
    memory_index.add("demo", built)
    _, page = await memory_proxy.get("simple/demo/", {"Accept": JSON})
    (url,) = file_urls(page)
    response, body = await memory_proxy.get(url)
    assert response.code == 200
    assert hashlib.sha256(body).hexdigest() == built.sha256


@pytest_twisted.ensureDeferred
async def test_pip_max_age_zero_is_answered_from_cache_and_etag_gives_304(memory_proxy, memory_index, wheels):
    memory_index.add("demo", wheels.wheel("demo", "1.0"))
    pip_headers = {"Accept": JSON, "Cache-Control": "max-age=0"}
    first, body = await memory_proxy.get("simple/demo/", pip_headers)
    etag = header(first, "ETag")
    assert etag and etag.startswith('"')
    second, again = await memory_proxy.get("simple/demo/", pip_headers)
    assert again == body
    conditional, empty = await memory_proxy.get("simple/demo/", {**pip_headers, "If-None-Match": etag})
    assert conditional.code == 304 and empty == b""
    assert memory_index.count("/simple/demo/") == 1
    # Each format has its own ETag.
    html, _ = await memory_proxy.get("simple/demo/", {"Accept": HTML, "If-None-Match": etag})
    assert html.code == 200 and header(html, "ETag") != etag


@pytest_twisted.ensureDeferred
async def test_gzip_only_when_asked_and_identical_when_decompressed(memory_proxy, memory_index, wheels):
    memory_index.add("demo", wheels.wheel("demo", "1.0"))
    plain, plain_body = await memory_proxy.get("simple/demo/", {"Accept": JSON})
    assert header(plain, "Content-Encoding") is None
    zipped, raw = await memory_proxy.get("simple/demo/", {"Accept": JSON, "Accept-Encoding": "gzip"})
    assert header(zipped, "Content-Encoding") == "gzip"
    assert header(zipped, "Vary") == "Accept, Accept-Encoding"
    assert gzip.decompress(raw) == plain_body
    assert header(zipped, "ETag") != header(plain, "ETag")


@pytest_twisted.ensureDeferred
async def test_stale_page_is_revalidated_with_the_upstream_etag(memory, memory_index, wheels):
    proxy = memory.proxy(memory_index.url, index_ttl=0.0)
    memory_index.add("demo", wheels.wheel("demo", "1.0"))
    await proxy.get("simple/demo/")
    await proxy.get("simple/demo/")  # expired: answered at once, revalidated in the background
    await wait_until(lambda: proxy.stats["upstream_page_not_modified"] == 1)
    conditional = [r for r in memory_index.requests if r.path == "/simple/demo/"]
    assert len(conditional) == 2
    assert "if-none-match" in conditional[1].headers
    # A change upstream shows after revalidation: the request after the one that started it.
    memory_index.add("demo", wheels.wheel("demo", "2.0"))
    _, body = await proxy.get("simple/demo/", {"Accept": JSON})
    assert len(json.loads(body)["files"]) == 1
    for _ in range(100):
        _, body = await proxy.get("simple/demo/", {"Accept": JSON})
        if len(json.loads(body)["files"]) == 2:
            break
        await deferLater(reactor, 0.05, lambda: None)
    assert len(json.loads(body)["files"]) == 2
    assert proxy.stats["stale_while_revalidate"] >= 2


@pytest_twisted.ensureDeferred
async def test_upstream_down_serves_stale_pages_and_cached_files(make_proxy, fake_index, wheels):
    built = wheels.wheel("demo", "1.0")
    fake_index.add("demo", built)
    proxy = await make_proxy(fake_index.url, index_ttl=0.0)
    _, page = await proxy.get("simple/demo/", {"Accept": JSON})
    (url,) = file_urls(page)
    _, first = await proxy.get(url)
    await fake_index.stop()

    response, stale = await proxy.get("simple/demo/", {"Accept": JSON})
    assert response.code == 200 and stale == page
    response, body = await proxy.get(url)
    assert response.code == 200 and body == first == built.data
    # Answered at once; the background revalidation failed and kept the page.
    await wait_until(lambda: proxy.stats["stale_pages_served"] >= 1)

    started = reactor.seconds()
    response, body = await proxy.get("simple/other/")
    assert response.code == 502, body
    assert reactor.seconds() - started < 3


@pytest_twisted.ensureDeferred
async def test_upstream_500_serves_stale_and_uncached_is_502(memory, memory_index, wheels):
    memory_index.add("demo", wheels.wheel("demo", "1.0"))
    memory_index.add("other", wheels.wheel("other", "1.0"))
    proxy = memory.proxy(memory_index.url, index_ttl=0.0)
    await proxy.get("simple/demo/")
    memory_index.fail_pages = 500
    response, _ = await proxy.get("simple/demo/")
    assert response.code == 200
    response, body = await proxy.get("simple/other/")
    assert response.code == 502
    assert b"500" in body


@pytest_twisted.ensureDeferred
async def test_hanging_upstream_gives_504_within_the_timeout(make_proxy, fake_index):
    fake_index.hang_pages = True
    proxy = await make_proxy(fake_index.url, upstream_timeout=1.0)
    started = reactor.seconds()
    response, _ = await proxy.get("simple/demo/")
    elapsed = reactor.seconds() - started
    assert response.code == 504
    assert elapsed < 3


@pytest_twisted.ensureDeferred
async def test_a_cancelled_upstream_request_is_a_cancel_not_a_timeout(fake_index):
    from twisted.internet import defer
    from twisted.internet.task import deferLater

    from pypiproxy.config import parse_upstream
    from pypiproxy.upstream import UpstreamClient, UpstreamTimeout

    fake_index.hang_pages = True
    # Its upstream named, so the guard lets it reach a loopback address.
    client = UpstreamClient(reactor, [parse_upstream(fake_index.url)], timeout=0.5)
    try:
        waiting = defer.ensureDeferred(client.get_page(fake_index.project_url("demo")))
        await deferLater(reactor, 0.1, lambda: None)
        waiting.cancel()
        with pytest.raises(defer.CancelledError):
            await waiting
        # Left alone, the same request times out.
        with pytest.raises(UpstreamTimeout):
            await client.get_page(fake_index.project_url("demo"))
    finally:
        await client.close()


@pytest_twisted.ensureDeferred
async def test_first_upstream_that_has_the_project_wins(memory, memory_index, wheels):
    second = memory.index()
    memory_index.add("shared", wheels.wheel("shared", "1.0"))
    second.add("shared", wheels.wheel("shared", "2.0"))
    second.add("only-second", wheels.wheel("only-second", "1.0"))
    proxy = memory.proxy(memory_index.url, second.url)
    _, body = await proxy.get("simple/shared/", {"Accept": JSON})
    assert [f["filename"] for f in json.loads(body)["files"]] == ["shared-1.0-py3-none-any.whl"]
    response, body = await proxy.get("simple/only-second/", {"Accept": JSON})
    assert response.code == 200 and len(json.loads(body)["files"]) == 1
    response, body = await proxy.get("simple/", {"Accept": JSON})
    names = {p["name"] for p in json.loads(body)["projects"]}
    assert {"shared", "only-second"} <= names


@pytest_twisted.ensureDeferred
async def test_project_list_in_both_formats(memory_proxy, memory_index, wheels):
    memory_index.add("alpha", wheels.wheel("alpha", "1.0"))
    memory_index.add("Beta_Two", wheels.wheel("beta-two", "1.0"))
    response, body = await memory_proxy.get("simple/", {"Accept": JSON})
    assert header(response, "Content-Type") == JSON
    assert {p["name"] for p in json.loads(body)["projects"]} == {"alpha", "beta-two"}
    response, body = await memory_proxy.get("simple/")
    assert re.search(rb'<a href="beta-two/">beta-two</a>', body)
    response, _ = await memory_proxy.get("simple")
    assert response.code == 301


@pytest_twisted.ensureDeferred
async def test_health_and_stats(memory_proxy, memory_index, wheels):
    response, body = await memory_proxy.get("+health")
    assert response.code == 200 and json.loads(body)["status"] == "ok"
    memory_index.add("demo", wheels.wheel("demo", "1.0"))
    _, page = await memory_proxy.get("simple/demo/", {"Accept": JSON})
    (url,) = file_urls(page)
    await memory_proxy.get(url)
    await memory_proxy.get(url)
    _, body = await memory_proxy.get("+stats")
    stats = json.loads(body)
    assert stats["cache_misses"] == 1
    assert stats["cache_hits"] == 1
    assert stats["bytes_fetched"] == len(wheels.wheel("demo", "1.0").data)
    assert stats["bytes_served"] == 2 * stats["bytes_fetched"]
    assert stats["requests"] >= 4
    _, metrics = await memory_proxy.get("+metrics")
    assert b"pypiproxy_cache_hits_total 1" in metrics


@pytest_twisted.ensureDeferred
async def test_junk_paths_are_clean_4xx(memory_proxy):
    for path in ["nope", "files/x", "files/demo/notakey/demo.whl", "files/demo/" + "a" * 64 + "/..",
                 "simple/demo/extra/", "+stats/x"]:
        response, body = await memory_proxy.get(path)
        assert 400 <= response.code < 500, (path, response.code, body)


@pytest_twisted.ensureDeferred
async def test_offline_serves_what_is_cached_and_asks_nobody(memory, memory_index, wheels, tmp_path):
    cached, uncached = wheels.wheel("demo", "1.0"), wheels.wheel("demo", "2.0")
    memory_index.add("demo", cached)
    memory_index.add("demo", uncached)
    online = memory.proxy(memory_index.url, cache_dir=tmp_path / "shared", index_ttl=0.0)
    cached_path = await file_path(online, "demo", cached.filename)
    uncached_path = await file_path(online, "demo", uncached.filename)
    await online.get(cached_path)
    asked = len(memory_index.requests)

    offline = memory.proxy(memory_index.url, cache_dir=tmp_path / "shared", offline=True, index_ttl=0.0)
    response, body = await offline.get("simple/demo/", {"Accept": JSON})
    assert response.code == 200 and len(json.loads(body)["files"]) == 2
    response, body = await offline.get(cached_path)
    assert response.code == 200 and body == cached.data
    response, body = await offline.get(uncached_path)
    assert response.code == 404 and b"not cached" in body
    response, _ = await offline.get("simple/never-seen/")
    assert response.code == 404
    assert len(memory_index.requests) == asked


@pytest.mark.parametrize("accept_encoding, gzipped", [
    ("gzip", True), ("gzip;q=0.5, br", True), ("gzip;q=0", False), ("gzip; q=0.0", False),
    ("*", True), ("identity", False), ("br, *;q=0", False),
])
@pytest_twisted.ensureDeferred
async def test_gzip_follows_the_accept_encoding_qualities(memory_proxy, memory_index, wheels, accept_encoding, gzipped):
    memory_index.add("demo", wheels.wheel("demo", "1.0"))
    response, _ = await memory_proxy.get("simple/demo/", {"Accept-Encoding": accept_encoding})
    assert (header(response, "Content-Encoding") == "gzip") is gzipped


@pytest_twisted.ensureDeferred
async def test_the_access_log_rotates_and_keeps_a_bounded_number_of_files(make_proxy, tmp_path, monkeypatch):
    from pypiproxy.web import GatedSite

    monkeypatch.setattr(GatedSite, "log_rotate_length", 2_000)
    monkeypatch.setattr(GatedSite, "log_rotated_files", 2)
    logs = tmp_path / "logs"
    logs.mkdir()
    proxy = await make_proxy(offline=True, access_log=logs / "access.log")
    for _ in range(60):  # about 6 KB of lines: three rotations
        response, _ = await proxy.get("+health")
        assert response.code == 200
    await deferLater(reactor, 1.0, lambda: None)  # access lines are written within 0.5 s
    assert sorted(p.name for p in logs.iterdir()) == ["access.log", "access.log.1", "access.log.2"]
    assert "GET /+health" in (logs / "access.log.2").read_text()


def _old_pip() -> str | None:
    """An interpreter whose pip is one of those (22.3-23.0) that crash on hashes under the
    JSON key "dist-info-metadata": Debian 12's own python3, on the machines we test on."""
    import subprocess

    from packaging.version import Version

    try:
        out = subprocess.run(["/usr/bin/python3", "-m", "pip", "--version"], capture_output=True,
                             text=True, timeout=60).stdout.split()
    except OSError:
        return None
    if len(out) > 1 and Version("22.3") <= Version(out[1]) < Version("23.1"):
        return "/usr/bin/python3"
    return None


@pytest.mark.skipif(_old_pip() is None, reason="needs an interpreter with pip 22.3-23.0")
@pytest_twisted.ensureDeferred
async def test_an_old_pip_reads_our_json_pages_with_core_metadata(proxy, fake_index, wheels, tmp_path):
    from twisted.internet import threads

    fake_index.add("app", wheels.wheel("app", "1.0", requires_dist=["dep>=1"]))
    fake_index.add("dep", wheels.wheel("dep", "1.0"))
    target = tmp_path / "target"
    result = await threads.deferToThread(run_client, [
        _old_pip(), "-m", "pip", "install", "--isolated", "--no-cache-dir", "--disable-pip-version-check",
        "--index-url", proxy.root_url + "simple/", "--target", str(target), "app",
    ])  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert (target / "app").is_dir() and (target / "dep").is_dir()


def test_a_page_forgotten_while_its_second_write_waits_is_not_left_on_disk(tmp_path):
    held: list[defer.Deferred] = []

    def to_thread(function, *args):  # each write waits until the test lets it run
        gate: defer.Deferred = defer.Deferred()
        held.append(gate)
        return gate.addCallback(lambda _: function(*args))

    pages = PageCache(tmp_path / "pages", None, (), 600, Clock(), Stats(), FileStore(tmp_path), to_thread)
    page = CachedPage(page=simple.ProjectPage("demo"), source="u", fetched_at=1000.0)
    pages._save("demo", page)
    pages._save("demo", page)  # a revalidation while the first write waits
    held[0].callback(None)
    assert len(held) == 2  # the second write waits now
    pages._forget("demo")  # the upstream dropped the project meanwhile
    held[1].callback(None)
    assert not (tmp_path / "pages" / "demo.json").exists()


@pytest_twisted.ensureDeferred
async def test_a_cold_page_is_answered_before_it_is_on_disk(memory, memory_index, wheels):
    """A fetched page is written to disk behind the answer: no client waits for the disk."""
    held: list[defer.Deferred] = []

    def to_thread(function, *args):
        if any(isinstance(a, Path) and a.parent.name == "pages" for a in args):
            gate: defer.Deferred = defer.Deferred()
            held.append(gate)
            return gate.addCallback(lambda _: threads.deferToThread(function, *args))
        return threads.deferToThread(function, *args)

    built = wheels.wheel("demo", "1.0")
    memory_index.add("demo", built)
    proxy = memory.proxy(memory_index.url, to_thread=to_thread)
    response, body = await proxy.get("simple/demo/")
    assert response.code == 200 and built.filename.encode() in body
    stored = proxy.cache_dir / "pages" / "demo.json"
    assert len(held) == 1 and not stored.exists()
    held[0].callback(None)
    await wait_until(stored.exists, what="the page on disk")
    assert json.loads(stored.read_text())["page"]["name"] == "demo"
