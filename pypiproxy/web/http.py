"""Small HTTP helpers every resource uses: running a coroutine handler, redirects, validators."""

from __future__ import annotations

import re
from typing import Any, Callable, Coroutine
from urllib.parse import urlsplit

from packaging.utils import canonicalize_name
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.resource import IResource
from twisted.web.server import NOT_DONE_YET, Request

from .. import simple
from ..simple.checks import MAX_NAME
from ..upstream import UpstreamError
from .errors import error_page

log = Logger()



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


_URL = re.compile(r"\bhttps?://[^\s'\"<>]+", re.IGNORECASE)


def upstream_error(e: UpstreamError) -> IResource:
    """The 502/504 for an upstream failure. Its reason names the upstream by host only: an
    upstream URL may carry a path, a query or a token meant for no client (the log has it)."""
    log.warn("answering {status}: upstream failed: {error}", status=e.status, error=str(e))
    return error_page(e.status, f"upstream failed: {_URL.sub(_host_only, str(e))}")


def _host_only(match: re.Match[str]) -> str:
    parts = urlsplit(match.group(0))
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    host = parts.hostname or "?"
    return (f"[{host}]" if ":" in host else host) + port


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


def project_name(
    request: Request, segment: bytes, refuse: Callable[[int, str], IResource] = error_page
) -> str | bytes | int:
    """The normalised name ``/<where>/<segment>/`` names; or the request's finished answer:
    ``refuse``'s 404 for what is no project name (also one too long to store), or a relative
    301 to the normalised spelling (so it stays right behind a prefix-adding proxy)."""
    name = segment.decode("utf-8", "replace")
    if len(name) > MAX_NAME:
        # A valid PEP 508 name may be any length; ours are stored as file names.
        return refuse(404, f"project names over {MAX_NAME} characters are not served").render(request)
    if not simple.VALID_NAME.match(name):
        return refuse(404, f"not a valid project name: {name[:100]!r}").render(request)
    if request.postpath not in ([], [b""]):
        return refuse(404, "no such page").render(request)
    normalised = canonicalize_name(name)
    if normalised != name or request.postpath == []:
        target = f"../{normalised}/" if request.postpath else f"{normalised}/"
        query = request.uri.partition(b"?")[2]
        return redirect(request, target.encode() + (b"?" + query if query else b""))
    return normalised
