"""``/simple/`` and ``/simple/<project>/``: the index pages, negotiated, every URL pointing back at us."""

from __future__ import annotations

from urllib.parse import quote

from packaging.utils import canonicalize_name
from twisted.web.http import NOT_MODIFIED
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from .. import simple
from ..simple.checks import MAX_NAME
from ..cache import CachedPage, ProjectNotFound, RenderedPage, cache_key, render_names
from ..upstream import UpstreamError
from .components import Components
from .errors import error_page, not_found
from .http import etag_matches, redirect, render_async, upstream_error

VARY = b"Accept, Accept-Encoding"
# Our pages are lists of links: no script, style, frame or form is ever meant to run in them,
# whatever an upstream managed to put in a name.
HTML_POLICY = b"default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


def file_url(project: str):
    """Where clients fetch a project's files: relative to its page, so any host name works."""

    def url(entry: simple.FileEntry) -> str:
        return f"../../files/{quote(project, safe='')}/{cache_key(entry)}/{quote(entry.filename, safe='')}"

    return url


def serve_index(request: Request, rendered: RenderedPage, cache_control: str) -> IResource | bytes:
    """Answer with the negotiated form of a pre-rendered page."""
    # The query's "+" arrives as a space ("v1+json" unescaped, as people type it).
    format_param = request.args.get(b"format", [b""])[0].decode("latin-1").replace(" ", "+")
    accept = request.getHeader(b"accept")
    chosen = simple.negotiate(accept.decode("latin-1") if accept else None, format_param)
    request.setHeader(b"vary", VARY)
    if chosen is None:
        return error_page(406, "acceptable: application/vnd.pypi.simple.v1+json, "
                          "application/vnd.pypi.simple.v1+html, text/html")
    fmt, content_type = chosen
    gzipped = simple.accepts_gzip((request.getHeader(b"accept-encoding") or b"").decode("latin-1"))
    form = rendered.get(fmt, gzipped)
    request.setHeader(b"content-type", content_type.encode() + (b"; charset=utf-8" if fmt == "html" else b""))
    request.setHeader(b"x-content-type-options", b"nosniff")
    if fmt == "html":
        request.setHeader(b"content-security-policy", HTML_POLICY)
    request.setHeader(b"etag", form.etag.encode())
    if request.getHeader(b"authorization") is not None:
        # Seen through a login: "public" would let a shared cache in front hand it to anyone.
        cache_control = cache_control.replace("public", "private")
    request.setHeader(b"cache-control", cache_control.encode())
    if gzipped:
        request.setHeader(b"content-encoding", b"gzip")
    if etag_matches(request.getHeader(b"if-none-match"), form.etag):
        request.setResponseCode(NOT_MODIFIED)
        return b""
    request.setHeader(b"content-length", b"%d" % len(form.body))
    return form.body


class ProjectList(Resource):
    """``/simple/``: every project the upstreams list."""

    def __init__(self, components: Components) -> None:
        super().__init__()
        self._components = components
        self._rendered: tuple[tuple[str, ...], RenderedPage] | None = None

    def getChild(self, path: bytes, request: Request) -> IResource:
        if path == b"":
            return self
        return ProjectPage(path, self._components)

    def render_GET(self, request: Request) -> int:
        if not request.path.endswith(b"/"):
            return redirect(request, b"simple/")
        return render_async(request, self._answer(request))

    async def _answer(self, request: Request) -> IResource | bytes:
        components = self._components
        components.stats.incr("page_requests")
        try:
            names = await components.pages.project_names()
        except UpstreamError as e:
            return upstream_error(e)
        if self._rendered is None or self._rendered[0] is not names:
            self._rendered = (names, render_names(sorted(names)))
        return serve_index(request, self._rendered[1], f"public, max-age={int(components.ttl)}")


class ProjectPage(Resource):
    """``/simple/<project>/``: one project's files, every URL pointing back at us."""

    isLeaf = True

    def __init__(self, segment: bytes, components: Components) -> None:
        super().__init__()
        self._segment = segment
        self._components = components

    def render_GET(self, request: Request) -> int | bytes:
        name = self._segment.decode("utf-8", "replace")
        if len(name) > MAX_NAME:
            # A valid PEP 508 name may be any length; ours are stored as file names.
            return not_found(f"project names over {MAX_NAME} characters are not served").render(request)
        if not simple.VALID_NAME.match(name):
            return not_found(f"not a valid project name: {name[:100]!r}").render(request)
        if request.postpath not in ([], [b""]):
            return not_found("no such page").render(request)
        normalised = canonicalize_name(name)
        if normalised != name or request.postpath == []:
            # Relative, so that it stays right behind a reverse proxy that adds a prefix.
            target = f"../{normalised}/" if request.postpath else f"{normalised}/"
            query = request.uri.partition(b"?")[2]
            return redirect(request, target.encode() + (b"?" + query if query else b""))
        self._components.stats.incr("page_requests")
        cached = self._components.pages.fresh(normalised)
        if cached is not None:
            answer = self._serve(request, normalised, cached)
            return answer if isinstance(answer, bytes) else answer.render(request)
        return render_async(request, self._answer(request, normalised))

    async def _answer(self, request: Request, name: str) -> IResource | bytes:
        try:
            cached = await self._components.pages.project(name)
        except ProjectNotFound as e:
            return not_found(e.reason or f"no project named {name!r}")
        except UpstreamError as e:
            return upstream_error(e)
        return self._serve(request, name, cached)

    def _serve(self, request: Request, name: str, cached: CachedPage) -> IResource | bytes:
        components = self._components
        rendered = cached.rendered(
            file_url(name), components.announce_local_metadata, components.files.metadata_generation
        )
        return serve_index(request, rendered, f"public, max-age={int(components.ttl)}")
