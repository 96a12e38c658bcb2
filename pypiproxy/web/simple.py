"""``/simple/`` and ``/simple/<project>/``: the index pages, negotiated, every URL pointing back at us."""

from __future__ import annotations

from urllib.parse import quote

from twisted.web.http import NOT_MODIFIED
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from .. import simple
from ..cache import CachedFile, CachedPage, ProjectNotFound, RenderedPage, Representation, cache_key
from ..upstream import UpstreamError
from .components import Components
from .errors import not_found
from .http import etag_matches, project_name, redirect, render_async, upstream_error
from .negotiation import Negotiated
from .producer import FileProducer

# Our pages are lists of links: no script, style, frame or form is ever meant to run in them,
# whatever an upstream managed to put in a name.
HTML_POLICY = b"default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


def file_url(project: str):
    """Where clients fetch a project's files: relative to its page, so any host name works."""

    def url(entry: simple.FileEntry) -> str:
        return f"../../files/{quote(project, safe='')}/{cache_key(entry)}/{quote(entry.filename, safe='')}"

    return url


# Pages with more files than this are rendered (and gzipped) in a thread, the first time
# each form is asked for; smaller ones are quicker to render than to hand over.
INLINE_RENDER_FILES = 200


def send_form(request: Request, wanted: Negotiated, form: Representation, cache_control: str) -> bytes:
    """Answer with one pre-rendered form of a page: headers, then its body (or a 304)."""
    suffix = b"; charset=utf-8" if wanted.fmt == "html" else b""
    request.setHeader(b"content-type", wanted.content_type.encode() + suffix)
    request.setHeader(b"x-content-type-options", b"nosniff")
    if wanted.fmt == "html":
        request.setHeader(b"content-security-policy", HTML_POLICY)
    request.setHeader(b"etag", form.etag.encode())
    if request.getHeader(b"authorization") is not None:
        # Seen through a login: "public" would let a shared cache in front hand it to anyone.
        cache_control = cache_control.replace("public", "private")
    request.setHeader(b"cache-control", cache_control.encode())
    if wanted.gzipped:
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

    def getChild(self, path: bytes, request: Request) -> IResource:
        if path == b"":
            return self
        return ProjectPage(path, self._components)

    def render_GET(self, request: Request) -> int | bytes:
        if not request.path.endswith(b"/"):
            return redirect(request, b"simple/")
        self._components.stats.incr("page_requests")
        wanted = self._components.negotiations.of(request)
        if not isinstance(wanted, Negotiated):
            return wanted.render(request)
        return render_async(request, self._answer(request, wanted))

    async def _answer(self, request: Request, wanted: Negotiated) -> IResource | bytes | None:
        components = self._components
        try:
            listing = await components.project_list.project_list()
        except UpstreamError as e:
            return upstream_error(e)
        form = listing.form(wanted.fmt, wanted.gzipped)
        body = send_form(request, wanted, Representation(b"", form.etag), f"public, max-age={int(components.ttl)}")
        if request.code == NOT_MODIFIED:
            return body
        request.setHeader(b"content-length", b"%d" % form.size)
        if request.method == b"HEAD":
            return b""
        # From the file, as fast as the client takes it: 40 MB never sit in memory.
        FileProducer(request, CachedFile(form.path, form.size), 0, form.size, components.stats, components.clock,
                     counter=None).start()
        return None


class ProjectPage(Resource):
    """``/simple/<project>/``: one project's files, every URL pointing back at us."""

    isLeaf = True

    def __init__(self, segment: bytes, components: Components) -> None:
        super().__init__()
        self._segment = segment
        self._components = components

    def render_GET(self, request: Request) -> int | bytes:
        normalised = project_name(request, self._segment)
        if not isinstance(normalised, str):
            return normalised
        self._components.stats.incr("page_requests")
        wanted = self._components.negotiations.of(request)
        if not isinstance(wanted, Negotiated):
            return wanted.render(request)
        cached = self._components.pages.fresh(normalised)
        if cached is not None:
            # The warm path: a form already built (or quick to build) is answered at once.
            rendered = self._rendered(normalised, cached)
            form = rendered.ready(wanted.fmt, wanted.gzipped)
            if form is None and len(cached.page.files) <= INLINE_RENDER_FILES:
                form = rendered.get(wanted.fmt, wanted.gzipped)
            if form is not None:
                return send_form(request, wanted, form, self._cache_control)
        return render_async(request, self._answer(request, normalised, wanted, cached))

    async def _answer(
        self, request: Request, name: str, wanted: Negotiated, cached: CachedPage | None
    ) -> IResource | bytes:
        if cached is None:
            try:
                cached = await self._components.pages.project(name)
            except ProjectNotFound as e:
                return not_found(e.reason or f"no project named {name!r}")
            except UpstreamError as e:
                return upstream_error(e)
        rendered = self._rendered(name, cached)
        form = rendered.ready(wanted.fmt, wanted.gzipped)
        if form is None:
            if len(cached.page.files) > INLINE_RENDER_FILES:
                form = await self._components.to_thread(rendered.get, wanted.fmt, wanted.gzipped)
            else:
                form = rendered.get(wanted.fmt, wanted.gzipped)
        return send_form(request, wanted, form, self._cache_control)

    @property
    def _cache_control(self) -> str:
        return f"public, max-age={int(self._components.ttl)}"

    def _rendered(self, name: str, cached: CachedPage) -> RenderedPage:
        components = self._components
        return cached.rendered(
            file_url(name), components.announce_local_metadata, components.files.metadata_generation
        )
