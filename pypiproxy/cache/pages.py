"""Index page cache: our TTL, revalidation upstream, stale serving, pre-rendered bodies."""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Sequence

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from .. import simple
from ..config import UpstreamIndex
from ..interfaces import IProjectPages
from ..stats import Stats
from ..upstream import ProjectMissing, UpstreamClient, UpstreamError, fetch_project
from .download import ToThread
from .rendered import RenderedPage, render_page
from .store import FileStore

log = Logger()

# A page that an upstream said does not exist is believed for this long (or the TTL if shorter).
NOT_FOUND_TTL = 60.0
# After an upstream failure, stale pages are served this long before asking again.
RETRY_BACKOFF = 30.0
MEMORY_PAGES = 512
# Names an upstream said do not exist, remembered at most (the oldest go first): a client
# asking for a million made-up names must not grow memory.
NOT_FOUND_MAX = 10_000


class ProjectNotFound(Exception):
    """No upstream (and no cache) knows this project; or a tier in front refuses it, saying why."""

    def __init__(self, name: str, reason: str | None = None) -> None:
        super().__init__(name)
        self.reason = reason  # None: simply unknown


@dataclass(frozen=True)
class Withheld:
    """A file the index lists that a tier in front does not offer: the answer its URL gets."""

    entry: simple.FileEntry
    status: int  # 404 (not yet, not here) or 403 (never)
    reason: str
    counter: str  # the Stats counter such answers add to


class FileWithheld(Exception):
    """A file a tier in front will not serve; ``withheld`` says how to answer."""

    def __init__(self, withheld: Withheld) -> None:
        super().__init__(withheld.reason)
        self.withheld = withheld


@dataclass
class CachedPage:
    """One project's page as one upstream gave it, with what we need to revalidate it."""

    page: simple.ProjectPage
    source: str
    fetched_at: float
    etag: str | None = None
    last_modified: str | None = None
    retry_at: float = 0.0
    # By file name: the index's files a tier in front left out of ``page``, and why.
    withheld: Mapping[str, Withheld] = field(default_factory=dict)
    # Why no file of this project is served at all (PEP 792 quarantine), listed or not.
    closed: str | None = None
    _rendered: tuple[int, RenderedPage] | None = field(default=None, repr=False)

    def rendered(
        self,
        file_url: simple.FileURL,
        decorate: Callable[[simple.FileEntry], simple.FileEntry] | None = None,
        generation: int = 0,
    ) -> RenderedPage:
        """The page's bodies, each entry passed through ``decorate`` first; rendered anew
        when ``generation`` (what ``decorate`` knows) changes."""
        if self._rendered is None or self._rendered[0] != generation:
            # Cheap: the decorating and rendering happen when a form is first asked for.
            self._rendered = (generation, render_page(self.page, file_url, decorate))
        return self._rendered[1]

    def to_storage(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "fetched_at": self.fetched_at,
            "etag": self.etag,
            "last_modified": self.last_modified,
            "page": simple.project_to_json(self.page),
        }

    @classmethod
    def from_storage(cls, data: dict[str, Any]) -> "CachedPage":
        return cls(
            page=simple.project_from_json(data["page"], "", data["page"]["name"]),
            source=data["source"],
            fetched_at=float(data["fetched_at"]),
            etag=data.get("etag"),
            last_modified=data.get("last_modified"),
        )


class Coalescer:
    """At most one run of an operation per key; everyone asking meanwhile shares its result."""

    def __init__(self) -> None:
        self._running: dict[str, list[defer.Deferred]] = {}

    def running(self, key: str) -> bool:
        return key in self._running

    def run(self, key: str, operation: Callable[[], Awaitable]) -> defer.Deferred:
        waiter: defer.Deferred = defer.Deferred()
        if key in self._running:
            self._running[key].append(waiter)
            return waiter
        self._running[key] = [waiter]

        def finish(result):
            for each in self._running.pop(key):
                each.callback(result)

        defer.ensureDeferred(operation()).addBoth(finish)
        return waiter


