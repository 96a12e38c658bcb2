"""Small HTTP helpers every resource uses: running a coroutine handler, redirects, validators."""

from __future__ import annotations

from typing import Any, Callable, Coroutine

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.resource import IResource
from twisted.web.server import NOT_DONE_YET, Request

from ..upstream import UpstreamError
from .errors import error_page

log = Logger()

# How blocking work is run beside the reactor (``threads.deferToThread``, or inline in tests).
ToThread = Callable[..., defer.Deferred]


def render_async(request: Request, coroutine: Coroutine[Any, Any, IResource | bytes | None]) -> int:
    """Run a handler; what it returns (a resource to render, or bytes) finishes the request."""

    def finish(result: IResource | bytes | None) -> None:
        if request._disconnected or request.finished:
            return
        if isinstance(result, bytes):
            if request.method != b"HEAD":
                request.write(result)
            request.finish()
        elif result is not None:
            body = result.render(request)
            if body is not NOT_DONE_YET:
                request.write(body)
                request.finish()

    def failed(failure: Failure) -> None:
        log.failure("unexpected error answering {uri}", failure, uri=request.uri)
        finish(error_page(500, "internal error; see the server log"))

    defer.ensureDeferred(coroutine).addCallback(finish).addErrback(failed)
    return NOT_DONE_YET


def upstream_error(e: UpstreamError) -> IResource:
    return error_page(e.status, f"upstream failed: {e}")


def etag_matches(header: bytes | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == b"*":
        return True
    tags = [t.strip().removeprefix(b"W/") for t in header.split(b",")]
    return etag.encode() in tags


def redirect(request: Request, location: bytes) -> bytes:
    request.setResponseCode(http.MOVED_PERMANENTLY)
    request.setHeader(b"location", location)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return b"moved to " + location + b"\n"
