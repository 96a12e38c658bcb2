"""The index model: parsing both formats and rendering them back loses nothing."""

from __future__ import annotations

import json

from hypothesis import given, strategies as st

from pypiproxy import simple

PAGE = "https://index.example/simple/demo/"


def test_html_parsing_resolves_relative_urls_and_reads_attributes():
    body = b"""<!DOCTYPE html><html><body>
    <a href="../../packages/demo-1.0.tar.gz#sha256=ABC" data-requires-python="&gt;=3.8"
       data-yanked="" data-gpg-sig="true">demo-1.0.tar.gz</a>
    <a href="https://files.example/demo-2.0-py3-none-any.whl#md5=123"
       data-dist-info-metadata="sha256=def">demo-2.0-py3-none-any.whl</a>
    </body></html>"""
    page = simple.parse_project_html(body, PAGE, "Demo")
    first, second = page.files
    assert first.url == "https://index.example/packages/demo-1.0.tar.gz"
    assert first.hashes == {"sha256": "abc"}
    assert first.requires_python == ">=3.8"
    assert first.is_yanked is True and first.yanked_reason is None
    assert first.gpg_sig is True
    assert second.url == "https://files.example/demo-2.0-py3-none-any.whl"
    assert second.hashes == {"md5": "123"}
    assert second.has_metadata and second.metadata_hashes == {"sha256": "def"}
    assert page.name == "demo"


def test_html_base_tag_is_honoured():
    body = b'<html><head><base href="https://mirror.example/x/"></head><a href="f-1.0.tar.gz">f-1.0.tar.gz</a></html>'
    (entry,) = simple.parse_project_html(body, PAGE, "f").files
    assert entry.url == "https://mirror.example/x/f-1.0.tar.gz"


def test_json_parsing_keeps_pep_691_and_700_fields():
    body = json.dumps({
        "meta": {"api-version": "1.1"}, "name": "demo", "versions": ["1.0"],
        "files": [{
            "filename": "demo-1.0-py3-none-any.whl", "url": "../../f/demo-1.0-py3-none-any.whl",
            "hashes": {"sha256": "AA"}, "requires-python": ">=3.9", "yanked": "bad",
            "core-metadata": {"sha256": "bb"}, "gpg-sig": False, "size": 10,
            "upload-time": "2024-01-01T00:00:00Z",
        }],
    }).encode()
    page = simple.parse_project_json(body, PAGE, "demo")
    (entry,) = page.files
    assert entry.has_metadata and entry.metadata_hashes == {"sha256": "bb"}
    assert entry.url == "https://index.example/f/demo-1.0-py3-none-any.whl"
    assert entry.hashes == {"sha256": "aa"}
    assert (entry.is_yanked, entry.yanked_reason, entry.size, entry.upload_time) == (
        True, "bad", 10, "2024-01-01T00:00:00Z"
    )
    assert page.versions == ("1.0",)


def test_versions_are_derived_when_the_index_sends_none():
    page = simple.ProjectPage("demo", (
        simple.FileEntry("demo-1.0.tar.gz", "u1"),
        simple.FileEntry("demo-1.0-py3-none-any.whl", "u2"),
        simple.FileEntry("demo-2.0b1.zip", "u3"),
    ))
    assert simple.project_to_json(page)["versions"] == ["1.0", "2.0b1"]


def test_project_list_parsing_normalises_names():
    html = b'<a href="/simple/Foo-Bar/">Foo_Bar</a><a href="/simple/x/">x</a>'
    assert simple.parse_project_list(html, "text/html") == ("foo-bar", "x")
    data = json.dumps({"meta": {}, "projects": [{"name": "A.B"}]}).encode()
    assert simple.parse_project_list(data, simple.JSON_V1) == ("a-b",)


hexes = st.text("0123456789abcdef", min_size=64, max_size=64)
reasons = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=20)
yanks = st.just((False, None)) | st.tuples(st.just(True), st.none() | reasons)
metadata = st.just((False, {})) | st.tuples(st.just(True), st.just({}) | st.builds(lambda h: {"sha256": h}, hexes))
entries = st.builds(
    lambda yank, meta, **fields: simple.FileEntry(
        is_yanked=yank[0], yanked_reason=yank[1], has_metadata=meta[0], metadata_hashes=meta[1], **fields
    ),
    yanks,
    metadata,
    filename=st.sampled_from(["demo-1.0.tar.gz", "demo-2.0-py3-none-any.whl", "demo-1.5.zip"]),
    url=st.just("https://files.example/x"),
    hashes=st.builds(lambda h: {"sha256": h}, hexes),
    requires_python=st.none() | st.sampled_from([">=3.8", "<4,>=3.6", "!=3.0.*"]),
    gpg_sig=st.none() | st.booleans(),
)