@implementer(IProjectPages)
class PageCache:
    """Project pages from the upstreams, fresh for ``ttl`` seconds, stale when they fail."""

    def __init__(
        self,
        directory: Path,
        client: UpstreamClient | None,
        upstreams: Sequence[UpstreamIndex],
        ttl: float,
        clock: IReactorTime,
        stats: Stats,
        store: FileStore,
        to_thread: ToThread,
    ) -> None:
        self._store = store  # writes files atomically, temporaries in its own tmp/
        self._to_thread = to_thread
        self._directory = directory
        self._client = client
        self._upstreams = tuple(upstreams) if client is not None else ()
        self._ttl = ttl
        self._clock = clock
        self._stats = stats
        self._memory: OrderedDict[str, CachedPage] = OrderedDict()
        self._not_found: dict[str, float] = {}
        self._fetches = Coalescer()
        self._writing: dict[str, defer.Deferred[None]] = {}  # the last disk write of each page
        directory.mkdir(parents=True, exist_ok=True)

    # Project pages -------------------------------------------------------------------

    def fresh(self, name: str) -> CachedPage | None:
        """The page if we hold it in memory: the warm path, answered without a Deferred. An
        expired one is answered too, while one background request revalidates it."""
        cached = self._memory.get(name)
        if cached is not None and self._upstreams and not self._fresh(cached, self._clock.seconds()):
            self._revalidate(name, cached)
        return cached

    async def project(self, name: str) -> CachedPage:
        """The page for a normalised project name; raises ProjectNotFound or UpstreamError.
        Only a page we hold nothing of waits for the upstream."""
        now = self._clock.seconds()
        cached = self._memory.get(name)
        if cached is None or not self._fresh(cached, now):
            # Another process sharing the cache dir may have refreshed it meanwhile.
            cached = await self._load(name) or cached
        if cached is not None:
            self._memory.move_to_end(name)
            if self._upstreams and not self._fresh(cached, now):
                self._revalidate(name, cached)
            return cached
        if not self._upstreams:
            raise ProjectNotFound(name)
        if name in self._not_found:
            if self._not_found[name] > now:
                raise ProjectNotFound(name)
            del self._not_found[name]
        return await self._fetches.run(name, lambda: self._refresh(name, None))

    def _revalidate(self, name: str, cached: CachedPage) -> None:
        """Stale-while-revalidate: one background request per page, shared by every client
        meanwhile; a failure keeps the page we have (``_refresh`` says so in the log). Its
        forms are rendered anew once, as it starts: METADATA another process extracted shows
        from then on."""
        self._stats.incr("stale_while_revalidate")
        if self._fetches.running(name):
            return
        cached._rendered = None
        self._fetches.run(name, lambda: self._refresh(name, cached)).addErrback(self._revalidation_failed, name)

    def _revalidation_failed(self, failure: Failure, name: str) -> None:
        if failure.check(ProjectNotFound):
            return  # gone upstream: forgotten, and the next request is a 404
        log.failure("revalidating the page of {project} failed", failure, project=name)

    async def cached(self, name: str) -> CachedPage | None:
        """What we hold for a project, however old, without asking anyone."""
        return self._memory.get(name) or await self._load(name)

    def private_names(self) -> tuple[str, ...]:
        return ()

    async def held_names(self) -> tuple[str, ...]:
        """The names whose pages we hold: on disk (listed in a thread: there may be many), or
        still on their way there."""
        writing = set(self._writing)  # taken first: one may be written while we list
        on_disk = await self._to_thread(self._held_names)
        return tuple(sorted(writing.union(on_disk))) if writing else on_disk

    def _held_names(self) -> tuple[str, ...]:  # in a thread
        try:
            found = [n[:-5] for n in os.listdir(self._directory) if n.endswith(".json")]
        except OSError:
            return ()
        return tuple(sorted(n for n in found if simple.NORMALISED_NAME.match(n)))

    def _fresh(self, cached: CachedPage, now: float) -> bool:
        return now < cached.fetched_at + self._ttl or now < cached.retry_at

    async def _refresh(self, name: str, cached: CachedPage | None) -> CachedPage:
        assert self._client is not None
        for upstream in self._upstreams:
            conditional = cached if cached and cached.source == upstream.url else None
            self._stats.incr("upstream_page_fetches")
            try:
                fetched = await fetch_project(
                    self._client,
                    upstream.url,
                    name,
                    etag=conditional.etag if conditional else None,
                    last_modified=conditional.last_modified if conditional else None,
                    to_thread=self._to_thread,
                )
            except ProjectMissing:
                continue
            except UpstreamError as e:
                # A failing upstream that comes first may well have the project: answering
                # from a later one would let another index's files stand in (dependency
                # confusion), so we serve what we had, or fail.
                self._stats.incr("upstream_errors")
                if cached is None:
                    raise
                log.warn("serving stale page for {project}: {error}", project=name, error=str(e))
                self._stats.incr("stale_pages_served")
                cached.retry_at = self._clock.seconds() + min(self._ttl, RETRY_BACKOFF)
                return cached
            if fetched.page is None:
                assert conditional is not None
                self._stats.incr("upstream_page_not_modified")
                conditional.fetched_at = self._clock.seconds()
                conditional.retry_at = 0.0
                self._save(name, conditional, self._touch)
                return conditional
            fresh = CachedPage(
                page=fetched.page,
                source=upstream.url,
                fetched_at=self._clock.seconds(),
                etag=fetched.etag,
                last_modified=fetched.last_modified,
            )
            self._save(name, fresh)
            return fresh
        self._not_found.pop(name, None)  # re-inserted last: the dict's order is their age
        self._not_found[name] = self._clock.seconds() + min(self._ttl, NOT_FOUND_TTL)
        while len(self._not_found) > NOT_FOUND_MAX:
            del self._not_found[next(iter(self._not_found))]
        self._forget(name)
        raise ProjectNotFound(name)

    # Storage -------------------------------------------------------------------------

    def _path(self, name: str) -> Path:
        return self._directory / f"{name}.json"

    async def _load(self, name: str) -> CachedPage | None:
        """The stored page, read and parsed in a thread (a page may hold thousands of files)."""
        path = self._path(name)
        if not path.exists():
            return None  # a cold page: one stat here rather than a trip to a thread and back
        cached = await self._to_thread(self._read, path)
        if cached is not None:
            self._remember(name, cached)
        return cached

    @staticmethod
    def _read(path: Path) -> CachedPage | None:  # in a thread
        try:
            with open(path, "rb") as stored:
                cached = CachedPage.from_storage(json.loads(stored.read()))
                # A revalidation that changed nothing set only the file's time (``_touch``).
                cached.fetched_at = max(cached.fetched_at, os.fstat(stored.fileno()).st_mtime)
            return cached
        except (OSError, ValueError, KeyError, TypeError):  # IndexFormatError is a ValueError
            return None

    def _write(self, path: Path, cached: CachedPage) -> None:  # in a thread
        self._store.write(path, json.dumps(cached.to_storage(), separators=(",", ":")).encode())
        os.utime(path, (cached.fetched_at, cached.fetched_at))  # the file's time is its freshness

    def _touch(self, path: Path, cached: CachedPage) -> None:  # in a thread
        """A 304: only the page's freshness changed, which is the file's time. One system call
        however big the page (a 10,000-file page is 3.5 MB of JSON to write again)."""
        try:
            os.utime(path, (cached.fetched_at, cached.fetched_at))
        except FileNotFoundError:
            self._write(path, cached)  # its first write failed, or it was removed since

    def _save(
        self, name: str, cached: CachedPage, store: Callable[[Path, CachedPage], None] | None = None
    ) -> None:
        """Held in memory at once and written to disk (by ``store``: the whole page unless
        told) behind the answer: no client waits for the disk (0.6 ms of a cold page's 4.4 ms
        here). Writes of one page keep their order."""
        self._remember(name, cached)
        path = self._path(name)

        def write(_: object = None) -> defer.Deferred[None]:
            return self._to_thread(store or self._write, path, cached)

        def failed(failure: Failure) -> None:
            if failure.check(OSError):
                # A full disk must not stop us answering: the page is served from memory.
                log.warn("could not store the page of {project}: {error}", project=name, error=str(failure.value))
            else:
                log.failure("storing the page of {project} broke", failure, project=name)

        def written(_: object) -> None:
            if self._writing.get(name) is writing:
                del self._writing[name]

        # A Deferred of its own for each write, after the one before: the entry is dropped by
        # the write that is the last one when it ends, not by an earlier one of the same chain.
        before = self._writing.get(name)
        if before is None:
            writing = write()
        else:
            writing = defer.Deferred()
            before.chainDeferred(writing)
            writing.addCallback(write)
        writing.addErrback(failed).addCallback(written)
        self._writing[name] = writing

    def _remember(self, name: str, cached: CachedPage) -> None:
        self._memory[name] = cached
        self._memory.move_to_end(name)
        while len(self._memory) > MEMORY_PAGES:
            self._memory.popitem(last=False)

    def _forget(self, name: str) -> None:
        self._memory.pop(name, None)
        writing = self._writing.get(name)
        if writing is not None:  # removed once it is there, not before
            writing.addCallback(lambda _: self._unlink(name))
        else:
            self._unlink(name)

    def _unlink(self, name: str) -> None:
        try:
            self._path(name).unlink()
        except FileNotFoundError:
            pass
