"""What every page for people shares: the layout, the security headers, forms, the HTML error twin."""

from __future__ import annotations

import re
from importlib.resources import files
from urllib.parse import parse_qs, urlencode

from twisted.python.filepath import FilePath
from twisted.web.http import RESPONSES, SEE_OTHER
from twisted.web.iweb import IRequest, ITemplateLoader
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request
from twisted.web.template import Element, Tag, XMLFile, flattenString, renderer, tags

from ...private import Account
from ..errors import set_status
from ..http import render_async

DOCTYPE = b"<!DOCTYPE html>\n"
# Only this origin, and no script at all: the pages need none, and a package's text that
# slipped through as markup could run nothing.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

# A Host header is shown back in the settings: only what a host name and port are made of.
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?\Z|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?\Z")


def site_url(request: IRequest) -> str:
    """This server's root as the browser reached it: its scheme and Host header.

    Behind a TLS-terminating proxy, ``X-Forwarded-Proto`` names the scheme the browser
    used; it is only shown back to the one who sent it, so it need not be trusted.
    """
    scheme = "https" if request.isSecure() else "http"
    forwarded = (request.getHeader(b"x-forwarded-proto") or b"").decode("latin-1").strip().lower()
    if forwarded in ("http", "https"):
        scheme = forwarded
    host = (request.getHeader(b"host") or b"").decode("latin-1").strip()
    if not _HOST.match(host):
        address = request.getHost()
        host = f"{address.host}:{address.port}"
    return f"{scheme}://{host}/"


def human_bytes(size: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def logged_in(request: IRequest) -> Account | None:
    """The account the gate checked this request's login as, if it asked for one."""
    account = getattr(request, "account", None)
    return account if isinstance(account, Account) else None


def form_fields(request: IRequest) -> dict[str, list[str]]:
    """A form POST's fields (the body is small and in memory); raises ValueError."""
    kind = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    if kind != b"application/x-www-form-urlencoded":
        raise ValueError("send the form (application/x-www-form-urlencoded)")
    body = request.content.read() if request.content is not None else b""
    return parse_qs(body.decode("utf-8", "replace"))


def one(fields: dict[str, list[str]], name: str) -> str:
    values = fields.get(name)
    return values[0].strip() if values else ""


def cell(label: str, content: Tag | str) -> Tag:
    """A table cell that, on a phone (one block per row), shows its column's name."""
    td = tags.td(content)
    td.attributes["data-label"] = label
    return td


def see_other(request: IRequest, location: str) -> bytes:
    """After a change, the page to look at (a reload then repeats nothing)."""
    request.setResponseCode(SEE_OTHER)
    request.setHeader(b"location", location.encode())
    request.setHeader(b"cache-control", b"no-store")
    return b""


def template(name: str) -> ITemplateLoader:
    """A template shipped beside this module (package data)."""
    return XMLFile(FilePath(str(files(__package__) / "templates" / name)))


def root_of(request: IRequest) -> str:
    """The relative way from this page up to the site's root ("", "../../"): every link
    is relative, so the pages work below a reverse proxy's prefix too."""
    return "../" * max(0, request.path.count(b"/") - 1)


def set_html_headers(request: IRequest) -> None:
    request.setHeader(b"content-type", b"text/html; charset=utf-8")
    request.setHeader(b"content-security-policy", CONTENT_SECURITY_POLICY.encode())
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"referrer-policy", b"same-origin")
    # Counts change, and a page seen through a login is that user's alone.
    request.setHeader(b"cache-control", b"private, no-cache")


class Layout(Element):
    """The frame around every page: head, the top bar with the search box, the content."""

    loader = template("layout.xml")

    def __init__(self, request: IRequest, title: str, content: Element | Tag, query: str = "",
                 search_bar: bool = True, logins: bool = False) -> None:
        super().__init__()
        self._root = root_of(request)
        self._title = title
        self._content = content
        self._query = query
        self._search_bar = search_bar
        self._logins = logins

    @renderer
    def who(self, request: IRequest, tag: Tag) -> Tag | str:
        """Who is logged in (and their tokens), or the way to log in where there are users."""
        account = logged_in(request)
        if account is not None:
            return tag(tags.span(account.name, class_="user"), " · ",
                       tags.a("Your tokens", href=self._root + "+tokens"))
        if not self._logins:
            return ""
        here = request.path.decode("latin-1")
        return tag(tags.a("Log in", href=self._root + "+login?" + urlencode({"next": here})))

    @renderer
    def search_bar(self, request: IRequest, tag: Tag) -> Tag | str:
        return tag if self._search_bar else ""  # the landing page has a big one of its own

    @renderer
    def page(self, request: IRequest, tag: Tag) -> Tag:
        return tag.fillSlots(title=self._title, root=self._root or "./", query=self._query,
                             stylesheet=self._root + "+static/style.css", search=self._root + "+search")

    @renderer
    def content(self, request: IRequest, tag: Tag) -> Tag:
        return tag(self._content)


async def render_page(request: IRequest, title: str, content: Element | Tag, query: str = "",
                      search_bar: bool = True, logins: bool = False) -> bytes:
    """The whole HTML answer for ``content`` (headers set; a HEAD gets them alone)."""
    set_html_headers(request)
    body = DOCTYPE + await flattenString(request, Layout(request, title, content, query, search_bar, logins))
    request.setHeader(b"content-length", b"%d" % len(body))
    return body


class _Message(Element):
    loader = template("message.xml")

    def __init__(self, code: int, reason: str) -> None:
        super().__init__()
        self._code = code
        self._reason = reason

    @renderer
    def message(self, request: IRequest, tag: Tag) -> Tag:
        return tag.fillSlots(code=f"{self._code} {RESPONSES.get(self._code, b'').decode()}", reason=self._reason)


class _HtmlError(Resource):
    """errors.error_page's twin for people: the same status and phrase, as a page."""

    isLeaf = True

    def __init__(self, code: int, reason: str, headers: dict[str, str]) -> None:
        super().__init__()
        self._code = code
        self._reason = reason
        self._headers = headers

    def render(self, request: Request) -> int:
        set_status(request, self._code, self._reason, self._headers)
        title = f"{self._code} {RESPONSES.get(self._code, b'').decode()}"
        return render_async(request, render_page(request, title, _Message(self._code, self._reason)))

    def getChild(self, path: bytes, request: IRequest) -> IResource:
        return self


def html_error(code: int, reason: str, headers: dict[str, str] | None = None) -> IResource:
    """A resource answering every request with ``code`` and ``reason``, as a page."""
    return _HtmlError(code, reason, headers or {})
