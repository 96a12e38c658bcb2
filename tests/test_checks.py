"""Hostile upstream pages: bad names and URLs are dropped before anything is served or fetched."""

from __future__ import annotations

import json

import pytest_twisted

from pypiproxy.simple import FileEntry, ProjectPage

from support.cache import JSON, file_path
from support.clients import header

GOOD = "good-1.0-py3-none-any.whl"


def entry(filename: str, url: str | None = None) -> FileEntry:
    return FileEntry(filename=filename, url=url or f"http://127.0.0.1:1/files/{filename}")


def test_only_wheel_and_sdist_names_with_http_urls_are_kept():
    from pypiproxy.simple.checks import checked_page

    hostile = [
        "../../../../simple/victim/", "a/b-1.0.tar.gz", "a\\b-1.0.tar.gz", "x-1.0.tar.gz\r\nSet-Cookie: a",
        "<script>alert(1)</script>-1.0.tar.gz", "x-1.0.tar.gz\x00", "", "x" * 300 + ".tar.gz",
        "not-a-wheel.whl", "readme.txt", "-1.0.tar.gz",
    ]
    page = ProjectPage("p", tuple(entry(n) for n in hostile) + (
        entry(GOOD), entry("good-1.0.tar.gz"), entry("Old_Name-0.1.tar.bz2"),
        entry("good-1.1.tar.gz", "file:///etc/passwd"), entry("good-1.2.tar.gz", "http://127.0.0.1:99999/x"),
        entry("good-1.3.tar.gz", "javascript:alert(1)"), entry("good-1.4.tar.gz", "http:///nohost"),
    ))
    kept, dropped = checked_page(page)
    assert [e.filename for e in kept.files] == [GOOD, "good-1.0.tar.gz", "Old_Name-0.1.tar.bz2"]
    assert sum(dropped.values()) == len(hostile) + 4 and dropped["bad URL"] == 4


def test_only_pep508_names_are_listed():
    from pypiproxy.simple.checks import checked_names

    names, dropped = checked_names(["ok", "javascript:alert(1)//", "a b", "<x>", "fine.name", "n" * 5000])
    assert names == ("ok", "fine.name") and dropped == 4


@pytest_twisted.ensureDeferred
async def test_a_hostile_page_through_a_running_proxy(proxy, fake_index, wheels):
    built = wheels.wheel("trav", "1.0")
    fake_index.add("trav", built)  # makes the project exist; its page is replaced below
    fake_index.raw_files["/files/trav/" + built.filename] = built.data
    files = [
        {"filename": "../../../../simple/victim/", "url": "/files/trav/x", "hashes": {"sha256": "a" * 64}},
        {"filename": "x-1.0.tar.gz\r\n<script>alert(1)</script>", "url": "/files/trav/y", "hashes": {}},
        {"filename": built.filename, "url": "/files/trav/" + built.filename, "hashes": {"sha256": built.sha256}},
    ]
    fake_index.raw_pages["trav"] = (json.dumps({"meta": {"api-version": "1.0"}, "name": "trav", "files": files}).encode(),
                                    "application/vnd.pypi.simple.v1+json")
    fake_index.raw_pages[""] = (
        b'<html><body><a href="javascript:alert(1)//">javascript:alert(1)//</a><a href="trav/">trav</a></body></html>',
        "text/html",
    )
    response, body = await proxy.get("simple/trav/", {"Accept": JSON})
    assert response.code == 200
    assert [f["filename"] for f in json.loads(body)["files"]] == [built.filename]
    response, body = await proxy.get("simple/trav/")
    assert response.code == 200 and b"victim" not in body and b"<script>" not in body and b"\r" not in body
    assert header(response, "X-Content-Type-Options") == "nosniff"
    assert "default-src 'none'" in header(response, "Content-Security-Policy")

    response, body = await proxy.get("simple/")
    assert response.code == 200 and b"javascript" not in body and b'href="trav/"' in body
    assert "default-src 'none'" in header(response, "Content-Security-Policy")


