"""The index HTML tokenizer: the same anchors as Python's HTMLParser on index pages, in any
pieces, and linear on hostile input where HTMLParser is quadratic."""

from __future__ import annotations

import html
import time
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings, strategies as st

from pypiproxy.simple import IndexFormatError
from pypiproxy.simple.anchors import AnchorScanner, scan_anchors


class Reference(HTMLParser):
    """The collector pep503 used before: what index pages must still give."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list = []
        self.base = None
        self._open = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")
        elif tag == "a":
            self._open, self._text = dict(attrs), []

    def handle_data(self, data):
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "a" and self._open is not None:
            self.anchors.append((self._open, "".join(self._text).strip()))
            self._open = None


def reference(body: bytes):
    parser = Reference()
    parser.feed(body.decode("utf-8", "replace"))
    parser.close()
    return parser.anchors, parser.base


TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"), max_size=30)
NAMES = st.sampled_from(["href", "data-requires-python", "data-yanked", "data-core-metadata",
                         "data-dist-info-metadata", "data-gpg-sig", "data-provenance", "HREF", "rel"])


@st.composite
def anchor(draw) -> str:
    attrs = []
    for name in draw(st.lists(NAMES, max_size=5, unique_by=str.lower)):
        style = draw(st.sampled_from(["double", "single", "bare", "none"]))
        value = draw(TEXT)
        if style == "double":
            attrs.append(f'{name}="{html.escape(value)}"')
        elif style == "single":
            attrs.append(f"{name}='{html.escape(value)}'")
        elif style == "bare":
            attrs.append(f"{name}={draw(st.from_regex(r'[A-Za-z0-9._:-]{1,20}', fullmatch=True))}")
        else:
            attrs.append(name)
    separator = draw(st.sampled_from([" ", "\n    ", "  "]))
    text = html.escape(draw(TEXT), quote=draw(st.booleans()))
    tail = draw(st.sampled_from(["<br>", "<br/>", "\n", "", "<!-- x -->"]))
    return f"<a{separator if attrs else ''}{separator.join(attrs)}>{text}</a>{tail}"


@st.composite
def page(draw) -> bytes:
    head = draw(st.sampled_from([
        "", "<!DOCTYPE html><html><head><title>Links for x</title></head><body>",
        '<html><head><meta name="pypi:repository-version" content="1.1"><base href="https://m.example/x/"></head>',
    ]))
    body = "\n".join(draw(st.lists(anchor(), max_size=8)))
    return (head + body + draw(st.sampled_from(["", "</body></html>\n"]))).encode()


@settings(max_examples=300, deadline=None)
@given(body=page())
def test_the_same_anchors_and_base_as_htmlparser(body):
    anchors, scanner = scan_anchors(body)
    assert (anchors, scanner.base) == reference(body)


@settings(max_examples=200, deadline=None)
@given(body=page(), cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
def test_any_pieces_give_what_the_whole_gives(body, cuts):
    whole, _ = scan_anchors(body)
    pieces: list = []
    scanner = AnchorScanner(lambda attrs, text: pieces.append((attrs, text)))
    start = 0
    for cut in sorted(c % (len(body) + 1) for c in cuts):
        scanner.feed(body[start:cut])  # bytes cut anywhere, inside a UTF-8 sequence too
        start = cut
    scanner.feed(body[start:])
    scanner.close()
    assert pieces == whole


def test_a_tag_with_too_many_attributes_is_not_an_index_page():
    with pytest.raises(IndexFormatError):
        scan_anchors(b"<a " + b" ".join(b"a%d=x" % i for i in range(1000)) + b">x</a>")


def test_meta_tags_and_entities_are_read():
    body = (b'<meta name="pypi:project-status" content="quarantined"><meta charset="utf-8">'
            b'<a href="a&amp;b?x=1&#38;y=2#sha256=AB" data-yanked="&lt;bad&gt;">a&eacute; &amp; b</a>')
    (attrs, text), = scan_anchors(body)[0]
    assert scan_anchors(body)[1].meta == {"pypi:project-status": "quarantined"}
    assert attrs == {"href": "a&b?x=1&y=2#sha256=AB", "data-yanked": "<bad>"}
    assert text == "a\u00e9 & b"


HOSTILE = {
    "comment openers": b"<!--" * 500_000,
    "unclosed tags": b"<a" * 1_000_000,
    "unclosed attributes": b'<a href="' + b"x" * 2_000_000,
    "declarations": b"<!x" * 600_000,
    "end tags": b"</" * 1_000_000,
    "attributes without end": b"<a " + b"b=c " * 500_000,
    "many short tags": b"<b c=d>" * 150_000,
    "lone angles": b"<" * 2_000_000,
    "script never closed": b"<script>" + b"<a href=x>" * 200_000,
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_pages_are_read_in_linear_time_whole_or_in_pieces(name):
    body = HOSTILE[name]
    started = time.monotonic()
    scan_anchors(body)
    scanner = AnchorScanner(lambda attrs, text: None)
    for start in range(0, len(body), 16384):
        scanner.feed(body[start:start + 16384])
    scanner.close()
    # About 2 MB each: linear work is well under a second even on a loaded machine, where
    # HTMLParser takes seconds on a tenth of the comment openers (quadratic).
    assert time.monotonic() - started < 10, name
