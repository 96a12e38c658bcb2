"""``/files/<project>/<key>/<filename>[.metadata]``: every file, always from this proxy."""

from __future__ import annotations

from urllib.parse import quote

from packaging.utils import canonicalize_name
from twisted.internet.interfaces import IReactorTime
from twisted.web import http
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from .. import simple
from ..cache import KEY, CachedFile, CachedPage, FileWithheld, ProjectNotFound, Withheld, cache_key
from ..interfaces import IFileSource
from ..simple.checks import MAX_NAME
from ..stats import Stats
from ..upstream import UpstreamError
from .components import Components
from .errors import error_page, not_found
from .http import etag_matches, render_async, upstream_error
from .producer import FileProducer
from .ranges import cold_range, parse_range, range_applies

# A cold range the download in progress will likely bring within this many seconds (at its
# rate so far) is answered from it, not asked of the upstream once more: on loopback that is
# the rest of most wheels of an install by the time uv asks for their last bytes (a cold
# install of the benchmark's corpus, 5 alternating rounds: 1.28x -> 1.21x the direct time).
# A slow upstream is asked for the range at once, as before.
WAIT_FOR_DOWNLOAD = 0.05

FILE_CACHE_CONTROL = b"max-age=31536000, immutable"


class Files(Resource):
    """``/files/<project>/<key>/<filename>[.metadata]``: always from this proxy."""

    isLeaf = True

    def __init__(self, components: Components) -> None:
        super().__init__()
        self._pages = components.pages
        self._files = components.files
        self._stats = components.stats
        self._clock = components.clock
        self._accel = (components.accel_redirect, components.cache_dir) if components.accel_redirect else None

    def render_GET(self, request: Request) -> int | bytes:
        if len(request.postpath) != 3:
            return not_found("no such file").render(request)
        project, key, filename = (p.decode("utf-8", "replace") for p in request.postpath)
        if not (len(project) <= MAX_NAME and simple.VALID_NAME.match(project) and KEY.match(key)
                and _safe_filename(filename)):
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
            if self._accel is not None:
                redirected = accel_redirect(request, cached, key, *self._accel)
                if redirected is not None:
                    self._stats.incr("accel_redirects")
                    return redirected
            return serve_file(request, cached, key, hit=True, stats=self._stats, clock=self._clock)
        try:
            entry = await self._find(project, key, filename)
            if entry is None:
                return not_found(f"{filename} is not a file of {project}")
            if isinstance(entry, Withheld):
                raise FileWithheld(entry)
            if not metadata:
                # A tier in front (the guard) may clear a cached file only once it has seen
                # the file's entry in its page: ask again now that it has.
                cached = self._files.cached(key)
                if cached is not None:
                    self._stats.incr("cache_hits")
                    return serve_file(request, cached, key, hit=True, stats=self._stats, clock=self._clock)
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
            wanted = cold_range(request, key, entry)
            if wanted is None:
                source = await self._files.fetch(key, entry)
            else:
                spec, needed = wanted
                download = self._files.download(key, entry)
                if needed is None and download.length is not None:
                    # The index gave no size, the upstream's answer did (uv asks a HEAD first).
                    sized = cold_range(request, key, entry, download.length)
                    needed = sized[1] if sized is not None else None
                if needed is None or download.available_within(WAIT_FOR_DOWNLOAD) < needed:
                    # uv reads a wheel's METADATA with ranges near its end: answer those
                    # from the upstream now, while the whole file downloads for later.
                    piped = await self._files.upstream_range(entry, spec)
                    if piped is not None:
                        return await _pipe_range(request, key, *piped, stats=self._stats)
                source = await download.when_started()
        except ProjectNotFound as e:  # refused by a tier in front; it says why
            return not_found(e.reason or f"no project named {project!r}")
        except FileWithheld as e:
            self._stats.incr(e.withheld.counter)
            return error_page(e.withheld.status, e.withheld.reason)
        except UpstreamError as e:
            return upstream_error(e)
        return serve_file(
            request, source, key, hit=isinstance(source, CachedFile), stats=self._stats, clock=self._clock
        )

    async def _find(self, project: str, key: str, filename: str) -> simple.FileEntry | Withheld | None:
        """The index's entry for a file (or why a tier in front withholds it): from the page
        we hold, else a fresh page. A project a tier in front refuses raises ProjectNotFound."""
        cached = await self._pages.cached(project)
        entry = _entry_with_key(cached, key, filename)
        if isinstance(entry, simple.FileEntry):
            return entry
        # Not there, or withheld by what we last heard (a quarantine may have been lifted
        # since): the page as it is now, revalidated if it is due.
        try:
            fresh = await self._pages.project(project)
        except ProjectNotFound as e:
            if e.reason is not None:
                raise
            return None
        return _entry_with_key(fresh, key, filename)


# Larger ranges are answered from the download like whole files; small ones may pass through.


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


def _entry_with_key(cached: CachedPage | None, key: str, filename: str) -> simple.FileEntry | Withheld | None:
    if cached is None:
        return None
    entry = cached.page.find(filename)
    if entry is not None and cache_key(entry) == key:
        return entry
    withheld = cached.withheld.get(filename)
    if withheld is not None and cache_key(withheld.entry) == key:
        return withheld
    if cached.closed is not None:
        # The index no longer lists the project's files (a quarantine): nor do we serve
        # those we cached before, saying why.
        return Withheld(simple.FileEntry(filename, ""), 404, cached.closed, "refused_files")
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


def accel_redirect(request: Request, cached: CachedFile, key: str, prefix: str, cache_dir) -> bytes | None:
    """Hand a complete cached file to nginx (``X-Accel-Redirect``): it sends it with sendfile
    and answers ranges itself. Our checks (the gate, the guard, the file's validity) are done;
    our headers go along and the nginx side passes them on (etc/nginx-lb.conf)."""
    try:
        relative = cached.path.resolve().relative_to(cache_dir.resolve())
    except ValueError:
        return None  # not below the cache directory nginx knows: we send it ourselves
    _file_headers(request, key, cached.length, hit=True)
    if etag_matches(request.getHeader(b"if-none-match"), f'"{key}"'):
        request.setResponseCode(http.NOT_MODIFIED)
        return b""
    request.setHeader(b"x-accel-redirect", quote(f"{prefix}/{relative.as_posix()}").encode())
    request.setHeader(b"content-length", b"0")
    return b""


def serve_file(
    request: Request, source: IFileSource, key: str, hit: bool, stats: Stats, clock: IReactorTime
) -> IResource | bytes | None:
    """Send a file, whole or one range, from the cache or from its download in progress."""
    if source.failed():
        return error_page(502, "the upstream download failed")
    length = source.length
    _file_headers(request, key, length, hit)
    etag = f'"{key}"'
    if etag_matches(request.getHeader(b"if-none-match"), etag):
        request.setResponseCode(http.NOT_MODIFIED)
        return b""
    start, end = 0, length
    if length is not None and range_applies(request, etag):
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
    FileProducer(request, source, start, end, stats, clock).start()
    return None