def json_page(name: str, files: list) -> tuple[bytes, str]:
    return json.dumps({"meta": {"api-version": "1.0"}, "name": name, "files": files}).encode(), JSON


@pytest_twisted.ensureDeferred
async def test_hostile_pages_are_a_502_or_the_stale_copy_never_a_500(make_proxy, fake_index, wheels):
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    built = wheels.wheel("deep", "1.0")
    fake_index.add("deep", built)
    proxy = await make_proxy(fake_index.url, index_ttl=0.2)
    response, good = await proxy.get("simple/deep/", {"Accept": JSON})
    assert response.code == 200
    nested = b'{"files": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    fake_index.raw_pages["deep"] = (nested, JSON)
    await deferLater(reactor, 0.5, lambda: None)  # well past the TTL
    response, body = await proxy.get("simple/deep/", {"Accept": JSON})
    assert response.code == 200 and body == good  # the stale copy
    fake_index.raw_pages["fresh"] = (nested, JSON)
    fake_index.add_project("fresh")
    response, body = await proxy.get("simple/fresh/", {"Accept": JSON})
    assert response.code == 502 and b"nested too deeply" in body, body

    # Fields of the wrong type are taken as absent; a file URL with a bad port is dropped.
    fake_index.add_project("typed")
    fake_index.raw_pages["typed"] = json_page("typed", [
        {"filename": built.filename, "url": "/files/deep/" + built.filename,
         "hashes": {"sha256": built.sha256}, "requires-python": 3, "yanked": ["x"], "size": "big",
         "upload-time": 7, "gpg-sig": "yes", "core-metadata": {"sha256": 5}},
        {"filename": "deep-2.0.tar.gz", "url": "http://127.0.0.1:99999/x.tar.gz", "hashes": {"sha256": "b" * 64}},
    ])
    for accept in (JSON, "text/html"):
        response, body = await proxy.get("simple/typed/", {"Accept": accept})
        assert response.code == 200, body
        assert b"deep-2.0" not in body
    [entry] = json.loads((await proxy.get("simple/typed/", {"Accept": JSON}))[1])["files"]
    assert "requires-python" not in entry and "size" not in entry and entry["hashes"] == {"sha256": built.sha256}
    path = await file_path(proxy, "typed", built.filename)
    for suffix, headers in (("", {}), ("", {"Range": "bytes=0-9"}), (".metadata", {})):
        response, _ = await proxy.get(path + suffix, headers)
        assert response.code < 500


class _Answer:
    """What UpstreamClient.get_page answers: a 200 with a content type."""

    code = 200
    url = "http://127.0.0.1:1/simple/big/"

    def header(self, name: str) -> str | None:
        return {"Content-Type": "text/html"}.get(name)


class _Client:
    def __init__(self, body: bytes) -> None:
        self.body = body

    async def get_page(self, url, etag=None, last_modified=None):
        return _Answer(), self.body


@pytest_twisted.ensureDeferred
async def test_a_big_page_is_checked_in_the_thread_it_is_parsed_in():
    # Checking each entry of a 10,000-file page stalled the reactor for ~0.5 s when it ran there.
    from twisted.internet import defer

    from pypiproxy.upstream.index import INLINE_PARSE_LIMIT, fetch_project

    anchors = [f'<a href="/files/big-1.{i}.0.tar.gz">big-1.{i}.0.tar.gz</a>' for i in range(2000)]
    body = ("\n".join(anchors + ['<a href="/files/x">readme.txt</a>'])).encode()
    assert len(body) > INLINE_PARSE_LIMIT
    in_thread = []

    def to_thread(function, *args):
        result = function(*args)
        in_thread.append(result)
        return defer.succeed(result)

    fetched = await fetch_project(_Client(body), "http://127.0.0.1:1/simple/", "big", to_thread=to_thread)
    assert len(fetched.page.files) == 2000 and "readme.txt" not in {e.filename for e in fetched.page.files}
    (thread_page, dropped), = in_thread
    assert thread_page.files == fetched.page.files and dropped["not a wheel or sdist"] == 1
