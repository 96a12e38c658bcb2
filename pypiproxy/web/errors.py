"""Every error answer goes through here: a status, a reason a client tool can print."""

from __future__ import annotations

from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource


def set_status(request: IRequest, code: int, reason: str, headers: dict[str, str]) -> None:
    """The status line, with the reason as its phrase (twine and pip print the phrase), and
    the answer's own headers."""
    phrase = reason.encode("ascii", "replace").replace(b"\r", b" ").replace(b"\n", b" ")
    request.setResponseCode(code, phrase[:200])
    for name, value in headers.items():
        request.setHeader(name.encode(), value.encode())


class _ErrorResource(Resource):
    isLeaf = True

    def __init__(self, code: int, reason: str, headers: dict[str, str]) -> None:
        super().__init__()
        self._code = code
        self._reason = reason
        self._headers = headers

    def render(self, request: IRequest) -> bytes:
        set_status(request, self._code, self._reason, self._headers)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-content-type-options", b"nosniff")
        body = f"{self._code} {self._reason}\n".encode()
        if request.method == b"HEAD":
            request.setHeader(b"content-length", b"%d" % len(body))
            return b""
        return body

    def getChild(self, path: bytes, request: IRequest) -> IResource:
        return self


def error_page(code: int, reason: str, headers: dict[str, str] | None = None) -> IResource:
    """A resource answering every request with ``code`` and ``reason``."""
    return _ErrorResource(code, reason, headers or {})


def not_found(reason: str = "Not Found") -> IResource:
    return error_page(404, reason)


def bad_request(reason: str) -> IResource:
    return error_page(400, reason)


def forbidden(reason: str = "Forbidden") -> IResource:
    return error_page(403, reason)
