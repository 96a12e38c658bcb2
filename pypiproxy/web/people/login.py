"""``GET /+login?next=PATH``: the browser's own login prompt, then back to the page it came from."""

from __future__ import annotations

from urllib.parse import quote

from twisted.web.resource import Resource
from twisted.web.server import Request

from .page import html_error, logged_in, see_other


def next_page(raw: bytes) -> str:
    """Where to go after logging in: a path of this site, relative to ``/+login``, or home."""
    path = raw.decode("utf-8", "replace")
    if not path.startswith("/") or path.startswith("//") or any(c in path for c in "\\\r\n\t"):
        return "./"
    return "." + quote(path, safe="/+-._~%")


class Login(Resource):
    """The gate asks for the login on this path (a 401 makes the browser prompt); once it
    is good, back to where the user was. HTTP basic auth has no logout: closing the
    browser (or a private window) ends it."""

    isLeaf = True

    def __init__(self, logins: bool) -> None:
        super().__init__()
        self._logins = logins

    def render_GET(self, request: Request) -> int | bytes:
        if not self._logins:
            return html_error(404, "this server has no users (--htpasswd): there is no login").render(request)
        if logged_in(request) is None:
            return html_error(401, "login required", {"WWW-Authenticate": 'Basic realm="pypiproxy"'}).render(request)
        return see_other(request, next_page(request.args.get(b"next", [b""])[0]))
