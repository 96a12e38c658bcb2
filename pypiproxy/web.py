"""The resource tree, mirroring the URL space: /simple/, /files/, /+health, /+stats, /+metrics."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from typing import Any, Coroutine
from urllib.parse import quote

from packaging.utils import canonicalize_name
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request

from . import simple
from .errors import error_page, not_found
from .files import KEY, CachedFile, FileCache, FileProducer, Source, cache_key
from .pages import CachedPage, PageCache, ProjectNotFound, RenderedPage, render_names
from .stats import Stats
from .upstream import UpstreamError

log = Logger()


@dataclass(frozen=True)
class Components:
    """What the resources answer from; built once by the service."""

    pages: PageCache
    files: FileCache
    stats: Stats
    ttl: float

    def announce_local_metadata(self, entry: simple.FileEntry) -> simple.FileEntry:
        """A cached wheel's METADATA is offered (PEP 658) even where the upstream had none,
        so every tier below resolves without opening wheels."""
        if entry.core_metadata or not entry.filename.endswith(".whl"):
            return entry
        digest = self.files.local_metadata(cache_key(entry))
        return replace(entry, core_metadata={"sha256": digest}) if digest else entry


VALID_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
FILE_CACHE_CONTROL = b"max-age=31536000, immutable"
VARY = b"Accept, Accept-Encoding"


def file_url(project: str):
    """Where clients fetch a project's files: relative to its page, so any host name works."""

    def url(entry: simple.FileEntry) -> str:
        return f"../../files/{project}/{cache_key(entry)}/{quote(entry.filename)}"

    return url


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


def _upstream_error(e: UpstreamError) -> IResource:
    return error_page(e.status, f"upstream failed: {e}")


def _accepts_gzip(request: Request) -> bool:
    header = request.getHeader(b"accept-encoding") or b""
    qualities = dict(simple.parse_qualities(header.decode("latin-1")))
    return qualities.get("gzip", qualities.get("*", 0.0)) > 0


