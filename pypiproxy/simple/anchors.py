"""A linear tokenizer for index HTML: the anchors, the first ``<base href>``, ``<meta>`` tags.

Python's HTMLParser rescans its buffer on input such as ``<!--`` repeated (quadratic: 156 KiB
of it took 16 s). Index pages are machine-written anchors, so this reads only what they hold:
start and end tags with their attributes, comments and declarations (skipped), text inside
an anchor, entities (``html.unescape``). Every scan moves forward; a token cut off by the end
of a piece is tried again only once the buffer has doubled, so feeding in pieces stays
linear too, and a token the input never closes ends the page. A tag with more than
MAX_ATTRIBUTES attributes is an IndexFormatError (the page is refused).
"""

from __future__ import annotations

import codecs
import html
import re
from typing import Callable

from .model import IndexFormatError

Attributes = dict[str, str | None]
# (attributes, text) of each anchor, in page order
OnAnchor = Callable[[Attributes, str], None]

# Where markup may start: a lone "<" is text, found with the text at C speed.
_MARKUP = re.compile(r"<[a-zA-Z!/?]|<$")
# A whole start tag at once (possessive: no backtracking); anything else takes the slow path.
_START_TAG = re.compile(
    r"""<([a-zA-Z][^\s/>]*+)((?:[\s/]*+[^\s/>=][^\s/>=]*+(?:\s*+=\s*+(?:"[^"]*+"|'[^']*+'|[^\s>]*+))?+)*+)[\s/]*+>"""
)
_ATTRIBUTE = re.compile(r"""([^\s/>=][^\s/>=]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]*)))?""")
_TAG_NAME = re.compile(r"[a-zA-Z][^\s/>]*")
_SPACE = re.compile(r"[\s/]*")
_ATTR_NAME = re.compile(r"[^\s/>][^\s/>=]*")
_EQUALS = re.compile(r"\s*=\s*")
_UNQUOTED = re.compile(r"[^\s>]*")
_RAW_TEXT_END = {"script": re.compile(r"</script", re.I), "style": re.compile(r"</style", re.I)}
_INCOMPLETE = -1
_NO_ATTRIBUTES: Attributes = {}
# An index anchor has a handful of attributes; a tag with more is junk, not a page.
MAX_ATTRIBUTES = 100


