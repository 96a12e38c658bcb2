"""The fake upstream Simple API index, misbehaving on demand, on loopback or in memory."""

# Why: the proxy must be tested against an upstream that behaves like the public index
# (PEP 503 HTML, PEP 691 JSON, PEP 658/714 metadata, PEP 700 fields) and that can also
# misbehave on demand (slow, dying, hanging, lying about hashes), without any network.
# It listens on 127.0.0.1 only, or answers an in-memory agent (memory.py), no socket at all.

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import json
import re
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    canonicalize_version,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IListeningPort
from twisted.protocols.policies import WrappingFactory
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from .builders import Built
from .waiting import wait_until

__all__ = [
    "BEHAVIOURS",
    "FakeIndex",
    "FileEntry",
    "HTML_V1",
    "JSON_V1",
    "RequestRecord",
    "TEXT_HTML",
    "negotiate",
]

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
_LATEST = {
    "application/vnd.pypi.simple.latest+json": JSON_V1,
    "application/vnd.pypi.simple.latest+html": HTML_V1,
}
# Server preference order on ties, as the public index's negotiation has it.
_OFFERS = (TEXT_HTML, HTML_V1, JSON_V1)

# gzip-label: the stored bytes sent with "Content-Encoding: gzip" (Apache's AddEncoding for
# .gz); gzip-if-asked: compressed on the fly for a client that accepts gzip (nginx gzip on).
BEHAVIOURS = frozenset(
    {"ok", "slow", "die", "wrong-hash", "500", "404", "hang", "redirect", "gzip-label", "gzip-if-asked"}
)
_PROJECT_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


# --------------------------------------------------------------------------- index model


@dataclass
class FileEntry:
    """One file the fake index offers; mutable so a test can change its behaviour mid-test."""

    project: str  # normalised project name
    built: Built
    yanked: bool | str = False
    requires_python: str | None = None
    metadata: bool = True
    behaviour: str = "ok"
    gpg_sig: bool = False
    upload_time: str | None = None
    provenance: str | None = None  # PEP 740: a URL, sent as given
    extra: dict[str, Any] = field(default_factory=dict)  # more JSON keys, as an index may add

    @property
    def filename(self) -> str:
        """The file's name, also its last URL segment."""
        return self.built.filename

    @property
    def path(self) -> str:
        """Server-relative path the file is served at."""
        return f"/files/{self.project}/{quote(self.filename)}"


@dataclass(frozen=True)
class RequestRecord:
    """One request the fake index saw, for "exactly one upstream fetch" assertions."""

    method: str
    path: str  # the raw request target, query string included
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    port: int  # which listening port (main or the "other host") received it


@dataclass
class _Project:
    display_name: str
    files: dict[str, FileEntry] = field(default_factory=dict)
    status: str | None = None  # PEP 792
    status_reason: str | None = None


def upload_time(moment: float) -> str:
    """A PEP 700 ``upload-time`` for a timestamp, as the public index writes it."""
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def days_ago(days: float) -> str:
    """The ``upload-time`` of a file uploaded that many days before now."""
    return upload_time(time.time() - days * 86400)