def _etag_matches(header: bytes | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == b"*":
        return True
    tags = [t.strip().removeprefix(b"W/") for t in header.split(b",")]
    return etag.encode() in tags


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
    gzipped = _accepts_gzip(request)
    form = rendered.get(fmt, gzipped)
    request.setHeader(b"content-type", content_type.encode() + (b"; charset=utf-8" if fmt == "html" else b""))
    request.setHeader(b"etag", form.etag.encode())
    if request.getHeader(b"authorization") is not None:
        # Seen through a login: "public" would let a shared cache in front hand it to anyone.
        cache_control = cache_control.replace("public", "private")
    request.setHeader(b"cache-control", cache_control.encode())
    if gzipped:
        request.setHeader(b"content-encoding", b"gzip")
    if _etag_matches(request.getHeader(b"if-none-match"), form.etag):
        request.setResponseCode(http.NOT_MODIFIED)
        return b""
    request.setHeader(b"content-length", b"%d" % len(form.body))
    return form.body


class _Endpoint(Resource):
    """A resource with nothing below it: any longer path is a clean 404."""

    def getChild(self, path: bytes, request: Request) -> IResource:
        return not_found("no such page")


class Health(_Endpoint):
    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return b'{"status": "ok"}\n'


class StatsPage(_Endpoint):
    def __init__(self, stats: Stats, prometheus: bool) -> None:
        super().__init__()
        self._stats = stats
        self._prometheus = prometheus

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"cache-control", b"no-store")
        if self._prometheus:
            request.setHeader(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
            return self._stats.as_prometheus()
        request.setHeader(b"content-type", b"application/json")
        return self._stats.as_json()


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
            return _redirect(request, b"simple/")
        return render_async(request, self._answer(request))

    async def _answer(self, request: Request) -> IResource | bytes:
        components = self._components
        components.stats.incr("page_requests")
        try:
            names = await components.pages.project_names()
        except UpstreamError as e:
            return _upstream_error(e)
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
        if not VALID_NAME.match(name):
            return not_found(f"not a valid project name: {name[:100]!r}").render(request)
        if request.postpath not in ([], [b""]):
            return not_found("no such page").render(request)
        normalised = canonicalize_name(name)
        if normalised != name or request.postpath == []:
            # Relative, so that it stays right behind a reverse proxy that adds a prefix.
            target = f"../{normalised}/" if request.postpath else f"{normalised}/"
            query = request.uri.partition(b"?")[2]
            return _redirect(request, target.encode() + (b"?" + query if query else b""))
        self._components.stats.incr("page_requests")
        cached = self._components.pages.fresh(normalised)
        if cached is not None:
            answer = self._serve(request, normalised, cached)
            return answer if isinstance(answer, bytes) else answer.render(request)
        return render_async(request, self._answer(request, normalised))

    async def _answer(self, request: Request, name: str) -> IResource | bytes:
        try:
            cached = await self._components.pages.project(name)
        except ProjectNotFound:
            return not_found(f"no project named {name!r}")
        except UpstreamError as e:
            return _upstream_error(e)
        return self._serve(request, name, cached)

    def _serve(self, request: Request, name: str, cached: CachedPage) -> IResource | bytes:
        components = self._components
        rendered = cached.rendered(
            file_url(name), components.announce_local_metadata, components.files.metadata_generation
        )
        return serve_index(request, rendered, f"public, max-age={int(components.ttl)}")


class Files(Resource):
    """``/files/<project>/<key>/<filename>[.metadata]``: always from this proxy."""

    isLeaf = True

    def __init__(self, components: Components) -> None:
        super().__init__()
        self._pages = components.pages
        self._files = components.files
        self._stats = components.stats

    def render_GET(self, request: Request) -> int | bytes:
        if len(request.postpath) != 3:
            return not_found("no such file").render(request)
        project, key, filename = (p.decode("utf-8", "replace") for p in request.postpath)
        if not (VALID_NAME.match(project) and KEY.match(key) and _safe_filename(filename)):
            return not_found("no such file").render(request)
        self._stats.incr("file_requests")
        return render_async(request, self._answer(request, canonicalize_name(project), key, filename))

    render_HEAD = render_GET

    async def _answer(self, request: Request, project: str, key: str, filename: str) -> IResource | bytes | None:
        metadata = filename.endswith(".metadata")
        if metadata:
            filename = filename.removesuffix(".metadata")
        cached = None if metadata else self._files.cached(key)
        if cached is not None:
            self._stats.incr("cache_hits")
            return serve_file(request, cached, key, hit=True, stats=self._stats)
        try:
            entry = await self._find(project, key, filename)
            if entry is None:
                return not_found(f"{filename} is not a file of {project}")
            if metadata:
                data = await self._files.metadata(key, entry)
                if data is None:
                    return not_found(f"the index offers no metadata for {filename}")
                request.setHeader(b"content-type", b"text/plain; charset=utf-8")
                request.setHeader(b"etag", b'"%s.metadata"' % key.encode())
                request.setHeader(b"cache-control", FILE_CACHE_CONTROL)
                request.setHeader(b"content-length", b"%d" % len(data))
                return data
            if request.method == b"HEAD" and entry.size is not None:
                # A cold HEAD (uv asks one before reading ranges) needs no download.
                _file_headers(request, key, entry.size, hit=False)
                request.setHeader(b"content-length", b"%d" % entry.size)
                return b""
            wanted = _cold_range(request, key, entry)
            if wanted is None:
                source = await self._files.fetch(key, entry)
            else:
                spec, needed = wanted
                download = self._files.download(key, entry)
                if needed is None or download.available() < needed:
                    # uv reads a wheel's METADATA with ranges near its end: answer those
                    # from the upstream now, while the whole file downloads for later.
                    piped = await self._files.upstream_range(entry, spec)
                    if piped is not None:
                        return await _pipe_range(request, key, *piped, stats=self._stats)
                source = await download.when_started()
        except UpstreamError as e:
            return _upstream_error(e)
        return serve_file(request, source, key, hit=isinstance(source, CachedFile), stats=self._stats)

    async def _find(self, project: str, key: str, filename: str) -> simple.FileEntry | None:
        """The index's entry for a file: from the page we hold, else a fresh page."""
        cached = await self._pages.cached(project)
        entry = _entry_with_key(cached.page if cached else None, key, filename)
        if entry is not None:
            return entry
        try:
            fresh = await self._pages.project(project)
        except ProjectNotFound:
            return None
        return _entry_with_key(fresh.page, key, filename)


# Larger ranges are answered from the download like whole files; small ones may pass through.
PASSTHROUGH_LIMIT = 8 * 1024 * 1024


_CLOSED_RANGE = re.compile(r"^\s*bytes\s*=\s*(?:(\d+)-(\d+)|-(\d+))\s*$", re.IGNORECASE)


def _cold_range(request: Request, key: str, entry: simple.FileEntry) -> tuple[str, int | None] | None:
    """For a single, small range of an uncached file: the range to ask the upstream for,
    and how far the download must have come to answer it from there (None: unknown)."""
    if not _range_applies(request, f'"{key}"'):
        return None
    header = request.getHeader(b"range").decode("latin-1")
    if entry.size is not None:
        wanted = parse_range(header.encode("latin-1"), entry.size)
        if isinstance(wanted, tuple) and wanted[1] - wanted[0] <= PASSTHROUGH_LIMIT:
            return f"bytes={wanted[0]}-{wanted[1] - 1}", wanted[1]
        return None
    # The index gave no size (a plain PEP 503 page): closed and suffix ranges still have a
    # known length, and the upstream's Content-Range tells us the rest.
    match = _CLOSED_RANGE.match(header)
    if match is None:
        return None
    first, last, suffix = match.groups()
    length = int(suffix) if suffix else int(last) - int(first) + 1
    return (header.strip(), None) if 0 < length <= PASSTHROUGH_LIMIT else None


async def _pipe_range(
    request: Request, key: str, response, start: int, end: int, size: int, stats: Stats
) -> bytes | None:
    """Send an upstream's 206 on to the client; a broken one aborts the client too."""
    _file_headers(request, key, size, hit=False)
    request.setResponseCode(http.PARTIAL_CONTENT)
    request.setHeader(b"content-range", b"bytes %d-%d/%d" % (start, end - 1, size))
    request.setHeader(b"content-length", b"%d" % (end - start))
    if request.method == b"HEAD":
        response.abort()
        return b""

    def write(data: bytes) -> None:
        if not (request._disconnected or request.finished):
            stats.incr("bytes_served", len(data))
            request.write(data)

    try:
        await response.stream(write)
    except UpstreamError:
        if request.transport is not None:
            request.transport.abortConnection()
        return None
    return b""


def _entry_with_key(page: simple.ProjectPage | None, key: str, filename: str) -> simple.FileEntry | None:
    if page is None:
        return None
    entry = page.find(filename)
    if entry is not None and cache_key(entry) == key:
        return entry
    return None


def _safe_filename(filename: str) -> bool:
    return (
        0 < len(filename) <= 255
        and filename not in (".", "..")
        and not any(c in filename for c in "/\\\x00")
    )


def _file_headers(request: Request, key: str, length: int | None, hit: bool) -> None:
    request.setHeader(b"content-type", b"application/octet-stream")
    request.setHeader(b"etag", b'"%s"' % key.encode())
    request.setHeader(b"cache-control", FILE_CACHE_CONTROL)
    request.setHeader(b"x-cache", b"HIT" if hit else b"MISS")
    if length is not None:
        request.setHeader(b"accept-ranges", b"bytes")


def serve_file(request: Request, source: Source, key: str, hit: bool, stats: Stats) -> IResource | bytes | None:
    """Send a file, whole or one range, from the cache or from its download in progress."""
    if source.failed():
        return error_page(502, "the upstream download failed")
    length = source.length
    _file_headers(request, key, length, hit)
    etag = f'"{key}"'
    if _etag_matches(request.getHeader(b"if-none-match"), etag):
        request.setResponseCode(http.NOT_MODIFIED)
        return b""
    start, end = 0, length
    if length is not None and _range_applies(request, etag):
        byte_range = parse_range(request.getHeader(b"range"), length)
        if byte_range == "unsatisfiable":
            return error_page(416, "range not satisfiable", {"Content-Range": f"bytes */{length}"})
        if byte_range is not None:
            start, end = byte_range
            request.setResponseCode(http.PARTIAL_CONTENT)
            request.setHeader(b"content-range", b"bytes %d-%d/%d" % (start, end - 1, length))
    if end is not None:
        request.setHeader(b"content-length", b"%d" % (end - start))
    if request.method == b"HEAD":
        return b""
    FileProducer(request, source, start, end, stats).start()
    return None


def _range_applies(request: Request, etag: str) -> bool:
    """``If-Range``: a range only when the client's copy is the one we have."""
    if request.getHeader(b"range") is None:
        return False
    if_range = request.getHeader(b"if-range")
    if if_range is None:
        return True
    if if_range.startswith((b'"', b"W/")):
        return if_range.decode("latin-1") == etag
    try:
        parsedate_to_datetime(if_range.decode("latin-1"))
    except (TypeError, ValueError):
        return False
    # Cached files never change, so any date the client saw them at is still right.
    return True


def parse_range(header: bytes | None, length: int) -> tuple[int, int] | str | None:
    """A single ``bytes=`` range as ``(start, end)`` (end exclusive); None: serve it all."""
    if not header:
        return None
    unit, _, spec = header.decode("latin-1").partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None  # other units, or several ranges: the whole file is a correct answer
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first == "":
            suffix = int(last)
            if suffix <= 0:
                return "unsatisfiable"
            return (max(0, length - suffix), length)
        start = int(first)
        end = int(last) + 1 if last else length
    except ValueError:
        return None
    if start < 0 or end <= start:
        return None if end <= start and start < length else "unsatisfiable"
    if start >= length:
        return "unsatisfiable"
    return (start, min(end, length))


def _redirect(request: Request, location: bytes) -> bytes:
    request.setResponseCode(http.MOVED_PERMANENTLY)
    request.setHeader(b"location", location)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return b"moved to " + location + b"\n"


class Root(Resource):
    def __init__(self, components: Components) -> None:
        super().__init__()
        self._stats = components.stats
        self.putChild(b"simple", ProjectList(components))
        self.putChild(b"files", Files(components))
        self.putChild(b"+health", Health())
        self.putChild(b"+stats", StatsPage(components.stats, prometheus=False))
        self.putChild(b"+metrics", StatsPage(components.stats, prometheus=True))

    def getChildWithDefault(self, path: bytes, request: Request) -> IResource:
        self._stats.incr("requests")
        child = self.children.get(path)
        return child if child is not None else self.getChild(path, request)

    def getChild(self, path: bytes, request: Request) -> IResource:
        if path == b"":
            return self
        return not_found("no such page")

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return b'<!DOCTYPE html><html><body><a href="simple/">simple index</a></body></html>\n'

    def render_POST(self, request: Request) -> int | bytes:
        # Uploads: twine and `uv publish` post to /legacy/ or to the root, as users configure.
        return (self.children.get(b"legacy") or not_found("no upload here")).render(request)
