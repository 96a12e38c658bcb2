"""Index page bodies read under a size cap: compressed and decoded bytes counted as they arrive.

A page is refused the moment either count passes ``--max-page-size``, so a gzip bomb costs
at most the cap (never its decoded size) and the connection is closed rather than drained.
"""

from __future__ import annotations

import zlib
from typing import Callable

from .errors import UpstreamError

# Decoded bytes produced per zlib call: memory per step stays small whatever the ratio.
STEP = 1024 * 1024


class PageTooLarge(UpstreamError):
    """The upstream's page is bigger than ``--max-page-size`` (compressed or decoded)."""


class BoundedDecoder:
    """Counts the body as sent, decodes it (gzip, deflate or none), counts it again, and
    passes the decoded bytes on; raises PageTooLarge past ``limit`` either way."""

    def __init__(self, encoding: str | None, limit: int, write: Callable[[bytes], None]) -> None:
        encoding = (encoding or "identity").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self._zlib: zlib._Decompress | None = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._zlib = zlib.decompressobj()
        elif encoding == "identity":
            self._zlib = None
        else:
            raise UpstreamError(f"unknown Content-Encoding {encoding[:40]!r}")
        self._limit = limit
        self._write = write
        self.received = 0
        self.decoded = 0

    def __call__(self, data: bytes) -> None:
        self.received += len(data)
        if self.received > self._limit:
            raise PageTooLarge(f"page over --max-page-size ({self._limit} bytes) as sent")
        if self._zlib is None:
            self._emit(data)
            return
        try:
            while data:
                out = self._zlib.decompress(data, min(STEP, self._limit - self.decoded + 1))
                self._emit(out)
                data = self._zlib.unconsumed_tail
        except zlib.error as e:
            raise UpstreamError(f"broken compressed page: {e}") from None

    def finish(self) -> None:
        """The body has ended: a compressed one must have ended too."""
        if self._zlib is None or self.received == 0:
            return  # nothing sent (a 304, a HEAD) is no cut-off stream, whatever its label
        if not self._zlib.eof:
            raise UpstreamError("compressed page cut short")

    def _emit(self, out: bytes) -> None:
        self.decoded += len(out)
        if self.decoded > self._limit:
            raise PageTooLarge(f"page over --max-page-size ({self._limit} bytes) decoded")
        if out:
            self._write(out)