class AnchorScanner:
    """Fed text (or bytes, as UTF-8) in pieces; tells ``on_anchor`` of each anchor as it ends."""

    def __init__(self, on_anchor: OnAnchor, attributes: bool = True) -> None:
        # Without attributes (a project list needs only the anchors' text) no dict is built
        # per anchor: 750,000 fewer objects for the garbage collector to walk.
        self._attributes = attributes
        self.base: str | None = None
        self.meta: dict[str, str] = {}  # <meta name=... content=...>: the first of each name
        self._on_anchor = on_anchor
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._buffer = ""
        self._pending: list[str] = []
        self._pending_size = 0
        self._retry_at = 0  # buffered size at which a cut-off token is tried again
        self._open: Attributes | None = None
        self._text: list[str] = []

    def feed(self, data: str | bytes) -> None:
        text = self._decoder.decode(data) if isinstance(data, bytes) else data
        self._pending.append(text)
        self._pending_size += len(text)
        if len(self._buffer) + self._pending_size >= self._retry_at:
            self._scan()

    def close(self) -> None:
        """The input has ended: what an unclosed tag or comment holds is dropped."""
        self._pending.append(self._decoder.decode(b"", final=True))
        self._scan()
        self._buffer = ""

    def _scan(self) -> None:
        buffer = self._buffer + "".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        position, end = 0, len(buffer)
        while position < end:
            markup = _MARKUP.search(buffer, position)
            if markup is None:
                self._data(buffer[position:])
                position = end
                break
            lt = markup.start()
            if lt > position:
                self._data(buffer[position:lt])
            after = self._token(buffer, lt)
            if after == _INCOMPLETE:
                position = lt
                break
            position = after
        self._buffer = buffer[position:]
        self._retry_at = 2 * len(self._buffer)

    def _data(self, text: str) -> None:
        if self._open is not None:
            self._text.append(text)

    def _token(self, buffer: str, lt: int) -> int:
        """Handle the markup at ``lt``: the index after it, or _INCOMPLETE."""
        if len(buffer) - lt < 4 and "<!--".startswith(buffer[lt:]):
            return _INCOMPLETE  # "<", "<!" or "<!-" at the end: what follows decides
        if buffer.startswith("<!--", lt):
            close = buffer.find("-->", lt + 4)
            return _INCOMPLETE if close < 0 else close + 3
        following = buffer[lt + 1 : lt + 2]
        if following in ("!", "?"):
            close = buffer.find(">", lt + 2)
            return _INCOMPLETE if close < 0 else close + 1
        if following == "/":
            close = buffer.find(">", lt + 2)
            if close < 0:
                return _INCOMPLETE
            name = _TAG_NAME.match(buffer, lt + 2, close)
            if name is not None and name.group().lower() == "a":
                self._close_anchor()
            return close + 1
        whole = _START_TAG.match(buffer, lt)
        if whole is not None and not self._attributes and whole.group(1) in ("a", "A"):
            self._open, self._text = _NO_ATTRIBUTES, []
            return whole.end()
        if whole is not None:
            attrs: Attributes = {}
            for attribute in _ATTRIBUTE.finditer(whole.group(2)):
                key, double, single, bare = attribute.groups()
                value = double if double is not None else single if single is not None else bare
                attrs[key.lower()] = None if value is None else html.unescape(value)
                if len(attrs) > MAX_ATTRIBUTES:
                    raise IndexFormatError(f"a tag with more than {MAX_ATTRIBUTES} attributes")
            return self._handle_start(buffer, whole.group(1).lower(), attrs, buffer[whole.end() - 2] == "/", whole.end())
        name = _TAG_NAME.match(buffer, lt + 1)
        if name is None:
            self._data("<")  # a lone "<" is text
            return lt + 1
        return self._start_tag(buffer, name.group().lower(), name.end())

    def _start_tag(self, buffer: str, tag: str, position: int) -> int:
        """A start tag the fast pattern did not take: cut off, or odd; read step by step."""
        attrs: Attributes = {}
        end = len(buffer)
        if buffer.find(">", position) < 0:
            return _INCOMPLETE  # found at C speed, before any attribute is read
        while True:
            position = _SPACE.match(buffer, position).end()
            if position >= end:
                return _INCOMPLETE
            if buffer[position] == ">":
                self_closing = buffer[position - 1] == "/"
                position += 1
                break
            attr = _ATTR_NAME.match(buffer, position)
            assert attr is not None  # the character is neither space, "/" nor ">"
            key, value = attr.group().lower(), None
            position = attr.end()
            equals = _EQUALS.match(buffer, position)
            if equals is not None and equals.end() < end:
                position = equals.end()
                quote = buffer[position]
                if quote in "\"'":
                    close = buffer.find(quote, position + 1)
                    if close < 0:
                        return _INCOMPLETE
                    value = buffer[position + 1 : close]
                    position = close + 1
                else:
                    unquoted = _UNQUOTED.match(buffer, position)
                    value = unquoted.group()
                    position = unquoted.end()
                value = html.unescape(value)
            elif equals is not None:
                return _INCOMPLETE
            attrs[key] = value  # a repeated attribute: the last one counts
            if len(attrs) > MAX_ATTRIBUTES:
                raise IndexFormatError(f"a tag with more than {MAX_ATTRIBUTES} attributes")
        return self._handle_start(buffer, tag, attrs, self_closing, position)

    def _handle_start(self, buffer: str, tag: str, attrs: Attributes, self_closing: bool, position: int) -> int:
        if tag == "a":
            self._open, self._text = attrs, []
            if self_closing:
                self._close_anchor()
        elif tag == "base" and self.base is None:
            self.base = attrs.get("href")
        elif tag == "meta" and attrs.get("name") and attrs.get("content") is not None:
            self.meta.setdefault(attrs["name"].lower(), attrs["content"] or "")
        elif tag in _RAW_TEXT_END:
            # Script and style hold text, not markup, up to their end tag.
            close = _RAW_TEXT_END[tag].search(buffer, position)
            if close is None:
                return _INCOMPLETE
            return close.start()
        return position

    def _close_anchor(self) -> None:
        if self._open is None:
            return
        attrs, self._open = self._open, None
        self._on_anchor(attrs, html.unescape("".join(self._text)).strip())
        self._text = []


def scan_anchors(body: bytes) -> tuple[list[tuple[Attributes, str]], AnchorScanner]:
    """Every anchor of a whole page, and the scanner (for its ``base`` and ``meta``)."""
    anchors: list[tuple[Attributes, str]] = []
    scanner = AnchorScanner(lambda attrs, text: anchors.append((attrs, text)))
    scanner.feed(body)
    scanner.close()
    return anchors, scanner
