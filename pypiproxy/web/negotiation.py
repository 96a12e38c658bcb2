"""Which form of an index page a request gets: PEP 691's negotiation, remembered."""

from __future__ import annotations

from dataclasses import dataclass

from twisted.web.resource import IResource
from twisted.web.server import Request

from .. import simple
from .errors import error_page

VARY = b"Accept, Accept-Encoding"


@dataclass(frozen=True)
class Negotiated:
    """The form of a page a request asked for."""

    fmt: str  # "html" or "json"
    content_type: str
    gzipped: bool


class Negotiations:
    """The form each request asks for (``Accept``, ``?format=``, ``Accept-Encoding``), or a 406.

    Answers are remembered by the values that decide them: clients send a handful of distinct
    ones, and parsing them for every request was 5 % of a warm page's time. Forgotten when
    there are too many, so that made-up headers cost parsing, never memory.
    """

    LIMIT = 256

    def __init__(self) -> None:
        self._known: dict[tuple[bytes | None, bytes, bytes | None], Negotiated | None] = {}

    def of(self, request: Request) -> Negotiated | IResource:
        request.setHeader(b"vary", VARY)
        key = (request.getHeader(b"accept"), request.args.get(b"format", [b""])[0],
               request.getHeader(b"accept-encoding"))
        try:
            wanted = self._known[key]
        except KeyError:
            if len(self._known) >= self.LIMIT:
                self._known.clear()
            wanted = self._known[key] = _negotiate(*key)
        if wanted is None:
            return error_page(406, "acceptable: application/vnd.pypi.simple.v1+json, "
                              "application/vnd.pypi.simple.v1+html, text/html")
        return wanted


def _negotiate(accept: bytes | None, format_param: bytes, accept_encoding: bytes | None) -> Negotiated | None:
    # The query's "+" arrives as a space ("v1+json" unescaped, as people type it).
    chosen = simple.negotiate(accept.decode("latin-1") if accept else None,
                              format_param.decode("latin-1").replace(" ", "+"))
    if chosen is None:
        return None
    fmt, content_type = chosen
    return Negotiated(fmt, content_type, simple.accepts_gzip((accept_encoding or b"").decode("latin-1")))
