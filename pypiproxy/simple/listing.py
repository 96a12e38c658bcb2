"""The project list (``/simple/``) as a stream: names read from either format in pieces, and
written back a line at a time, so that 750,000 names never sit in memory at once."""

from __future__ import annotations

import codecs
import json
import re
from typing import Callable

from packaging.utils import canonicalize_name

from .anchors import AnchorScanner
from .filenames import VALID_NAME
from .model import API_VERSION, IndexFormatError

OnName = Callable[[str], None]

HTML_HEAD = (
    "<!DOCTYPE html>\n<html>\n  <head>\n"
    f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
    "    <title>Simple index</title>\n  </head>\n  <body>\n"
)
HTML_TAIL = "  </body>\n</html>\n"
JSON_HEAD = '{"meta":{"api-version":"%s"},"projects":[' % API_VERSION
JSON_TAIL = "]}"


def html_line(name: str) -> str:
    """One project's anchor (a normalised name needs no escaping)."""
    return f'    <a href="{name}/">{name}</a><br>\n'


def json_item(name: str, first: bool) -> str:
    return ('{"name":"%s"}' if first else ',{"name":"%s"}') % name


def listed_name(text: str) -> str | None:
    """The normalised form of a listed name, or None for what is no project name (it would
    break the one-name-a-line files, and is no project anyone can install)."""
    text = text.strip()
    if not VALID_NAME.match(text):
        return None
    return canonicalize_name(text)


class ListScanner:
    """Fed a project list in pieces (HTML or PEP 691 JSON); tells ``on_name`` each normalised name."""

    def __init__(self, content_type: str, on_name: OnName) -> None:
        self._on_name = on_name
        if "json" in content_type:
            self._scanner: AnchorScanner | _JSONListScanner = _JSONListScanner(self._name)
        else:
            self._scanner = AnchorScanner(lambda attrs, text: self._name(text), attributes=False)

    def _name(self, text: str) -> None:
        name = listed_name(text) if isinstance(text, str) else None
        if name is not None:
            self._on_name(name)

    def feed(self, data: bytes) -> None:
        self._scanner.feed(data)

    def close(self) -> None:
        self._scanner.close()


_SPACE = re.compile(r"\s*")


class _JSONListScanner:
    """``{"meta": …, "projects": [{"name": …}, …]}`` read an object at a time.

    Each value is decoded with ``json``'s own raw_decode once it is whole; one that is cut off
    by the end of a piece is tried again once the buffer has doubled (linear, as the HTML)."""

    def __init__(self, on_name: OnName) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._json = json.JSONDecoder()
        self._on_name = on_name
        self._buffer = ""
        self._pending: list[str] = []
        self._pending_size = 0
        self._retry_at = 0
        self._state = "start"  # start, key, colon, value, items, done
        self._key = ""
        self._seen_projects = False

    def feed(self, data: bytes, final: bool = False) -> None:
        text = self._decoder.decode(data, final)
        self._pending.append(text)
        self._pending_size += len(text)
        if len(self._buffer) + self._pending_size >= self._retry_at or final:
            self._buffer += "".join(self._pending)
            self._pending.clear()
            self._pending_size = 0
            self._scan(final)

    def close(self) -> None:
        self.feed(b"", final=True)
        if self._state != "done" or not self._seen_projects or self._buffer.strip():
            raise IndexFormatError("not a PEP 691 project list")

    def _scan(self, final: bool) -> None:
        text, position = self._buffer, 0
        try:
            while True:
                position = _SPACE.match(text, position).end()
                if position >= len(text):
                    break
                char = text[position]
                state = self._state
                if state == "start":
                    if char != "{":
                        raise IndexFormatError("not a PEP 691 project list: no object")
                    position, self._state = position + 1, "key"
                elif state == "key":
                    if char == "}":
                        position, self._state = position + 1, "done"
                    elif char == ",":
                        position += 1
                    else:
                        key, position = self._json.raw_decode(text, position)
                        if not isinstance(key, str):
                            raise IndexFormatError("not a PEP 691 project list: a key is no string")
                        self._key, self._state = key, "colon"
                elif state == "colon":
                    if char != ":":
                        raise IndexFormatError("not a PEP 691 project list: no colon")
                    position, self._state = position + 1, "value"
                elif state == "value":
                    if self._key == "projects":
                        if char != "[":
                            raise IndexFormatError("not a PEP 691 project list: projects is no array")
                        self._seen_projects = True
                        position, self._state = position + 1, "items"
                    else:
                        _value, position = self._json.raw_decode(text, position)
                        self._state = "key"
                elif state == "items":
                    if char == "]":
                        position, self._state = position + 1, "key"
                    elif char == ",":
                        position += 1
                    else:
                        item, position = self._json.raw_decode(text, position)
                        if not isinstance(item, dict):
                            raise IndexFormatError("not a PEP 691 project list: a project is no object")
                        self._on_name(item.get("name"))
                else:
                    raise IndexFormatError("not a PEP 691 project list: data after its end")
        except json.JSONDecodeError as e:
            if final:
                raise IndexFormatError(f"not a PEP 691 project list: {e}") from None
            # Most likely cut off by the end of this piece: try again with more.
        except RecursionError:
            raise IndexFormatError("not a PEP 691 project list: nested too deeply") from None
        self._buffer = text[position:]
        self._retry_at = 2 * len(self._buffer)