def negotiate(accept: str | None, format_param: str | None = None) -> str:
    """Pick the page content type the way the public index does (PEP 691; `?format=` first)."""
    if format_param:
        wanted = _LATEST.get(format_param, format_param)
        if wanted in _OFFERS:
            return wanted
    if not accept or not accept.strip():
        return TEXT_HTML
    ranges: list[tuple[str, str, float]] = []
    for part in accept.split(","):
        pieces = [p.strip() for p in part.split(";")]
        media = pieces[0].lower()
        if "/" not in media:
            continue
        media = _LATEST.get(media, media)
        q = 1.0
        for param in pieces[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        mtype, _, subtype = media.partition("/")
        ranges.append((mtype, subtype, q))
    scored: list[tuple[float, int, str]] = []
    for order, offer in enumerate(_OFFERS):
        otype, _, osub = offer.partition("/")
        best: tuple[int, float] | None = None  # (specificity, q)
        for mtype, subtype, q in ranges:
            if (mtype, subtype) == (otype, osub):
                spec = 2
            elif mtype == otype and subtype == "*":
                spec = 1
            elif (mtype, subtype) == ("*", "*"):
                spec = 0
            else:
                continue
            if best is None or spec > best[0]:
                best = (spec, q)
        if best is not None and best[1] > 0:
            scored.append((-best[1], order, offer))
    if not scored:
        return TEXT_HTML
    return min(scored)[2]


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    tags = [t.strip() for t in header.split(",")]
    return etag in tags or f"W/{etag}" in tags


def _parse_range(header: str, size: int) -> tuple[int, int] | None | bool:
    """One `bytes=` range -> (start, end inclusive); None: ignore header; False: unsatisfiable."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first == "":
            length = int(last)
            if length <= 0:
                return False
            return (max(0, size - length), size - 1)
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return False
    return (start, min(end, size - 1))


# --------------------------------------------------------------------------- the server


class _Exchange:
    """One in-flight response: knows when its client has gone so timers can be dropped."""

    def __init__(self, index: FakeIndex, request: Request) -> None:
        self.index = index
        self.request = request
        self.gone = False
        self.calls: list[IDelayedCall] = []
        request.notifyFinish().addBoth(self._ended)

    def _ended(self, _: object) -> None:
        self.gone = True
        for call in self.calls:
            if call.active():
                call.cancel()
        self.calls.clear()

    def later(self, delay: float, fn: Callable[..., object], *args: object) -> None:
        """Run fn after delay unless the client or the index goes away first."""

        def run() -> None:
            self.index._calls.discard(call)
            if not self.gone:
                fn(*args)

        call = self.index._reactor.callLater(delay, run)
        self.calls.append(call)
        self.index._calls.add(call)

    def finish(self) -> None:
        """Finish the response if anyone is still listening."""
        if not self.gone:
            self.request.finish()

    def abort(self) -> None:
        """Drop the TCP connection with a reset: a failed transfer, not a short success."""
        if self.gone:
            return
        transport = self.request.transport
        try:
            # Linger 0 turns the close into a real RST rather than an orderly FIN.
            transport.getHandle().setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        except (AttributeError, OSError):
            pass
        transport.abortConnection()


class _Root(Resource):
    """Single leaf resource that routes by path, so every request is seen and recorded."""

    isLeaf = True

    def __init__(self, index: FakeIndex) -> None:
        super().__init__()
        self.index = index

    def render(self, request: Request) -> int:
        return self.index._handle(request)


class _QuietSite(Site):
    """A Site that does not log each request; test output stays readable."""

    noisy = False

    def log(self, request: Request) -> None:
        pass


class FakeIndex:
    """An in-process upstream Simple API index whose every behaviour a test can choose."""

    def __init__(
        self,
        *,
        url_style: str = "relative",
        require_auth: tuple[str, str] | None = None,
        fail_pages: int | None = None,
        fail_files: int | None = None,
        page_delay: float = 0.0,
        hang_pages: bool = False,
        slow_chunks: int = 5,
        slow_delay: float = 0.1,
        api_version: str = "1.1",
    ) -> None:
        self.api_version = api_version  # what pages say (PEP 629); 1.4 with status and provenance
        self.url_style = url_style  # "relative" | "absolute" | "other-host"
        self.require_auth = require_auth
        self.fail_pages = fail_pages  # every /simple/ request answers this status
        self.fail_files = fail_files  # every /files/ request answers this status
        self.page_delay = page_delay  # seconds before any /simple/ answer
        self.hang_pages = hang_pages  # /simple/ requests never get an answer
        self.slow_chunks = slow_chunks  # "slow" (and "hang") split bodies into this many parts
        self.slow_delay = slow_delay  # seconds between "slow" parts
        self.die_flush_timeout = 2.0  # "die": longest wait for the half body to leave
        self.serial = 0  # bumped on every change, sent as X-PyPI-Last-Serial
        self.requests: list[RequestRecord] = []
        # Hostile pages: a normalised project name (or "" for the project list) -> (body,
        # content type), answered as they are instead of the page the index would render.
        self.raw_pages: dict[str, tuple[bytes, str]] = {}
        # Any other path (e.g. "/files/x/y") -> body: files a raw page may point at.
        self.raw_files: dict[str, bytes] = {}
        self._projects: dict[str, _Project] = {}
        self._reactor: Any = None
        self._ports: list[IListeningPort] = []
        self._factory: WrappingFactory | None = None
        self._calls: set[IDelayedCall] = set()
        self.port = 0
        self.other_port = 0

    # ------------------------------------------------------------------ content

    def add_project(self, project_name: str) -> None:
        """Make a project exist (listed, page 200) even with no files."""
        norm = canonicalize_name(project_name)
        self._projects.setdefault(norm, _Project(display_name=project_name))
        self.serial += 1

    def add(
        self,
        project_name: str,
        built: Built,
        *,
        yanked: bool | str = False,
        requires_python: str | None = None,
        metadata: bool = True,
        behaviour: str = "ok",
        gpg_sig: bool = False,
        upload_time: str | None = None,
        provenance: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> FileEntry:
        """Offer a file; requires_python defaults to the one the file was built with."""
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}; one of {sorted(BEHAVIOURS)}")
        norm = canonicalize_name(project_name)
        project = self._projects.setdefault(norm, _Project(display_name=project_name))
        entry = FileEntry(
            project=norm,
            built=built,
            yanked=yanked,
            requires_python=requires_python if requires_python is not None else built.requires_python,
            metadata=metadata,
            behaviour=behaviour,
            gpg_sig=gpg_sig,
            upload_time=upload_time,
            provenance=provenance,
            extra=dict(extra or {}),
        )
        project.files[built.filename] = entry
        self.serial += 1
        return entry

    def set_status(self, project_name: str, status: str | None, reason: str | None = None) -> None:
        """PEP 792: mark a project quarantined, archived, deprecated (None: no marker)."""
        project = self._projects[canonicalize_name(project_name)]
        project.status, project.status_reason = status, reason
        self.serial += 1

    def remove(self, filename: str) -> None:
        """Stop offering a file (e.g. to test that a cached copy outlives the upstream's)."""
        for project in self._projects.values():
            if project.files.pop(filename, None) is not None:
                self.serial += 1
                return
        raise KeyError(filename)

    def entry(self, filename: str) -> FileEntry:
        """The FileEntry for a file name, to inspect or change it."""
        for project in self._projects.values():
            if filename in project.files:
                return project.files[filename]
        raise KeyError(filename)

    def project_names(self) -> list[str]:
        """Normalised names of all projects offered."""
        return sorted(self._projects)

    # ------------------------------------------------------------------ accounting

    def count(self, path_substring: str, method: str | None = None) -> int:
        """How many requests (optionally of one method) had this substring in their path."""
        return sum(
            1
            for r in self.requests
            if path_substring in r.path and (method is None or r.method == method.upper())
        )

    # ------------------------------------------------------------------ URLs

    @property
    def root_url(self) -> str:
        """`http://127.0.0.1:PORT/` of the main port."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def url(self) -> str:
        """The Simple API root, `http://127.0.0.1:PORT/simple/`."""
        return self.root_url + "simple/"

    @property
    def other_root_url(self) -> str:
        """`http://127.0.0.1:OTHERPORT/`: the "file host" used by url_style="other-host"."""
        return f"http://127.0.0.1:{self.other_port}/"

    @property
    def auth_url(self) -> str:
        """The Simple API root with require_auth's credentials embedded in it."""
        if not self.require_auth:
            return self.url
        user, password = (quote(p, safe="") for p in self.require_auth)
        return f"http://{user}:{password}@127.0.0.1:{self.port}/simple/"

    def project_url(self, project_name: str) -> str:
        """Absolute URL of a project's page."""
        return f"{self.url}{canonicalize_name(project_name)}/"

    def file_url(self, filename: str) -> str:
        """Absolute URL a file is served at on the main port."""
        return self.root_url + self.entry(filename).path.lstrip("/")

    def _link(self, entry: FileEntry) -> str:
        if self.url_style == "relative":
            return "../.." + entry.path
        if self.url_style == "absolute":
            return self.root_url.rstrip("/") + entry.path
        if self.url_style == "other-host":
            return self.other_root_url.rstrip("/") + entry.path
        raise ValueError(f"unknown url_style {self.url_style!r}")

    # ------------------------------------------------------------------ lifecycle

    def start(self, reactor: Any, port: int = 0, other_port: int = 0) -> defer.Deferred[FakeIndex]:
        """Listen on 127.0.0.1 (main + "other host" port); fires at once with self.

        Pass the old ports to come back on the same URLs after stop().
        """
        self._reactor = reactor
        site = _QuietSite(_Root(self))
        self._factory = WrappingFactory(site)
        main = reactor.listenTCP(port, self._factory, interface="127.0.0.1")
        other = reactor.listenTCP(other_port, self._factory, interface="127.0.0.1")
        self._ports = [main, other]
        self.port = main.getHost().port
        self.other_port = other.getHost().port
        return defer.succeed(self)

    def serve_in_memory(self, reactor: Any, port: int, other_port: int) -> IResource:
        """The resource an in-memory agent drives instead of a socket (see memory.py): it
        tells the main from the "other host" port by the port the agent was asked for, and the
        URLs name these ports. ``reactor`` runs the timers of slow and delayed answers."""
        self._reactor = reactor
        self.port, self.other_port = port, other_port
        return _Root(self)

    def stop(self) -> defer.Deferred[None]:
        """Stop listening, cancel timers and abort open connections (no dirty reactor)."""
        return defer.ensureDeferred(self._stop())

    async def _stop(self) -> None:
        for call in list(self._calls):
            if call.active():
                call.cancel()
        self._calls.clear()
        ports, self._ports = self._ports, []
        await defer.gatherResults([defer.maybeDeferred(p.stopListening) for p in ports])
        if self._factory is not None:
            for proto in list(self._factory.protocols):
                if proto.transport is not None:
                    proto.transport.abortConnection()
        # abortConnection reports connectionLost one reactor turn later; let it run.
        factory = self._factory
        await wait_until(lambda: not factory or not factory.protocols, timeout=5, interval=0.01,
                         what="the fake index's connections to close")

    # ------------------------------------------------------------------ request handling

    def _handle(self, request: Request) -> int:
        headers: dict[str, str] = {}
        for name, values in request.requestHeaders.getAllRawHeaders():
            headers[name.decode("latin-1").lower()] = ", ".join(v.decode("latin-1") for v in values)
        method = request.method.decode("ascii", "replace").upper()
        self.requests.append(
            RequestRecord(
                method=method,
                path=request.uri.decode("latin-1"),
                headers=headers,
                port=request.getHost().port,
            )
        )
        ex = _Exchange(self, request)
        # The "other host" is a file host (think CDN): it asks for no credentials, so a
        # client need not (and must not) send the index's credentials there.
        if self.require_auth is not None and request.getHost().port != self.other_port:
            user = request.getUser().decode("utf-8", "replace")
            password = request.getPassword().decode("utf-8", "replace")
            if (user, password) != self.require_auth:
                request.setHeader(b"WWW-Authenticate", b'Basic realm="fakeindex"')
                return self._simple(ex, 401, b"authentication required\n")
        if method not in ("GET", "HEAD"):
            request.setHeader(b"Allow", b"GET, HEAD")
            return self._simple(ex, 405, b"method not allowed\n")

        segments = [s.decode("utf-8", "replace") for s in request.postpath]
        if segments and segments[0] == "simple":
            if self.hang_pages:
                return NOT_DONE_YET
            if self.page_delay:
                ex.later(self.page_delay, self._page, ex, segments)
                return NOT_DONE_YET
            return self._page(ex, segments)
        raw = self.raw_files.get(request.path.decode("latin-1"))
        if raw is not None:
            return self._serve_bytes(ex, raw, "ok")
        if len(segments) == 3 and segments[0] == "files":
            if self.fail_files is not None:
                return self._simple(ex, self.fail_files, b"fake failure\n")
            return self._file(ex, segments[1], segments[2])
        return self._simple(ex, 404, b"not found\n")

    def _simple(self, ex: _Exchange, code: int, body: bytes, content_type: bytes = b"text/plain") -> int:
        """Answer with a complete small body."""
        request = ex.request
        request.setResponseCode(code)
        if code not in (204, 304):
            request.setHeader(b"Content-Type", content_type)
            request.setHeader(b"Content-Length", b"%d" % len(body))
            request.write(body)
        ex.finish()
        return NOT_DONE_YET

    def _redirect(self, ex: _Exchange, location: str) -> int:
        query = ex.request.uri.partition(b"?")[2]
        target = location.encode("utf-8") + (b"?" + query if query else b"")
        ex.request.setHeader(b"Location", target)
        return self._simple(ex, 301, b"moved\n")

    # -- pages

    def _page(self, ex: _Exchange, segments: list[str]) -> int:
        if ex.gone:
            return NOT_DONE_YET
        if self.fail_pages is not None:
            return self._simple(ex, self.fail_pages, b"fake failure\n")
        if segments == ["simple"]:
            return self._redirect(ex, "/simple/")
        if segments == ["simple", ""]:
            if "" in self.raw_pages:
                return self._simple(ex, 200, self.raw_pages[""][0], self.raw_pages[""][1].encode())
            return self._render_page(ex, None)
        if len(segments) in (2, 3) and (len(segments) == 2 or segments[2] == ""):
            name = segments[1]
            if not _PROJECT_NAME.match(name):
                return self._simple(ex, 404, b"not found\n")
            norm = canonicalize_name(name)
            if name != norm or len(segments) == 2:
                return self._redirect(ex, f"/simple/{norm}/")
            if norm in self.raw_pages:
                body, content_type = self.raw_pages[norm]
                return self._simple(ex, 200, body, content_type.encode())
            if norm not in self._projects:
                return self._simple(ex, 404, b"not found\n")
            return self._render_page(ex, self._projects[norm])
        return self._simple(ex, 404, b"not found\n")

    def _render_page(self, ex: _Exchange, project: _Project | None) -> int:
        request = ex.request
        # An unescaped "+" in ?format=...v1+json arrives as a space; take it as meant.
        fmt = request.args.get(b"format", [b""])[0].decode("utf-8", "replace").replace(" ", "+")
        accept = request.getHeader(b"accept")
        content_type = negotiate(accept.decode("latin-1") if accept else None, fmt)
        if project is None:
            body = self._index_json() if content_type == JSON_V1 else self._index_html()
        else:
            body = self._project_json(project) if content_type == JSON_V1 else self._project_html(project)
        etag = _etag(body)
        request.setHeader(b"ETag", etag.encode())
        request.setHeader(b"Vary", b"Accept, Accept-Encoding")
        request.setHeader(b"Cache-Control", b"max-age=600, public")
        request.setHeader(b"X-PyPI-Last-Serial", str(self.serial).encode())
        inm = request.getHeader(b"if-none-match")
        if _etag_matches(inm.decode("latin-1") if inm else None, etag):
            return self._simple(ex, 304, b"")
        ct = content_type + ("; charset=utf-8" if content_type == TEXT_HTML else "")
        return self._simple(ex, 200, body, ct.encode())

    def _index_json(self) -> bytes:
        doc = {
            "meta": {"api-version": "1.1", "_last-serial": self.serial},
            "projects": [
                {"name": p.display_name, "_last-serial": self.serial}
                for _, p in sorted(self._projects.items())
            ],
        }
        return json.dumps(doc, indent=1).encode()

    def _index_html(self) -> bytes:
        if self.url_style == "relative":
            base = ""
        else:
            base = self.url
        links = "\n".join(
            f'    <a href="{html.escape(base + norm)}/">{html.escape(p.display_name)}</a><br/>'
            for norm, p in sorted(self._projects.items())
        )
        return (
            "<!DOCTYPE html>\n<html>\n  <head>\n"
            '    <meta name="pypi:repository-version" content="1.1">\n'
            "    <title>Simple index</title>\n  </head>\n  <body>\n"
            f"{links}\n  </body>\n</html>\n"
        ).encode()

    @staticmethod
    def _versions(files: Iterable[FileEntry]) -> list[str]:
        versions: dict[str, Version] = {}
        for entry in files:
            try:
                if entry.filename.endswith(".whl"):
                    version = parse_wheel_filename(entry.filename)[1]
                else:
                    version = parse_sdist_filename(entry.filename)[1]
            except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
                continue
            versions.setdefault(canonicalize_version(version, strip_trailing_zero=False), version)
        return [k for k, _ in sorted(versions.items(), key=lambda kv: kv[1])]

    def _project_json(self, project: _Project) -> bytes:
        files = []
        for entry in project.files.values():
            core: dict[str, str] | bool = (
                {"sha256": entry.built.metadata_sha256} if entry.metadata else False
            )
            item: dict[str, Any] = {
                "filename": entry.filename,
                "url": self._link(entry),
                "hashes": {"sha256": entry.built.sha256},
                "requires-python": entry.requires_python,
                "yanked": entry.yanked,
                "core-metadata": core,  # PEP 714: the old key only in HTML
                "gpg-sig": entry.gpg_sig,
                "size": entry.built.size,
            }
            if entry.upload_time is not None:
                item["upload-time"] = entry.upload_time
            if entry.provenance is not None:
                item["provenance"] = entry.provenance
            item.update(entry.extra)
            files.append(item)
        quarantined = project.status == "quarantined"
        doc: dict[str, Any] = {
            "meta": {"api-version": self.api_version, "_last-serial": self.serial},
            "name": canonicalize_name(project.display_name),
            # PEP 792: a quarantined project offers no files (its files stay served, so a
            # test can see a proxy refuse what it cached before).
            "versions": [] if quarantined else self._versions(project.files.values()),
            "files": [] if quarantined else files,
        }
        if project.status is not None:
            doc["project-status"] = {"status": project.status}
            if project.status_reason is not None:
                doc["project-status"]["reason"] = project.status_reason
        return json.dumps(doc, indent=1).encode()

    def _project_html(self, project: _Project) -> bytes:
        norm = canonicalize_name(project.display_name)
        anchors = []
        status = ""
        if project.status is not None:
            status = f'    <meta name="pypi:project-status" content="{html.escape(project.status)}">\n'
            if project.status_reason is not None:
                status += f'    <meta name="pypi:project-status-reason" content="{html.escape(project.status_reason)}">\n'
        for entry in [] if project.status == "quarantined" else project.files.values():
            attrs = [f'href="{html.escape(self._link(entry))}#sha256={entry.built.sha256}"']
            if entry.requires_python:
                attrs.append(f'data-requires-python="{html.escape(entry.requires_python)}"')
            if entry.yanked is not False:
                reason = "" if entry.yanked is True else str(entry.yanked)
                attrs.append(f'data-yanked="{html.escape(reason)}"')
            if entry.metadata:
                digest = f"sha256={entry.built.metadata_sha256}"
                attrs.append(f'data-dist-info-metadata="{digest}"')
                attrs.append(f'data-core-metadata="{digest}"')
            attrs.append(f'data-gpg-sig="{"true" if entry.gpg_sig else "false"}"')
            if entry.provenance is not None:
                attrs.append(f'data-provenance="{html.escape(entry.provenance)}"')
            anchors.append(f"    <a {' '.join(attrs)}>{html.escape(entry.filename)}</a><br/>")
        return (
            "<!DOCTYPE html>\n<html>\n  <head>\n"
            f'    <meta name="pypi:repository-version" content="{self.api_version}">\n'
            + status
            + f"    <title>Links for {html.escape(norm)}</title>\n  </head>\n  <body>\n"
            f"    <h1>Links for {html.escape(norm)}</h1>\n"
            + "\n".join(anchors)
            + "\n  </body>\n</html>\n"
        ).encode()

    # -- files

    def _file(self, ex: _Exchange, project_name: str, filename: str) -> int:
        project = self._projects.get(canonicalize_name(project_name))
        if project is None:
            return self._simple(ex, 404, b"not found\n")
        entry = project.files.get(filename)
        if entry is not None:
            return self._serve_file(ex, entry)
        for suffix in (".metadata", ".asc"):
            if filename.endswith(suffix):
                entry = project.files.get(filename[: -len(suffix)])
                if entry is None:
                    break
                if suffix == ".metadata" and entry.metadata:
                    return self._serve_bytes(ex, entry.built.metadata, "ok")
                if suffix == ".asc" and entry.gpg_sig:
                    sig = (
                        "-----BEGIN PGP SIGNATURE-----\n\n"
                        + base64.b64encode(hashlib.sha512(entry.built.data).digest()).decode()
                        + "\n-----END PGP SIGNATURE-----\n"
                    ).encode()
                    return self._serve_bytes(ex, sig, "ok")
        return self._simple(ex, 404, b"not found\n")

    def _serve_file(self, ex: _Exchange, entry: FileEntry) -> int:
        if entry.behaviour == "redirect" and ex.request.getHost().port != self.other_port:
            # Like an index whose files live on a CDN: the same path on the other host.
            return self._redirect(ex, self.other_root_url.rstrip("/") + entry.path)
        if entry.behaviour in ("500", "404"):
            return self._simple(ex, int(entry.behaviour), b"fake failure\n")
        data = entry.built.data
        if entry.behaviour == "wrong-hash" and data:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
        return self._serve_bytes(ex, data, entry.behaviour, etag=f'"{entry.built.sha256[:32]}"')

    def _serve_bytes(self, ex: _Exchange, data: bytes, behaviour: str, etag: str | None = None) -> int:
        request = ex.request
        etag = etag or _etag(data)
        request.setHeader(b"ETag", etag.encode())
        request.setHeader(b"Accept-Ranges", b"bytes")
        request.setHeader(b"Content-Type", b"application/octet-stream")
        inm = request.getHeader(b"if-none-match")
        if _etag_matches(inm.decode("latin-1") if inm else None, etag):
            return self._simple(ex, 304, b"")
        body = data
        range_header = request.getHeader(b"range")
        if_range = request.getHeader(b"if-range")
        if range_header and (if_range is None or if_range.decode("latin-1").strip() == etag):
            span = _parse_range(range_header.decode("latin-1"), len(data))
            if span is False:
                request.setHeader(b"Content-Range", b"bytes */%d" % len(data))
                return self._simple(ex, 416, b"range not satisfiable\n")
            if span is not None:
                start, end = span
                body = data[start : end + 1]
                request.setResponseCode(206)
                request.setHeader(b"Content-Range", b"bytes %d-%d/%d" % (start, end, len(data)))
        if behaviour == "gzip-label":
            request.setHeader(b"Content-Encoding", b"gzip")
        accepted = (request.getHeader(b"accept-encoding") or b"").lower()
        if behaviour == "gzip-if-asked" and b"gzip" in accepted and request.code == 200:
            body = gzip.compress(body, mtime=0)
            request.setHeader(b"Content-Encoding", b"gzip")
        request.setHeader(b"Content-Length", b"%d" % len(body))
        if request.method == b"HEAD":
            request.write(b"")
            if behaviour != "hang":
                ex.finish()
            return NOT_DONE_YET

        # Chunk by the whole file's size: like a slow link, a small range comes quickly.
        chunks = max(1, self.slow_chunks)
        step = max(1, -(-len(data) // chunks))
        if behaviour == "slow":
            self._send_slowly(ex, body, 0, step)
        elif behaviour == "die":
            request.write(body[: len(body) // 2])
            self._abort_when_flushed(ex, self.die_flush_timeout)
        elif behaviour == "hang":
            request.write(body[:step] if len(body) > 1 else b"")
        else:
            request.write(body)
            ex.finish()
        return NOT_DONE_YET

    def _send_slowly(self, ex: _Exchange, body: bytes, offset: int, step: int) -> None:
        ex.request.write(body[offset : offset + step])
        offset += step
        if offset >= len(body):
            ex.finish()
        else:
            ex.later(self.slow_delay, self._send_slowly, ex, body, offset, step)

    def _abort_when_flushed(self, ex: _Exchange, budget: float) -> None:
        """Abort once the half body has left our buffers (so the client really gets ~half)."""
        transport = ex.request.transport
        pending = len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
        pending += getattr(transport, "_tempDataLen", 0)
        if pending <= 0 or budget <= 0:
            # A little grace so the kernel hands the bytes over before the reset.
            ex.later(0.02, ex.abort)
        else:
            ex.later(0.01, self._abort_when_flushed, ex, budget - 0.01)


@asynccontextmanager
async def serving(upstream: Any) -> AsyncIterator[Any]:
    """A hand-made upstream resource served on 127.0.0.1, its ``url`` set to the Simple API root."""
    from twisted.internet import reactor

    site = Site(upstream)
    site.noisy = False
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    upstream.url = f"http://127.0.0.1:{port.getHost().port}/simple/"
    try:
        yield upstream
    finally:
        await port.stopListening()