@given(st.lists(entries, max_size=5))
def test_render_then_parse_is_lossless_in_both_formats(files):
    page = simple.ProjectPage("demo", tuple(files))
    url = lambda e: e.url  # noqa: E731
    from_json = simple.parse_project_json(simple.render_project_json(page, url), PAGE, "demo")
    assert from_json.files == page.files
    from_html = simple.parse_project_html(simple.render_project_html(page, url), PAGE, "demo")
    for parsed, original in zip(from_html.files, page.files, strict=True):
        # HTML has no size/upload-time, and a yank reason of spaces reads back stripped.
        assert parsed.hashes == original.hashes
        assert parsed.requires_python == original.requires_python
        assert parsed.is_yanked == original.is_yanked
        if original.yanked_reason and original.yanked_reason.strip():
            assert parsed.yanked_reason == original.yanked_reason
        assert (parsed.has_metadata, parsed.metadata_hashes) == (original.has_metadata, original.metadata_hashes)
        assert parsed.gpg_sig == original.gpg_sig


def test_the_legacy_metadata_key_is_read_from_json_and_written_only_to_html():
    body = json.dumps({
        "meta": {"api-version": "1.0"}, "name": "demo",
        "files": [{
            "filename": "demo-1.0-py3-none-any.whl", "url": "demo-1.0-py3-none-any.whl",
            "hashes": {"sha256": "aa"}, "dist-info-metadata": {"sha256": "bb"},
        }],
    }).encode()
    page = simple.parse_project_json(body, PAGE, "demo")
    assert page.files[0].metadata_hashes == {"sha256": "bb"}
    (rendered,) = simple.project_to_json(page)["files"]
    assert rendered["core-metadata"] == {"sha256": "bb"} and "dist-info-metadata" not in rendered
    html = simple.render_project_html(page, lambda entry: entry.url).decode()
    assert 'data-core-metadata="sha256=bb"' in html and 'data-dist-info-metadata="sha256=bb"' in html


def test_api_version_is_the_lowest_of_the_indexs_and_ours_and_at_least_1_1():
    page = lambda said: simple.ProjectPage("demo", api_version=said)  # noqa: E731
    assert simple.API_VERSION == "1.4"
    assert [simple.api_version_of(page(v)) for v in ("1.0", "1.1", "1.3", "1.4", "1.9", "nonsense", None)] == [
        "1.1", "1.1", "1.3", "1.4", "1.4", "1.1", "1.4"
    ]


def test_json_keeps_project_status_provenance_and_unknown_keys_but_not_private_ones():
    body = json.dumps({
        "meta": {"api-version": "1.4", "_last-serial": 7}, "name": "demo", "versions": ["1.0"],
        "project-status": {"status": "quarantined", "reason": "malware"},
        "alternate-locations": ["https://mirror.example/simple/demo/"], "_private": 1,
        "files": [{
            "filename": "demo-1.0-py3-none-any.whl", "url": "demo-1.0-py3-none-any.whl",
            "hashes": {"sha256": "aa"}, "provenance": "https://integrity.example/p", "x-new": [1, 2],
            "_internal": True,
        }],
    }).encode()
    page = simple.parse_project_json(body, PAGE, "demo")
    assert (page.status, page.status_reason, page.api_version) == ("quarantined", "malware", "1.4")
    assert page.extra == {"alternate-locations": ["https://mirror.example/simple/demo/"]}
    (entry,) = page.files
    assert entry.provenance == "https://integrity.example/p" and entry.extra == {"x-new": [1, 2]}
    out = json.loads(simple.render_project_json(page, lambda e: e.url))
    assert out["meta"] == {"api-version": "1.4"}
    assert out["project-status"] == {"status": "quarantined", "reason": "malware"}
    assert out["alternate-locations"] == ["https://mirror.example/simple/demo/"] and "_private" not in out
    assert out["files"][0]["provenance"] == "https://integrity.example/p"
    assert out["files"][0]["x-new"] == [1, 2] and "_internal" not in out["files"][0]
    assert simple.parse_project_json(simple.render_project_json(page, lambda e: e.url), PAGE, "demo") == page


def test_html_reads_and_writes_project_status_provenance_and_says_1_4():
    body = b"""<!DOCTYPE html><html><head>
    <meta name="pypi:repository-version" content="1.4">
    <meta name="pypi:project-status" content="archived">
    <meta name="pypi:project-status-reason" content="see &quot;demo2&quot;">
    </head><body>
    <a href="demo-1.0.tar.gz#sha256=aa" data-provenance="https://integrity.example/p">demo-1.0.tar.gz</a>
    </body></html>"""
    page = simple.parse_project_html(body, PAGE, "demo")
    assert (page.status, page.status_reason, page.api_version) == ("archived", 'see "demo2"', "1.4")
    assert page.files[0].provenance == "https://integrity.example/p"
    html = simple.render_project_html(page, lambda e: e.url).decode()
    assert '<meta name="pypi:repository-version" content="1.4">' in html
    assert '<meta name="pypi:project-status" content="archived">' in html
    assert '<meta name="pypi:project-status-reason" content="see &quot;demo2&quot;">' in html
    assert 'data-provenance="https://integrity.example/p"' in html
    again = simple.parse_project_html(html.encode(), PAGE, "demo")
    assert (again.status, again.status_reason, again.files[0].provenance) == (
        page.status, page.status_reason, page.files[0].provenance
    )
    plain = simple.parse_project_html(b'<a href="demo-1.0.tar.gz">demo-1.0.tar.gz</a>', PAGE, "demo")
    assert (plain.status, plain.api_version) == (None, "1.0")  # PEP 629: no meta tag is 1.0
    assert "pypi:project-status" not in simple.render_project_html(plain, lambda e: e.url).decode()
