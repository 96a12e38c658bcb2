"""The private tier in front of the caches: a private name is served from the store alone."""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.components import proxyForInterface

from .. import simple
from ..cache import CachedFile, CachedPage, ProjectNotFound
from ..interfaces import IFiles, IFileSource, IProjectPages
from ..upstream import UpstreamError
from .rules import in_namespace
from .store import PRIVATE_URL, PrivateStore, StoredFile

log = Logger()


class PrivatePages(proxyForInterface(IProjectPages, "_pages")):  # type: ignore[misc]
    """The page cache, with private projects answered from the store alone.

    A name with any private file never shows the upstream's files (dependency confusion),
    and a name in a private namespace is never even asked of an upstream. Anything else is
    the page cache's own business.
    """

    def __init__(
        self, pages: IProjectPages, private: PrivateStore, clock: IReactorTime, namespaces: tuple[str, ...] = ()
    ) -> None:
        super().__init__(pages)
        self._private = private
        self._clock = clock
        self._namespaces = namespaces
        self._rendered: dict[str, tuple[tuple[StoredFile, ...], CachedPage]] = {}

    def _private_page(self, name: str) -> CachedPage | None:
        if name not in self._private.names():
            return None
        files = self._private.project(name)
        if not files:
            return None
        known = self._rendered.get(name)
        if known is not None and known[0] is files:
            return known[1]
        page = simple.ProjectPage(name=name, files=tuple(f.entry() for f in files))
        cached = CachedPage(page=page, source="private", fetched_at=self._clock.seconds())
        self._rendered[name] = (files, cached)
        return cached

    def fresh(self, name: str) -> CachedPage | None:
        page = self._private_page(name)
        if page is not None or in_namespace(self._namespaces, name):
            return page
        return self._pages.fresh(name)

    async def project(self, name: str) -> CachedPage:
        page = self._private_page(name)
        if page is not None:
            return page
        if in_namespace(self._namespaces, name):
            raise ProjectNotFound(name)
        return await self._pages.project(name)

    async def cached(self, name: str) -> CachedPage | None:
        page = self._private_page(name)
        if page is not None or in_namespace(self._namespaces, name):
            return page
        return await self._pages.cached(name)

    def private_names(self) -> tuple[str, ...]:
        return self._private.names()


class PrivateFiles(proxyForInterface(IFiles, "_files")):  # type: ignore[misc]
    """The file cache, with private files served from the store and never fetched."""

    def __init__(self, files: IFiles, private: PrivateStore) -> None:
        super().__init__(files)
        self._private = private

    def cached(self, key: str) -> CachedFile | None:
        stored = self._private.by_key(key)
        if stored is not None:
            return CachedFile(stored.path, stored.size)
        return self._files.cached(key)

    async def fetch(self, key: str, entry: simple.FileEntry) -> IFileSource:
        found = self.cached(key)
        if found is not None:
            return found
        if entry.url.startswith(PRIVATE_URL):
            raise UpstreamError(f"{entry.filename} is missing from the private store")
        return await self._files.fetch(key, entry)

    async def metadata(self, key: str, entry: simple.FileEntry) -> bytes | None:
        stored = self._private.by_key(key)
        if stored is not None:
            return stored.metadata
        return await self._files.metadata(key, entry)

    async def metadata_at_hand(self, key: str) -> bytes | None:
        stored = self._private.by_key(key)
        if stored is not None:
            return stored.metadata
        return await self._files.metadata_at_hand(key)
