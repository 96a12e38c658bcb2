"""``/+static/``: the pages' one stylesheet, shipped as package data."""

from __future__ import annotations

from importlib.resources import files

from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource

from ..errors import not_found

STYLESHEET = "style.css"


class Static(Resource):
    """The stylesheet, read once; anything else below ``/+static/`` is a 404."""

    def __init__(self) -> None:
        super().__init__()
        self._stylesheet = (files(__package__) / "static" / STYLESHEET).read_bytes()

    def getChild(self, path: bytes, request: IRequest) -> IResource:
        if path == STYLESHEET.encode() and not request.postpath:
            return _Stylesheet(self._stylesheet)
        return not_found("no such file")


class _Stylesheet(Resource):
    isLeaf = True

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self._body = body

    def render_GET(self, request: IRequest) -> bytes:
        request.setHeader(b"content-type", b"text/css; charset=utf-8")
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"cache-control", b"public, max-age=3600")
        request.setHeader(b"content-length", b"%d" % len(self._body))
        return self._body
