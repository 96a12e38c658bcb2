"""The file cache: answers "where do I read this file from", the store or its one download."""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from ..interfaces import IFiles, IFileSource, ISourceObserver
from ..simple import FileEntry
from ..stats import Stats
from ..upstream import UpstreamClient, UpstreamError, UpstreamResponse
from .download import Download, ToThread
from .eviction import LRUBudget
from .metadata import MetadataCache
from .store import FileStore

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)\Z")
# Bytes of downloads kept in memory once on disk, so readers a little behind (paused by
# their socket for a moment) catch up from memory rather than from the file; shared by
# the downloads in progress, so many at once do not add up.
RETAIN = 8 * 1024 * 1024
# How long a downloaded wheel's METADATA waits for the downloads in progress to end before it
# is extracted all the same: on a busy cache they may never all end.
EXTRACT_DELAY = 10.0

log = Logger()


class NotCached(UpstreamError):
    """Offline (or no upstream), and the file is not in the cache."""

    status = 404


@implementer(IFileSource)
@dataclass
class CachedFile:
    """A complete, verified file: everything is available at once."""

    path: Path
    length: int

    def open(self) -> BinaryIO:
        return open(self.path, "rb")

    @property
    def written(self) -> int:
        return self.length

    def available(self) -> int:
        return self.length

    def recent(self, offset: int, end: int) -> bytes | None:
        return None

    def finished(self) -> bool:
        return True

    def failed(self) -> bool:
        return False

    def subscribe(self, observer: ISourceObserver) -> None:
        pass

    def unsubscribe(self, observer: ISourceObserver) -> None:
        pass


