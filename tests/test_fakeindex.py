"""The fake upstream and the builders behave as the other tests assume."""

from __future__ import annotations

import csv
import hashlib
import http.client
import io
import json
import subprocess
import sys
import tarfile
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import pytest_twisted
import treq
from twisted.internet import defer, threads
from twisted.web.client import ResponseFailed

from support.builders import build_sdist, build_wheel
from support.clients import clean_client_env
from support.fakeindex import JSON_V1, TEXT_HTML, FakeIndex, negotiate

PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
)


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


async def get(url: str, **kwargs: Any) -> Any:
    """treq.get without connection reuse, so no client connection outlives a test."""
    kwargs.setdefault("persistent", False)
    return await treq.get(url, **kwargs)


def raw_head(url: str) -> tuple[int, dict[str, str]]:
    """A HEAD request with the stdlib client (blocking: run it in a thread)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        conn.request("HEAD", parts.path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


async def json_page(index: FakeIndex, name: str) -> dict[str, Any]:
    resp = await get(index.project_url(name), headers={"Accept": PIP_ACCEPT})
    assert resp.code == 200
    return json.loads(await resp.content())


# ------------------------------------------------------------------ builders


def test_wheel_is_valid_and_reproducible() -> None:
    a = build_wheel("Foo.Bar", "1.0", requires_dist=["six>=1"], requires_python=">=3.8")
    b = build_wheel("Foo.Bar", "1.0", requires_dist=["six>=1"], requires_python=">=3.8")
    assert a == b and a.data == b.data
    assert a.filename == "foo_bar-1.0-py3-none-any.whl"
    assert a.sha256 == hashlib.sha256(a.data).hexdigest()
    with zipfile.ZipFile(io.BytesIO(a.data)) as zf:
        assert zf.testzip() is None
        assert zf.read("foo_bar-1.0.dist-info/METADATA") == a.metadata
        assert b'VERSION = "1.0"' in zf.read("foo_bar/__init__.py")
        rows = list(csv.reader(io.StringIO(zf.read("foo_bar-1.0.dist-info/RECORD").decode())))
        for path, digest, size in rows:
            if path.endswith("RECORD"):
                continue
            content = zf.read(path)
            assert int(size) == len(content)
            assert digest.startswith("sha256=")
    meta = a.metadata.decode()
    assert "Name: Foo.Bar" in meta and "Requires-Dist: six>=1" in meta
    assert "Requires-Python: >=3.8" in meta


def test_extra_bytes_are_incompressible_and_stored() -> None:
    big = build_wheel("big", "2.0", extra_bytes=200_000)
    assert 200_000 < big.size < 210_000
    assert len(zlib.compress(big.data)) > 195_000
    with zipfile.ZipFile(io.BytesIO(big.data)) as zf:
        assert zf.getinfo("big/blob.bin").compress_type == zipfile.ZIP_STORED


def test_sdist_is_valid() -> None:
    s = build_sdist("Foo-Bar", "0.3", requires_dist=["attrs"])
    assert s.filename == "foo_bar-0.3.tar.gz"
    assert s == build_sdist("Foo-Bar", "0.3", requires_dist=["attrs"])
    with tarfile.open(fileobj=io.BytesIO(s.data)) as tar:
        names = tar.getnames()
        assert "foo_bar-0.3/pyproject.toml" in names
        pkg_info = tar.extractfile("foo_bar-0.3/PKG-INFO")
        assert pkg_info is not None and pkg_info.read() == s.metadata


def test_negotiation_matches_the_public_index() -> None:
    assert negotiate(PIP_ACCEPT) == JSON_V1
    assert negotiate(None) == TEXT_HTML
    assert negotiate("*/*") == TEXT_HTML
    assert negotiate("text/html, application/vnd.pypi.simple.v1+json;q=0.5") == TEXT_HTML
    assert negotiate("application/vnd.pypi.simple.latest+json") == JSON_V1
    assert negotiate("text/html", "application/vnd.pypi.simple.v1+json") == JSON_V1


# ------------------------------------------------------------------ pages


@pytest_twisted.ensureDeferred
async def test_json_and_html_by_accept(fake_index: FakeIndex) -> None:
    whl = build_wheel("demo", "1.0", requires_python=">=3.8")
    fake_index.add("demo", whl, upload_time="2024-01-02T03:04:05.000000Z", gpg_sig=True)
    fake_index.add("demo", build_sdist("demo", "0.9"), yanked="broken", metadata=False)

    doc = await json_page(fake_index, "demo")
    assert doc["meta"]["api-version"] == "1.1"
    assert doc["name"] == "demo" and doc["versions"] == ["0.9", "1.0"]
    first, second = doc["files"]
    assert first["hashes"] == {"sha256": whl.sha256}
    assert first["requires-python"] == ">=3.8"
    assert first["core-metadata"] == {"sha256": whl.metadata_sha256}
    assert "dist-info-metadata" not in first
    assert first["size"] == whl.size and first["gpg-sig"] is True
    assert first["upload-time"] == "2024-01-02T03:04:05.000000Z"
    assert first["yanked"] is False and second["yanked"] == "broken"
    assert second["core-metadata"] is False

    resp = await get(fake_index.project_url("demo"))
    assert resp.headers.getRawHeaders("content-type") == ["text/html; charset=utf-8"]
    page = (await resp.content()).decode()
    assert f"#sha256={whl.sha256}" in page
    assert 'data-requires-python="&gt;=3.8"' in page
    assert f'data-core-metadata="sha256={whl.metadata_sha256}"' in page
    assert 'data-dist-info-metadata="sha256=' in page
    assert 'data-yanked="broken"' in page and 'data-gpg-sig="true"' in page

    resp = await get(fake_index.project_url("demo") + "?format=application/vnd.pypi.simple.v1+json")
    assert resp.headers.getRawHeaders("content-type") == [JSON_V1]
    await resp.content()

    resp = await get(fake_index.url, headers={"Accept": PIP_ACCEPT})
    listing = json.loads(await resp.content())
    assert listing["projects"][0]["name"] == "demo"


@pytest_twisted.ensureDeferred
async def test_redirect_and_404(fake_index: FakeIndex) -> None:
    fake_index.add("foo-bar", build_wheel("foo-bar", "1.0"))
    resp = await get(fake_index.url + "Foo_Bar/", allow_redirects=False)
    assert resp.code == 301
    assert resp.headers.getRawHeaders("location") == ["/simple/foo-bar/"]
    await resp.content()
    resp = await get(fake_index.url + "foo-bar", allow_redirects=False)
    assert resp.code == 301
    await resp.content()
    resp = await get(fake_index.url + "nothing-here/")
    assert resp.code == 404
    await resp.content()


@pytest_twisted.ensureDeferred
async def test_etag_and_304(fake_index: FakeIndex) -> None:
    fake_index.add("demo", build_wheel("demo", "1.0"))
    resp = await get(fake_index.project_url("demo"), headers={"Accept": PIP_ACCEPT})
    (etag,) = resp.headers.getRawHeaders("etag")
    await resp.content()
    resp = await get(fake_index.project_url("demo"), headers={"Accept": PIP_ACCEPT, "If-None-Match": etag})
    assert resp.code == 304
    assert await resp.content() == b""
    html_resp = await get(fake_index.project_url("demo"))
    assert html_resp.headers.getRawHeaders("etag") != [etag]  # each format its own ETag
    await html_resp.content()


@pytest.mark.parametrize("style", ["relative", "absolute", "other-host"])
@pytest_twisted.ensureDeferred
async def test_url_styles(fake_index: FakeIndex, style: str) -> None:
    whl = build_wheel("demo", "1.0")
    fake_index.add("demo", whl)
    fake_index.url_style = style
    doc = await json_page(fake_index, "demo")
    link = doc["files"][0]["url"]
    if style == "relative":
        assert link.startswith("../../files/")
    elif style == "absolute":
        assert link.startswith(fake_index.root_url + "files/")
    else:
        assert link.startswith(fake_index.other_root_url + "files/")
        assert fake_index.other_port != fake_index.port
    resp = await get(urljoin(fake_index.project_url("demo"), link))
    assert resp.length == whl.size
    assert await resp.content() == whl.data
    expected_port = fake_index.other_port if style == "other-host" else fake_index.port
    assert fake_index.requests[-1].port == expected_port


# ------------------------------------------------------------------ files


@pytest_twisted.ensureDeferred
async def test_metadata_range_and_count(fake_index: FakeIndex) -> None:
    whl = build_wheel("demo", "1.0")
    fake_index.add("demo", whl)
    url = fake_index.file_url(whl.filename)

    resp = await get(url + ".metadata")
    assert await resp.content() == whl.metadata
    resp = await get(url, headers={"Range": "bytes=-100"})
    assert resp.code == 206
    assert resp.headers.getRawHeaders("content-range") == [f"bytes {whl.size - 100}-{whl.size - 1}/{whl.size}"]
    assert await resp.content() == whl.data[-100:]
    # Twisted's client reports HEAD responses as length 0; look at the raw headers instead.
    status, headers = await threads.deferToThread(raw_head, url)
    assert status == 200 and headers["content-length"] == str(whl.size)

    assert fake_index.count(whl.filename) == 3
    assert fake_index.count(whl.filename + ".metadata") == 1
    assert fake_index.count(whl.filename, method="HEAD") == 1
    assert fake_index.requests[-1].method == "HEAD"


@pytest_twisted.ensureDeferred
async def test_die_aborts_midway(fake_index: FakeIndex) -> None:
    whl = build_wheel("demo", "1.0", extra_bytes=300_000)
    fake_index.add("demo", whl, behaviour="die")
    resp = await get(fake_index.file_url(whl.filename))
    assert resp.length == whl.size
    received: list[bytes] = []
    with pytest.raises(ResponseFailed):
        await treq.collect(resp, received.append)
    assert 0 < sum(map(len, received)) < whl.size


@pytest_twisted.ensureDeferred
async def test_hang_hangs(fake_index: FakeIndex) -> None:
    whl = build_wheel("demo", "1.0")
    fake_index.add("demo", whl, behaviour="hang")
    resp = await get(fake_index.file_url(whl.filename), timeout=2)
    assert resp.code == 200
    body = treq.content(resp)
    body.addTimeout(0.3, _reactor())
    with pytest.raises(defer.TimeoutError):
        await body


@pytest_twisted.ensureDeferred
async def test_hanging_and_failing_pages(fake_index: FakeIndex) -> None:
    fake_index.add("demo", build_wheel("demo", "1.0"))
    fake_index.hang_pages = True
    with pytest.raises((defer.CancelledError, defer.TimeoutError, ResponseFailed)):
        await get(fake_index.project_url("demo"), timeout=0.3)
    fake_index.hang_pages = False
    fake_index.fail_pages = 503
    resp = await get(fake_index.project_url("demo"))
    assert resp.code == 503
    await resp.content()


@pytest_twisted.ensureDeferred
async def test_slow_wrong_hash_and_errors(fake_index: FakeIndex) -> None:
    fake_index.slow_chunks, fake_index.slow_delay = 4, 0.05
    slow = fake_index.add("demo", build_wheel("demo", "1.0"), behaviour="slow").built
    bad = fake_index.add("demo", build_wheel("demo", "2.0"), behaviour="wrong-hash").built
    broken = fake_index.add("demo", build_wheel("demo", "3.0"), behaviour="500").built

    started = time.monotonic()
    resp = await get(fake_index.file_url(slow.filename))
    assert await resp.content() == slow.data
    assert time.monotonic() - started >= 0.15

    resp = await get(fake_index.file_url(bad.filename))
    data = await resp.content()
    assert len(data) == bad.size and hashlib.sha256(data).hexdigest() != bad.sha256

    resp = await get(fake_index.file_url(broken.filename))
    assert resp.code == 500
    await resp.content()


@pytest_twisted.ensureDeferred
async def test_basic_auth() -> None:
    index = FakeIndex(require_auth=("user", "secret"))
    await index.start(_reactor())
    try:
        whl = build_wheel("demo", "1.0")
        index.add("demo", whl)
        resp = await get(index.project_url("demo"))
        assert resp.code == 401
        assert resp.headers.getRawHeaders("www-authenticate") == ['Basic realm="fakeindex"']
        await resp.content()
        resp = await get(index.file_url(whl.filename), auth=("user", "wrong"))
        assert resp.code == 401
        await resp.content()
        resp = await get(index.file_url(whl.filename), auth=("user", "secret"))
        assert await resp.content() == whl.data
        # The "other host" is a credential-free file host.
        resp = await get(index.other_root_url + index.entry(whl.filename).path.lstrip("/"))
        assert await resp.content() == whl.data
        assert index.auth_url == f"http://user:secret@127.0.0.1:{index.port}/simple/"
    finally:
        await index.stop()


# ------------------------------------------------------------------ in memory


@pytest_twisted.ensureDeferred
async def test_in_memory_the_proxy_and_its_indexes_use_no_socket(memory, wheels, monkeypatch) -> None:
    from twisted.internet import reactor

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"an in-memory test opened a socket: {args}")

    for method in ("listenTCP", "connectTCP", "listenSSL", "connectSSL", "listenUNIX", "connectUNIX"):
        monkeypatch.setattr(reactor, method, refused)
    index = memory.index(url_style="other-host")
    second = memory.index()
    built = wheels.wheel("demo", "1.0")
    index.add("demo", built)
    second.add("only-second", wheels.wheel("only-second", "1.0"))
    proxy = memory.proxy(index.url, second.url)
    response, body = await proxy.get("simple/demo/", {"Accept": JSON_V1})
    assert response.code == 200
    (link,) = [f["url"] for f in json.loads(body)["files"]]
    response, body = await proxy.get(urljoin("simple/demo/", link))
    assert (response.code, body) == (200, built.data)
    response, _ = await proxy.get("simple/only-second/")
    assert response.code == 200
    # Each index saw its own requests, and the file came from the "other host" port.
    assert [r.port for r in index.requests if r.path.endswith(built.filename)] == [index.other_port]
    assert second.count("/simple/only-second/") == 1 and index.count("/simple/only-second/") == 1


# ------------------------------------------------------------------ real clients


@pytest_twisted.ensureDeferred
async def test_pip_installs_from_fake_index(fake_index: FakeIndex, tmp_path: Path) -> None:
    fake_index.add("Demo-Pkg", build_wheel("Demo-Pkg", "1.0"))
    fake_index.add("Demo-Pkg", build_wheel("Demo-Pkg", "1.1", requires_python=">=3.8"))
    fake_index.add("Demo-Pkg", build_wheel("Demo-Pkg", "2.0", requires_python="<3"))
    target = tmp_path / "target"
    cmd = [
        sys.executable, "-m", "pip", "install", "--isolated", "--no-cache-dir",
        "--index-url", fake_index.url, "--target", str(target), "demo_pkg",
    ]  # fmt: skip
    result = await threads.deferToThread(
        subprocess.run, cmd, env=clean_client_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (target / "demo_pkg" / "__init__.py").read_text() == 'VERSION = "1.1"\n'
    assert fake_index.count("/files/demo-pkg/demo_pkg-1.1-py3-none-any.whl.metadata") == 1
    assert fake_index.count("/files/demo-pkg/demo_pkg-1.1-py3-none-any.whl", method="GET") == 2
