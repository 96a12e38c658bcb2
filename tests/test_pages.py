"""Pages for people, in memory: the landing page, search, project pages, descriptions, headers."""

from __future__ import annotations

import re
import time
from html import unescape

import bcrypt
import pytest
import pytest_twisted

from support.cache import add_private
from support.fakeindex import days_ago

from twisted.web.template import flattenString

from pypiproxy.web.people.description import description_tag
from pypiproxy.web.people.names import NameIndex


def header(response, name: str) -> str | None:
    values = response.headers.getRawHeaders(name)
    return values[0] if values else None


def text_of(body: bytes) -> str:
    """The page's text as a reader sees it: tags gone, entities resolved, spaces squeezed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", body.decode())))


def assert_html_headers(response) -> None:
    assert header(response, "Content-Type") == "text/html; charset=utf-8"
    policy = header(response, "Content-Security-Policy")
    assert "default-src 'self'" in policy and "script-src 'none'" in policy
    assert header(response, "X-Content-Type-Options") == "nosniff"


# The landing page ------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_landing_page_settings_follow_the_host_and_scheme_the_browser_used(memory, memory_index, tmp_path, wheels):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    add_private(cache_dir, wheels.wheel("corp-app", "1.0"))
    with_secret = memory_index.url.replace("http://", "http://reader:s3cret-word@")
    proxy = memory.proxy(with_secret, cache_dir=cache_dir)

    response, body = await proxy.get("", {"Host": "packages.corp.example:8080"})
    assert response.code == 200
    assert_html_headers(response)
    text = text_of(body)
    assert "index-url = http://packages.corp.example:8080/simple/" in text
    assert "trusted-host = packages.corp.example:8080" in text
    assert 'url = "http://packages.corp.example:8080/simple/"' in text  # uv.toml
    assert "[[index]]" in text
    assert "repository = http://packages.corp.example:8080/legacy/" in text  # .pypirc
    assert "twine upload --repository-url http://packages.corp.example:8080/legacy/ dist/*" in text
    assert "uv publish --publish-url http://packages.corp.example:8080/legacy/ dist/*" in text
    assert "poetry source add --priority=primary pypiproxy http://packages.corp.example:8080/simple/" in text
    assert memory_index.url in text  # the upstream, without its credentials
    assert "s3cret-word" not in body.decode() and "reader" not in body.decode()
    assert re.search(r"Private projects 1 ", text)
    assert '<form class="search big" method="get" action="+search"' in body.decode()

    # Behind a TLS-terminating proxy: the scheme the browser used, and no trusted-host.
    response, body = await proxy.get("", {"Host": "packages.corp.example", "X-Forwarded-Proto": "https"})
    text = text_of(body)
    assert "index-url = https://packages.corp.example/simple/" in text
    assert "trusted-host" not in text

    # A Host header that is not a host name is never shown back.
    response, body = await proxy.get("", {"Host": "evil<script>"})
    assert b"evil" not in body
    assert re.search(r"index-url = http://[0-9.]+:\d+/simple/ ", text_of(body))  # the server's own address


@pytest_twisted.ensureDeferred
async def test_landing_page_counts_cached_files_and_the_hit_ratio(memory_proxy, memory_index, wheels):
    built = wheels.wheel("demo", "1.0", extra_bytes=5000)
    memory_index.add("demo", built)
    _, page = await memory_proxy.get("simple/demo/", {"Accept": "application/vnd.pypi.simple.v1+json"})
    url = re.search(r'"url":\s*"\.\./\.\./([^"]+)"', page.decode()).group(1)
    for _ in range(4):  # one miss, three hits
        response, data = await memory_proxy.get(url)
        assert data == built.data

    _, body = await memory_proxy.get("")
    text = text_of(body)
    assert "75% (3 of 4 files from the cache)" in text
    assert f"1 files, {built.size / 1024:.1f} KiB" in text


# Search ----------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_search_lists_private_then_cached_then_upstream_names(memory, memory_index, tmp_path, wheels):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    add_private(cache_dir, wheels.wheel("corp-tool", "1.0"))
    for name in ("tool-upstream", "toolkit-cached", "unrelated"):
        memory_index.add(name, wheels.wheel(name, "1.0"))
    proxy = memory.proxy(memory_index.url, cache_dir=cache_dir)
    await proxy.get("simple/toolkit-cached/")  # now its page is held

    response, body = await proxy.get("+search?q=TOOL")
    assert response.code == 200
    assert_html_headers(response)
    found = re.findall(r'href="project/([^/]+)/">[^<]+</a>\s*<span class="badge (\w+)"', body.decode())
    assert found == [("corp-tool", "private"), ("toolkit-cached", "cached"), ("tool-upstream", "upstream")]
    assert 'value="TOOL"' in body.decode()  # the box keeps what was typed

    _, body = await proxy.get("+search?q=Toolkit_Cached")  # the way names are normalised
    assert re.findall(r'href="project/([^/]+)/"', body.decode()) == ["toolkit-cached"]

    _, body = await proxy.get("+search?q=%3Cscript%3E")
    assert b"<script>" not in body
    assert "letters, digits" in text_of(body)

    _, body = await proxy.get("+search?q=nothing-like-it")
    assert "No project name contains it." in text_of(body)


def test_name_search_answers_fast_on_a_long_list_and_puts_the_exact_name_first(tmp_path):
    names = [f"project-{i}" for i in range(750_000)] + ["needle-thing", "needle"]
    started = time.monotonic()
    index = NameIndex(names)
    found = index.search("needle", limit=300)
    miss = index.search("no-such-name-anywhere", limit=300)
    elapsed = time.monotonic() - started
    assert found == ["needle", "needle-thing"]
    assert miss == []
    assert len(index.search("project-1", limit=300)) == 300
    assert index.search("needle", limit=300, skip=frozenset({"needle"})) == ["needle-thing"]
    assert elapsed < 2.0, f"building and searching 750,000 names took {elapsed:.2f}s"

    # The same over a names file (one a line), as the project list on disk writes it.
    path = tmp_path / "names.txt"
    path.write_text("needle\n" + "\n".join(names[:1000]) + "\nlast-needle")
    on_disk = NameIndex.of_file(path)
    assert on_disk.search("needle", limit=10) == ["needle", "last-needle"]
    assert "last-needle" in on_disk and "needle" in on_disk and "project-999" in on_disk
    assert "project-99" + "9-" not in on_disk
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert NameIndex.of_file(empty).search("x", limit=10) == []


# Project pages ---------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_project_page_shows_versions_newest_first_with_yanked_files_and_their_reason(memory_proxy, memory_index, wheels):
    memory_index.add("demo", wheels.wheel("demo", "1.0"), yanked="broken build", upload_time="2024-01-02T03:04:05Z")
    memory_index.add("demo", wheels.wheel("demo", "10.0", requires_python=">=3.9"))
    memory_index.add("demo", wheels.wheel("demo", "2.0"))

    response, body = await memory_proxy.get("project/Demo/")
    assert response.code == 301
    assert header(response, "Location") == "../demo/"
    response, body = await memory_proxy.get("project/demo")
    assert (response.code, header(response, "Location")) == (301, "demo/")

    response, body = await memory_proxy.get("project/demo/")
    assert response.code == 200
    assert_html_headers(response)
    html = body.decode()
    assert re.findall(r'<section class="version" id="v([^"]+)"', html) == ["10.0", "2.0", "1.0"]
    text = text_of(body)
    assert "1.0 yanked Yanked: broken build" in text
    assert "2024-01-02 03:04 UTC" in text
    assert ">=3.9" in text
    assert "upstream" in re.search(r'<span class="badge (\w+)">', html).group(1)
    assert "pip install --index-url http://proxy.test/simple/ demo" in text
    # The file links lead to our own file URLs, as on /simple/.
    assert re.search(r'href="\.\./\.\./files/demo/[0-9a-f]{64}/demo-10\.0-py3-none-any\.whl"', html)


@pytest_twisted.ensureDeferred
async def test_project_page_shows_metadata_only_where_it_is_at_hand_and_never_downloads(memory_proxy, memory_index, wheels):
    built = wheels.wheel("demo", "1.0", summary="Makes demos", requires_dist=["attrs>=21"],
                         description="# Demo\n\nSome *words*.", description_content_type="text/markdown")
    memory_index.add("demo", built)

    _, body = await memory_proxy.get("project/demo/")
    assert "No metadata of this project is held here yet" in text_of(body)
    assert memory_index.count("/files/") == 0, "a page view must not download anything"

    _, page = await memory_proxy.get("simple/demo/", {"Accept": "application/vnd.pypi.simple.v1+json"})
    url = re.search(r'"url":\s*"\.\./\.\./([^"]+)"', page.decode()).group(1)
    response, data = await memory_proxy.get(url)
    assert data == built.data

    _, body = await memory_proxy.get("project/demo/")
    html, text = body.decode(), text_of(body)
    assert '<p class="summary">Makes demos</p>' in html
    assert "attrs>=21" in text
    assert "<em>words</em>" in html  # Markdown, rendered
    assert memory_index.count("/files/") == 1


@pytest_twisted.ensureDeferred
async def test_private_project_page_reads_the_uploads_metadata(memory, memory_index, tmp_path, wheels):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    add_private(cache_dir, wheels.wheel("corp-app", "2.3", summary="The company app",
                                        description="Corp\n====\n\nreST *too*.\n"))
    proxy = memory.proxy(memory_index.url, cache_dir=cache_dir)

    _, body = await proxy.get("project/corp-app/")
    html = body.decode()
    assert '<span class="badge private">private</span>' in html
    assert '<p class="summary">The company app</p>' in html
    assert "<em>too</em>" in html  # reST, rendered: the default without a content type
    assert memory_index.count("/simple/corp-app/") == 0


@pytest_twisted.ensureDeferred
async def test_unknown_projects_and_bad_names_are_404_pages(memory_proxy):
    response, body = await memory_proxy.get("project/no-such-project/")
    assert response.code == 404
    assert_html_headers(response)
    assert "no project named 'no-such-project'" in text_of(body)
    response, body = await memory_proxy.get("project/%3Cb%3E/")
    assert response.code == 404
    assert b"<b>" not in body
    response, _ = await memory_proxy.get("project/")
    assert response.code == 404
    response, _ = await memory_proxy.get("project/demo/extra")
    assert response.code == 404


@pytest_twisted.ensureDeferred
async def test_the_stylesheet_is_served_from_this_origin(memory_proxy):
    response, body = await memory_proxy.get("+static/style.css")
    assert response.code == 200
    assert header(response, "Content-Type") == "text/css; charset=utf-8"
    assert header(response, "X-Content-Type-Options") == "nosniff"
    assert b"prefers-color-scheme: dark" in body
    assert b"url(" not in body  # nothing loaded from anywhere
    response, _ = await memory_proxy.get("+static/other.css")
    assert response.code == 404


@pytest_twisted.ensureDeferred
async def test_with_auth_all_the_pages_need_the_login_and_health_does_not(memory, memory_index, tmp_path):
    users = tmp_path / "htpasswd"
    users.write_text("alice:" + bcrypt.hashpw(b"wonder", bcrypt.gensalt(4)).decode() + "\n")
    proxy = memory.proxy(memory_index.url, htpasswd=users, auth="all")
    for path in ("", "+search?q=x", "project/demo/", "+static/style.css"):
        response, _ = await proxy.get(path)
        assert response.code == 401, path
    response, _ = await proxy.get("+health")
    assert response.code == 200
    response, body = await proxy.get("", {"Authorization": "Basic YWxpY2U6d29uZGVy"})
    assert response.code == 200
    assert b"index-url" in body


# Descriptions ----------------------------------------------------------------------------------

HOSTILE_MARKDOWN = """# Hello