@implementer(IFiles)
class FileCache:
    """Answers "where do I read this file from": the store, or the one download of it."""

    def __init__(
        self,
        store: FileStore,
        client: UpstreamClient | None,
        stats: Stats,
        metadata: MetadataCache,
        to_thread: ToThread,
        clock: IReactorTime,
        budget: LRUBudget | None = None,
    ) -> None:
        self.store = store
        self._client = client
        self._stats = stats
        self._metadata = metadata
        self._to_thread = to_thread
        self._clock = clock
        self._budget = budget  # told of every use
        self._downloads: dict[str, Download] = {}
        # (key, when) of wheels whose METADATA is to be copied beside them once no download runs.
        self._to_extract: deque[tuple[str, float]] = deque()
        self._extracting = False
        self._extract_timer: IDelayedCall | None = None

    @property
    def metadata_generation(self) -> int:
        return self._metadata.generation

    def local_metadata(self, key: str) -> str | None:
        return self._metadata.local(key)

    def _retain_each(self) -> int:
        return RETAIN // max(1, len(self._downloads))

    def cached(self, key: str) -> CachedFile | None:
        size = self.store.size(key)
        if size is None:
            return None
        if self._budget is not None:
            self._budget.used(key, size)
        return CachedFile(self.store.path(key), size)

    async def fetch(self, key: str, entry: FileEntry) -> IFileSource:
        """The file from the cache, or a download of it (joined if one is running)."""
        found = self.cached(key)
        if found is not None:
            self._stats.incr("cache_hits")
            return found
        return await self.download(key, entry).when_started()

    def download(self, key: str, entry: FileEntry) -> Download:
        """The one download of a file: started now, or the one already running."""
        download = self._downloads.get(key)
        if download is not None:
            self._stats.incr("download_joins")
            return download
        if self._client is None:
            raise NotCached(f"{entry.filename} is not cached, and this server asks no upstream")
        self._stats.incr("cache_misses")
        download = self._downloads[key] = Download(
            key, entry, self.store, self._stats, self._retain_each, self._to_thread, self._clock
        )
        finished = defer.ensureDeferred(download.run(self._client))
        finished.addBoth(self._download_ended, key)
        if self._budget is not None:
            budget = self._budget
            download.when_done().addCallback(lambda _: budget.used(key, download.written)).addErrback(
                lambda _: None
            )
        if entry.filename.endswith(".whl") and not entry.has_metadata:
            download.when_done().addCallback(self._extract_later, key).addErrback(lambda _: None)
        return download

    def _extract_later(self, _: object, key: str) -> None:
        self._to_extract.append((key, self._clock.seconds()))
        self._extract_next()

    def _download_ended(self, result: object, key: str) -> object:
        self._downloads.pop(key, None)
        self._extract_next()
        return result

    def _extract_next(self) -> None:
        """Copy the METADATA of the wheels downloaded meanwhile beside them, one at a time,
        while no download runs: it is CPU work (a zip directory read in Python) that a cold
        install's downloads would otherwise wait for; a client asking for a ``.metadata``
        before gets it extracted at once (``metadata``). None waits longer than EXTRACT_DELAY."""
        if self._extracting or not self._to_extract:
            return
        key, since = self._to_extract[0]
        waited = self._clock.seconds() - since
        if self._downloads and waited < EXTRACT_DELAY:
            if self._extract_timer is None or not self._extract_timer.active():
                self._extract_timer = self._clock.callLater(EXTRACT_DELAY - waited, self._extract_next)
            return
        self._to_extract.popleft()
        if self._metadata.local(key) is not None:
            self._extract_next()  # asked for meanwhile
            return
        self._extracting = True
        extracted = defer.ensureDeferred(self._metadata.extract(key))
        extracted.addCallback(lambda data: self._count_metadata(key, data))
        extracted.addErrback(lambda failure: log.failure("extracting the METADATA of {key}", failure, key=key))
        extracted.addBoth(self._extracted)

    def _extracted(self, _: object) -> None:
        self._extracting = False
        self._extract_next()

    def _count_metadata(self, key: str, data: bytes | None) -> bytes | None:
        """Metadata written beside a file counts towards --max-cache-size too."""
        if self._budget is not None and data is not None:
            self._budget.metadata_added(key, len(data))
        return data

    async def upstream_range(
        self, entry: FileEntry, spec: str
    ) -> tuple[UpstreamResponse, int, int, int] | None:
        """A byte range straight from the upstream, for a client that cannot wait for the
        whole download (uv reading a wheel's METADATA): the response and its ``start``,
        ``end`` (exclusive) and the file's size; ``None`` if the upstream has no ranges."""
        assert self._client is not None
        response = await self._client.get(entry.url, {"Range": spec})
        match = _CONTENT_RANGE.match(response.header("Content-Range") or "")
        if response.code != 206 or match is None:
            response.abort()
            return None
        first, last, size = (int(n) for n in match.groups())
        if (entry.size is not None and size != entry.size) or not first <= last < size:
            response.abort()
            return None
        self._stats.incr("range_passthroughs")
        return response, first, last + 1, size

    async def metadata_at_hand(self, key: str) -> bytes | None:
        """The metadata we hold for a file: kept beside it, or read from the cached wheel
        (in a thread, not kept: the page may announce a hash of its own). Asks no one."""
        data = self._metadata.stored(key)
        if data is not None:
            return data
        if self.store.size(key) is None:
            return None
        return await self._to_thread(self._metadata.read_wheel, key)

    async def metadata(self, key: str, entry: FileEntry) -> bytes | None:
        """PEP 658 metadata of a file, from the cache or the upstream (``None``: there is none)."""
        if not entry.has_metadata:
            # Only what we took from the cached wheel itself: nothing an upstream said.
            data = self._metadata.stored(key)
            if data is not None:
                return data
            if not entry.filename.endswith(".whl"):
                return None
            if self.cached(key) is None:
                if self._metadata.local(key) is None or self._client is None:
                    return None
                # We announced it, and the wheel has gone since (evicted, maybe by another
                # process): a client that trusted our page gets it all the same.
                await self.download(key, entry).when_done()
            return self._count_metadata(key, await self._metadata.extract(key))
        data = self._metadata.upstream_stored(key, entry)
        if data is not None or self._client is None:
            return data
        return self._count_metadata(key, await self._metadata.fetch(key, entry, self._client))
