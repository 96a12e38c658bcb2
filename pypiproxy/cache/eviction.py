"""Least-recently-used eviction of cached upstream files, to stay under --max-cache-size.

Private uploads live outside the file cache, so they are never candidates. The ``.metadata``
kept beside a file count too, as an entry of their own (``m:<key>``): an upstream's may be
cached without its file, and a file's may be written after it.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from ..stats import Stats
from .store import KEY, METADATA, FileStore

log = Logger()

# Recording a use costs a utime(); once an hour per file is enough to order them.
TOUCH_INTERVAL = 3600.0
# Files evicted in one reactor turn, the rest in the turns after: each costs a look for its
# metadata and an unlink or two. A limit lowered across a restart can leave thousands over it,
# and evicting them at once held the reactor for as long.
EVICT_SLICE = 50
_METADATA = "m:"  # the budget's entry for the metadata files of a key


class LRUBudget:
    """Keeps the cached files' total size under a limit, dropping the least recently used.

    The order survives restarts as the files' modification times, which we bump on use.
    """

    def __init__(
        self, store: FileStore, limit: int, stats: Stats, clock: IReactorTime, on_evict: Callable[[str], None]
    ) -> None:
        self._store = store
        self._limit = limit
        self._stats = stats
        self._clock = clock
        self._sizes: OrderedDict[str, int] = OrderedDict()  # least recently used first
        self._touched: dict[str, float] = {}
        self.total = 0
        # Told of each eviction (the metadata cache stops announcing the file's metadata).
        self._on_evict = on_evict
        self._next_slice: IDelayedCall | None = None

    def scan(self) -> tuple["OrderedDict[str, int]", int]:
        """What is in the cache, oldest use first, and its total size: one pass over the
        directory, in a thread at start (the reactor serves meanwhile; nothing is read)."""
        found = []
        metadata: dict[str, tuple[float, int]] = {}
        for folder in self._store.files.iterdir():
            for path in folder.iterdir():
                matched = METADATA.match(path.name)
                if not (KEY.match(path.name) or matched):
                    continue
                try:
                    stat = path.stat()
                except OSError:
                    continue
                if matched:
                    mtime, size = metadata.get(matched["key"], (0.0, 0))
                    metadata[matched["key"]] = (max(mtime, stat.st_mtime), size + stat.st_size)
                else:
                    found.append((stat.st_mtime, path.name, stat.st_size))
        found += [(mtime, _METADATA + key, size) for key, (mtime, size) in metadata.items()]
        found.sort()
        sizes: OrderedDict[str, int] = OrderedDict((key, size) for _mtime, key, size in found)
        return sizes, sum(sizes.values())

    def load(self, scanned: tuple["OrderedDict[str, int]", int]) -> None:
        """Take the scan's order (on the reactor: only the files used meanwhile are moved)."""
        sizes, total = scanned
        for key, size in self._sizes.items():  # used since the scan began: the most recent
            if key in sizes:
                total -= sizes.pop(key)
            sizes[key] = size
            total += size
        self._sizes, self.total = sizes, total
        self._evict(keep=None)

    def used(self, key: str, size: int) -> None:
        """A file was served or has just been cached."""
        if key in self._sizes:
            self._sizes.move_to_end(key)
        else:
            self._sizes[key] = size
            self.total += size
        now = self._clock.seconds()
        if now - self._touched.get(key, 0.0) > TOUCH_INTERVAL:
            self._touched[key] = now
            try:
                os.utime(self._store.path(key))
            except OSError:
                pass
        self._evict(keep=key)

    def metadata_added(self, key: str, size: int) -> None:
        """A ``.metadata`` of file ``key`` was written."""
        entry = _METADATA + key
        self._sizes[entry] = self._sizes.get(entry, 0) + size
        self._sizes.move_to_end(entry)
        self.total += size
        self._evict(keep=entry)

    def _evict(self, keep: str | None) -> None:
        """Drop the least recently used until under the limit, EVICT_SLICE a reactor turn."""
        for _ in range(EVICT_SLICE):
            if self.total <= self._limit or not self._sizes:
                return
            key, size = next(iter(self._sizes.items()))
            if key == keep:
                return  # the newest file alone is over the limit: keep it rather than thrash
            self._drop(key, size)
        if self._next_slice is None:
            self._next_slice = self._clock.callLater(0, self._evict_next_slice)

    def _evict_next_slice(self) -> None:
        self._next_slice = None
        self._evict(keep=next(reversed(self._sizes), None))  # the newest, as a use would keep it

    def _drop(self, key: str, size: int) -> None:
        del self._sizes[key]
        self._touched.pop(key, None)
        self.total -= size
        file_key = key.removeprefix(_METADATA)
        paths = self._store.metadata_paths(file_key)
        if file_key == key:
            paths.append(self._store.path(key))
            # Its metadata goes with it.
            self.total -= self._sizes.pop(_METADATA + key, 0)
        for path in paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self._on_evict(file_key)
        self._stats.incr("evictions")
        log.info("evicted {key} ({bytes} bytes) to stay under the cache limit", key=key, bytes=size)

    def stop(self) -> None:
        """No more slices (the service stops)."""
        if self._next_slice is not None and self._next_slice.active():
            self._next_slice.cancel()
        self._next_slice = None
