"""The guard in front of the caches: every page, file and ``.metadata`` of an upstream passes it."""

# -*- test-case-name: tests.test_guard -*-

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime
from twisted.python.components import proxyForInterface

from .. import simple
from ..cache import CachedPage, FileWithheld, ProjectNotFound, cache_key
from ..cache.download import ToThread
from ..interfaces import IFiles, IFileSource, IProjectPages
from ..stats import Stats
from .policy import Applied, Guard, Rules

# Guarded pages remembered (as the page cache remembers its own).
MEMORY_PAGES = 512
# Pages with more files than this are guarded in a thread: parsing thousands of file names
# must not stall the reactor.
INLINE_FILES = 200


@dataclass(frozen=True)
class _Guarded:
    """One upstream page as offered, and what it was made from (so we know when it is stale)."""

    source: CachedPage
    page: simple.ProjectPage
    rules: Rules
    valid_until: float
    offered: CachedPage
    keys: frozenset[str]  # the cache keys of the files offered


class Clearance:
    """Which cached files may be served by their key alone: those the latest guarded page of
    their project offered, under the rules in force. Shared by the pages and the files tier."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard
        self.pages: OrderedDict[str, _Guarded] = OrderedDict()
        self._owner: dict[str, str] = {}  # cache key -> project

    def cleared(self, key: str) -> bool:
        name = self._owner.get(key)
        known = self.pages.get(name) if name is not None else None
        return known is not None and key in known.keys and known.rules is self._guard.rules()

    def remember(self, name: str, guarded: _Guarded) -> None:
        self._drop(name)
        self.pages[name] = guarded
        for key in guarded.keys:
            self._owner[key] = name
        while len(self.pages) > MEMORY_PAGES:
            self._drop(next(iter(self.pages)))

    def _drop(self, name: str) -> None:
        old = self.pages.pop(name, None)
        if old is not None:
            for key in old.keys:
                if self._owner.get(key) == name:
                    del self._owner[key]


def _apply(guard: Guard, page: simple.ProjectPage, rules: Rules, now: float) -> tuple[Applied, frozenset[str]]:
    applied = guard.apply(page, rules, now)
    return applied, frozenset(cache_key(entry) for entry in applied.page.files)


class GuardedPages(proxyForInterface(IProjectPages, "_pages")):  # type: ignore[misc]
    """The page cache, as the guard lets clients see it.

    A page is guarded again when the upstream's page changes, when the rules change, and
    when a held file comes of age, so pages stay cacheable for the TTL and no more.
    """

    def __init__(self, pages: IProjectPages, guard: Guard, clearance: Clearance, clock: IReactorTime,
                 stats: Stats, to_thread: ToThread) -> None:
        super().__init__(pages)
        self._guard = guard
        self._clock = clock
        self._stats = stats
        self._to_thread = to_thread
        self._clearance = clearance
        self._guarded = clearance.pages

    def fresh(self, name: str) -> CachedPage | None:
        # Only what is already guarded: guarding a big page is no work for the warm path.
        if self._guard.project_refusal(name) is not None:
            return None
        cached = self._pages.fresh(name)
        if cached is None:
            return None
        known = self._guarded.get(name)
        if known is not None and self._still(known, cached):
            return known.offered
        return None

    async def project(self, name: str) -> CachedPage:
        refusal = self._guard.project_refusal(name)
        if refusal is not None:
            self._stats.incr("refused_projects")
            raise ProjectNotFound(name, refusal)
        return await self._offer(name, await self._pages.project(name))

    async def cached(self, name: str) -> CachedPage | None:
        if self._guard.project_refusal(name) is not None:
            return None  # the caller asks project() next, which says why
        cached = await self._pages.cached(name)
        return None if cached is None else await self._offer(name, cached)

    def _still(self, known: _Guarded, cached: CachedPage) -> bool:
        return (
            known.source is cached
            and known.page is cached.page
            and known.rules is self._guard.rules()
            and self._clock.seconds() < known.valid_until
        )

    async def _offer(self, name: str, cached: CachedPage) -> CachedPage:
        known = self._guarded.get(name)
        if known is not None and self._still(known, cached):
            self._guarded.move_to_end(name)
            return known.offered
        rules = self._guard.rules()  # here, not in the thread: it may re-read a rules file
        page = cached.page
        now = self._clock.seconds()
        if len(page.files) > INLINE_FILES:
            applied, keys = await self._to_thread(_apply, self._guard, page, rules, now)
        else:
            applied, keys = _apply(self._guard, page, rules, now)
        if not applied.withheld and applied.closed is None:
            offered = cached
        else:
            offered = CachedPage(
                page=applied.page,
                source=cached.source,
                fetched_at=cached.fetched_at,
                etag=cached.etag,
                last_modified=cached.last_modified,
                withheld=applied.withheld,
                closed=applied.closed,
            )
        self._clearance.remember(name, _Guarded(cached, page, rules, applied.valid_until, offered, keys))
        return offered


class GuardedFiles(proxyForInterface(IFiles, "_files")):  # type: ignore[misc]
    """The file cache, serving no file the guard refuses.

    A cache key alone does not say whose file it is, so ``cached`` finds only files that
    the latest guarded page of their project offered; any other is then looked up in its
    page, which answers a withheld file with its reason (a blocked file cached before its
    rule included). The checks below are for callers that come with an entry of their own.
    """

    def __init__(self, files: IFiles, guard: Guard, clearance: Clearance) -> None:
        super().__init__(files)
        self._guard = guard
        self._clearance = clearance

    def cached(self, key: str) -> IFileSource | None:
        return self._files.cached(key) if self._clearance.cleared(key) else None

    def _check(self, entry: simple.FileEntry) -> None:
        refusal = self._guard.refusal(entry)
        if refusal is not None:
            raise FileWithheld(refusal)

    async def fetch(self, key: str, entry: simple.FileEntry) -> IFileSource:
        self._check(entry)
        return await self._files.fetch(key, entry)

    def download(self, key: str, entry: simple.FileEntry):  # type: ignore[no-untyped-def]
        self._check(entry)
        return self._files.download(key, entry)

    async def upstream_range(self, entry: simple.FileEntry, spec: str):  # type: ignore[no-untyped-def]
        self._check(entry)
        return await self._files.upstream_range(entry, spec)

    async def metadata(self, key: str, entry: simple.FileEntry) -> bytes | None:
        self._check(entry)
        return await self._files.metadata(key, entry)
