"""Byte ranges (RFC 9110): parsing ``Range``, honouring ``If-Range``, and which cold ranges pass through."""

from __future__ import annotations

import re

from twisted.web.server import Request

from .. import simple

PASSTHROUGH_LIMIT = 8 * 1024 * 1024


_CLOSED_RANGE = re.compile(r"^\s*bytes\s*=\s*(?:(\d+)-(\d+)|-(\d+))\s*$", re.IGNORECASE)


def cold_range(
    request: Request, key: str, entry: simple.FileEntry, size: int | None = None
) -> tuple[str, int | None] | None:
    """For a single, small range of an uncached file: the range to ask the upstream for,
    and how far the download must have come to answer it from there (None: unknown).
    ``size`` is the file's, where the index gave none and the upstream's answer did."""
    if not range_applies(request, f'"{key}"'):
        return None
    raw = request.getHeader(b"range")
    size = entry.size if size is None else size
    if size is not None:
        wanted = parse_range(raw, size)
        if isinstance(wanted, tuple) and wanted[1] - wanted[0] <= PASSTHROUGH_LIMIT:
            return f"bytes={wanted[0]}-{wanted[1] - 1}", wanted[1]
        return None
    # The index gave no size (a plain PEP 503 page): closed and suffix ranges still have a
    # known length, and the upstream's Content-Range tells us the rest.
    header = raw.decode("latin-1")
    match = _CLOSED_RANGE.match(header)
    if match is None:
        return None
    first, last, suffix = match.groups()
    length = int(suffix) if suffix else int(last) - int(first) + 1
    return (header.strip(), None) if 0 < length <= PASSTHROUGH_LIMIT else None


def range_applies(request: Request, etag: str) -> bool:
    """``If-Range``: a range only when the client's copy is the one we have."""
    if request.getHeader(b"range") is None:
        return False
    if_range = request.getHeader(b"if-range")
    if if_range is None:
        return True
    # RFC 9110 13.1.5: the range only if the validator matches exactly (a strong ETag, or
    # the Last-Modified date sent). We send no Last-Modified for files, so a date matches
    # nothing and the client gets the whole file: it may be a copy from anywhere.
    return if_range.decode("latin-1").strip() == etag


def parse_range(header: bytes | None, length: int) -> tuple[int, int] | str | None:
    """A single ``bytes=`` range as ``(start, end)`` (end exclusive); None: serve it all."""
    if not header:
        return None
    unit, _, spec = header.decode("latin-1").partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None  # other units, or several ranges: the whole file is a correct answer
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first == "":
            suffix = int(last)
            if suffix <= 0:
                return "unsatisfiable"
            return (max(0, length - suffix), length)
        start = int(first)
        end = int(last) + 1 if last else length
    except ValueError:
        return None
    if start < 0 or end <= start:
        return None if end <= start and start < length else "unsatisfiable"
    if start >= length:
        return "unsatisfiable"
    return (start, min(end, length))