<script>document.title = 'pwned'</script>

Look: <img src="x" onerror="document.title='pwned'" alt="a picture">

<a href="javascript:document.title='pwned'">click me</a> and [me too](javascript:alert(1)).

<div onclick="alert(1)" style="position:fixed">styled</div>

<iframe src="http://127.0.0.2/"></iframe>

Type `<script>` to start [a link](https://example.org/docs).
"""


def flatten(tag) -> str:
    result: list[bytes] = []
    flattenString(None, tag).addCallback(result.append)
    return result[0].decode()


@pytest.mark.parametrize("content_type", ["text/markdown", "text/x-rst", "text/plain", None])
def test_a_hostile_description_never_becomes_markup(content_type):
    html = flatten(description_tag(HOSTILE_MARKDOWN, content_type))
    assert "<script" not in html and "<iframe" not in html and "<img" not in html
    for attribute in re.findall(r"<\w+([^>]*)>", html):
        assert "on" not in re.findall(r"\s(\w+)=", attribute) and not re.search(r"\son\w+=", attribute)
        assert "style=" not in attribute
        assert "javascript:" not in attribute
    if content_type == "text/markdown":
        assert "<code>&lt;script&gt;</code>" in html  # shown as text
        assert "&lt;script&gt;document.title" in html
        assert 'href="https://example.org/docs"' in html
        assert "click me" in html and "me too" in html  # the links' words stay, without the link
        assert "[a picture]" in html
    else:
        assert "&lt;script&gt;" in html  # reST and text show the markup as text


def test_unrenderable_rst_is_shown_as_text():
    html = flatten(description_tag("Title\n===\n\n.. raw:: html\n\n   <script>x()</script>\n", "text/x-rst"))
    assert "<script" not in html


@pytest_twisted.ensureDeferred
async def test_a_project_with_many_versions_shows_the_newest_in_full_and_lists_the_rest(memory_proxy, memory_index, wheels):
    from pypiproxy.web.people.project import MAX_VERSIONS

    count = MAX_VERSIONS + 5
    for minor in range(count):
        memory_index.add("big", wheels.wheel("big", f"1.{minor}"), yanked=(minor == 0))
    response, body = await memory_proxy.get("project/big/")
    html = body.decode()
    shown = re.findall(r'<section class="version" id="v([^"]+)"', html)
    assert shown == [f"1.{m}" for m in range(count - 1, count - 1 - MAX_VERSIONS, -1)]
    older = re.search(r'<section class="older">(.*?)</section>', html, re.S).group(1)
    assert text_of(older.encode()).split("Older versions ")[1].startswith("1.4, 1.3, 1.2, 1.1, 1.0 yanked")
    assert 'href="../../simple/big/"' in older


@pytest_twisted.ensureDeferred
async def test_the_landing_page_lists_the_guard_rules_in_force(memory, memory_index, tmp_path):
    block = tmp_path / "block.txt"
    block.write_text("evil-package  # a known bad one\ndemo<2\n")
    proxy = memory.proxy(memory_index.url, min_age=7 * 86400.0, block=block)
    _, body = await proxy.get("")
    text = text_of(body)
    assert "Guard rules" in text
    assert "files newer than 7d are held back" in text
    assert "blocked: evil-package" in text and "blocked: demo<2" in text

    _, plain = await memory.proxy(memory_index.url).get("")
    assert "Guard rules" not in text_of(plain)


@pytest_twisted.ensureDeferred
async def test_the_project_page_shows_its_status_and_what_the_guard_holds_back(memory, memory_index, tmp_path, wheels):
    block = tmp_path / "block.txt"
    block.write_text("demo==1.1\n")
    memory_index.add("demo", wheels.wheel("demo", "1.0"), upload_time=days_ago(30))
    memory_index.add("demo", wheels.wheel("demo", "1.1"), upload_time=days_ago(20))
    memory_index.add("demo", wheels.wheel("demo", "2.0"), upload_time=days_ago(1))
    memory_index.set_status("demo", "deprecated", "use demo2 instead")
    proxy = memory.proxy(memory_index.url, min_age=7 * 86400.0, block=block)

    response, body = await proxy.get("project/demo/")
    assert response.code == 200
    html, text = body.decode(), text_of(body)
    assert "This project is deprecated: use demo2 instead" in text
    # Only what is offered is listed as a version; the rest is said with its reason.
    assert re.findall(r'<section class="version" id="v([^"]+)"', html) == ["1.0"]
    withheld = text.split("Not offered here")[1]
    assert "demo-2.0-py3-none-any.whl held back" in withheld and "--min-age 7d" in withheld
    assert "demo-1.1-py3-none-any.whl blocked" in withheld and "demo==1.1" in withheld

    memory_index.add("sus", wheels.wheel("sus", "1.0"))
    memory_index.set_status("sus", "quarantined", "malware reported")
    response, body = await proxy.get("project/sus/")
    text = text_of(body)
    assert response.code == 200
    assert "This project is quarantined: malware reported" in text
    assert "No file of this project is served here" in text
    assert '<section class="version"' not in body.decode()
