"""The project list read as a stream: either format, in any pieces, bad names dropped."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from pypiproxy.simple import IndexFormatError
from pypiproxy.simple.listing import ListScanner

JSON = "application/vnd.pypi.simple.v1+json"
NAMES = ["Django", "zope.interface", "a_b-C", "x"]
NORMALISED = ["django", "zope-interface", "a-b-c", "x"]


def scan(body: bytes, content_type: str, cuts=()) -> list[str]:
    names: list[str] = []
    scanner = ListScanner(content_type, names.append)
    start = 0
    for cut in sorted(c % (len(body) + 1) for c in cuts):
        scanner.feed(body[start:cut])
        start = cut
    scanner.feed(body[start:])
    scanner.close()
    return names


def json_list(names, meta_last=False) -> bytes:
    projects = [{"name": n, "_last-serial": 7} for n in names]
    document = {"projects": projects, "meta": {"api-version": "1.1", "x": [1, {"y": 2}]}} if meta_last else {
        "meta": {"api-version": "1.1", "_last-serial": 9}, "projects": projects}
    return json.dumps(document, indent=1).encode()


@settings(max_examples=100, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10), meta_last=st.booleans())
def test_json_lists_in_any_pieces(cuts, meta_last):
    assert scan(json_list(NAMES, meta_last), JSON, cuts) == NORMALISED


@settings(max_examples=100, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10))
def test_html_lists_in_any_pieces(cuts):
    body = "".join(f'<a href="/simple/{n}/">{n}</a>\n' for n in NAMES).encode()
    assert scan(body, "text/html", cuts) == NORMALISED


def test_names_that_are_no_project_names_are_dropped():
    body = json_list(["good", "javascript:alert(1)//", "two\nlines", "", "-x", 5, None])
    assert scan(body, JSON) == ["good"]
    html = b'<a href="a/">good</a><a href="b/">evil name</a><a href="c/">a/../b</a>'
    assert scan(html, "text/html") == ["good"]


@pytest.mark.parametrize("body", [
    b"", b"[]", b'{"projects": {"name": "x"}}', b'{"meta": {}}', b'{"projects": [1]}',
    b'{"projects": [{"name": "x"}', b'{"projects": []} trailing',
    b'{"meta": ' + b"[" * 100_000 + b"]" * 100_000 + b', "projects": []}',
])
def test_what_is_not_a_json_list_is_an_index_format_error(body):
    with pytest.raises(IndexFormatError):
        scan(body, JSON)
