"""File cache: content-addressed store, one download per file fanned out to every client.

A download is written to a temporary file, and hashed, by a thread beside the reactor.
Clients are sent its chunks from memory while they keep up, and read the growing file
when they fall behind (so memory does not grow with the file or with slow clients), but
never its last byte until the hash has been checked and the file renamed into the cache.
A broken or mismatched download aborts every client reading it.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re
import shutil
import socket
import time
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO, Callable, Protocol

from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer
from twisted.internet.interfaces import IPushProducer

from .simple import FileEntry
from .wheels import NoMetadata, wheel_metadata
from .stats import Stats
from .upstream import UpstreamClient, UpstreamError, UpstreamResponse

log = Logger()

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
KEY = re.compile(r"^(?:[0-9a-f]{64}|u[0-9a-f]{63})$")
CHUNK = 256 * 1024
# Bytes received and not yet on disk at which the upstream is paused (resumed at half).
MAX_BACKLOG = 8 * 1024 * 1024
# Bytes of downloads kept in memory once on disk, so readers a little behind (paused by
# their socket for a moment) catch up from memory rather than from the file; shared by
# the downloads in progress, so many at once do not add up.
RETAIN = 8 * 1024 * 1024
# Bytes of a download held back from clients until its hash is known to be right.
HOLDBACK = 1


def cache_key(entry: FileEntry) -> str:
    """The file's name in the store: its sha256, or for an index without one, its URL's."""
    sha256 = entry.sha256
    if sha256 and KEY.match(sha256):
        return sha256
    return "u" + hashlib.sha256(entry.url.encode()).hexdigest()[:63]


class NotCached(UpstreamError):
    """Offline (or no upstream), and the file is not in the cache."""

    status = 404


class HashMismatch(UpstreamError):
    """The downloaded bytes are not the ones the index promised."""


class FileStore:
    """Plain files with atomic renames: ``files/ab/<key>``, temporaries in ``tmp/``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files = directory / "files"
        self._tmp_root = directory / "tmp"
        # One temporary folder per process, so processes sharing the directory never
        # remove each other's downloads in progress.
        self.tmp = self._tmp_root / f"{socket.gethostname()}.{os.getpid()}"
        self.files.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.files / key[:2] / key

    def metadata_path(self, key: str) -> Path:
        return self.files / key[:2] / f"{key}.metadata"

    def size(self, key: str) -> int | None:
        """The cached file's size, or ``None`` if it is not in the cache."""
        try:
            return self.path(key).stat().st_size
        except OSError:
            return None

    def create(self, path: Path) -> BinaryIO:
        """A temporary file to download into, unbuffered so readers see every write."""
        return open(path, "wb", buffering=0)

    def temporary(self, key: str) -> Path:
        # Made again if need be: a process on another host sharing the directory removes
        # a folder left untouched for a day, not knowing whether its process still runs.
        self.tmp.mkdir(parents=True, exist_ok=True)
        return self.tmp / f"{key}.{os.urandom(4).hex()}.part"

    def commit(self, temporary: Path, final: Path) -> None:
        """Make a finished temporary file visible under its final name (in a thread)."""
        final.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "rb") as f:
            os.fsync(f.fileno())
        os.replace(temporary, final)

    def write(self, final: Path, data: bytes) -> None:
        """Write a small file atomically."""
        temporary = self.temporary(final.name)
        try:
            with open(temporary, "wb") as f:
                f.write(data)
            self.commit(temporary, final)
        finally:
            temporary.unlink(missing_ok=True)

    def extract_metadata(self, key: str) -> bytes | None:
        """Copy a cached wheel's METADATA beside it (in a thread), for PEP 658 clients."""
        try:
            data = wheel_metadata(self.path(key))
        except NoMetadata:
            return None
        self.write(self.metadata_path(key), data)
        return data

    def clean_leftovers(self) -> list[Path]:
        """Remove temporaries of processes on this host that no longer run (crashed), and
        any folder untouched for a day (another host's, or a reused pid's). At start only."""
        removed = []
        host = socket.gethostname()
        for folder in self._tmp_root.iterdir():
            if folder == self.tmp:
                # Ours by name, yet written before we started: a container restarted in
                # place comes back with the host name and pid of the process that crashed.
                leftovers = list(folder.iterdir())
                for leftover in leftovers:
                    leftover.unlink(missing_ok=True)
                if leftovers:
                    removed.append(folder)
                continue
            owner, _, pid = folder.name.rpartition(".")
            try:
                stale = time.time() - folder.stat().st_mtime > 86400
            except OSError:
                continue  # another process starting at the same time removed it
            # A live process whose quiet folder goes makes it again (see temporary()).
            if stale or (owner == host and not _alive(pid)):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        return removed


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


class Source(Protocol):
    """What a FileProducer reads: a file on disk and how much of it may be sent."""

    path: Path
    length: int | None
    written: int  # bytes on disk

    def open(self) -> BinaryIO: ...
    def available(self) -> int: ...
    def recent(self, offset: int, end: int) -> bytes | None: ...
    def finished(self) -> bool: ...
    def failed(self) -> bool: ...
    def subscribe(self, producer: "FileProducer") -> None: ...
    def unsubscribe(self, producer: "FileProducer") -> None: ...


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

    def subscribe(self, producer: "FileProducer") -> None:
        pass

    def unsubscribe(self, producer: "FileProducer") -> None:
        pass


class DiskWriter:
    """Writes and hashes a download's chunks in a thread, in order, a batch at a time.

    The reactor thread only receives and forwards; the copy to disk and the sha256 (both
    release the GIL) run beside it on another core. Readers of the file wait for
    ``written``; a caught-up reader is sent each chunk from memory as it arrives.
    """

    def __init__(
        self,
        file: BinaryIO,
        hashes: list,  # hashlib objects
        written: Callable[[int], None],
        failed: Callable[[Failure], None],
    ) -> None:
        self._file: BinaryIO | None = file
        self._hashes = hashes
        self._written = written
        self._failed = failed
        self._batch: list[bytes] = []
        self.backlog = 0  # bytes given and not yet on disk
        self.failure: Failure | None = None
        self._busy = False
        self._closing = False
        self._idle: list[defer.Deferred[None]] = []

    def write(self, data: bytes) -> None:
        if self.failure is not None or self._closing:
            return
        self._batch.append(data)
        self.backlog += len(data)
        if not self._busy:
            self._next()

    def flushed(self) -> defer.Deferred[None]:
        """Fires once everything given is on disk and hashed."""
        if self.failure is not None:
            return defer.fail(self.failure)
        d: defer.Deferred[None] = defer.Deferred()
        self._idle.append(d)
        if not self._busy:
            self._settle()
        return d

    def close(self) -> defer.Deferred[None]:
        """Close the file, after the batch being written (never under a writing thread,
        whose descriptor could otherwise be reused by the next file opened)."""
        self._closing = True
        self._batch.clear()
        d = self.flushed() if self._busy else defer.succeed(None)
        if not self._busy:
            self._close_file()
        return d.addErrback(lambda _: None)

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _next(self) -> None:
        batch, self._batch = self._batch, []
        self._busy = True
        threads.deferToThread(self._write_batch, batch).addCallbacks(self._wrote, self._broke)

    def _write_batch(self, batch: list[bytes]) -> int:  # in a thread
        for chunk in batch:
            view = memoryview(chunk)
            while view:
                view = view[self._file.write(view) :]
            for h in self._hashes:
                h.update(chunk)
        return sum(map(len, batch))

    def _wrote(self, size: int) -> None:
        self._busy = False
        self.backlog -= size
        if self._batch and not self._closing:
            self._next()
        self._written(size)
        if not self._busy:
            self._settle()

    def _broke(self, failure: Failure) -> None:
        self._busy = False
        self.failure = failure
        self._batch.clear()
        self._failed(failure)
        self._settle()

    def _settle(self) -> None:
        if self._closing:
            self._close_file()
        idle, self._idle = self._idle, []
        for d in idle:
            if self.failure is not None:
                d.errback(self.failure)
            else:
                d.callback(None)


class Download:
    """One upstream fetch of one file, written to a temporary file that clients read."""

    def __init__(
        self, key: str, entry: FileEntry, store: FileStore, stats: Stats, retain: Callable[[], int]
    ) -> None:
        self.key = key
        self.entry = entry
        self.path = store.temporary(key)
        self.length: int | None = entry.size
        self.received = 0  # from the upstream
        self.written = 0  # of those, on disk and hashed
        self._store = store
        self._stats = stats
        self._writer: DiskWriter | None = None
        self._response: UpstreamResponse | None = None
        # (offset, chunk) of what is not on disk yet and the retain() bytes before it
        self._window: list[tuple[int, bytes]] = []
        self._retain = retain
        self._paused = False
        self._hash = hashlib.sha256()
        self._others = {
            name: hashlib.new(name)
            for name in entry.hashes
            if name != "sha256" and name in hashlib.algorithms_available
        }
        self._state = "starting"
        self._producers: set[FileProducer] = set()
        self._started: list[defer.Deferred] = []
        self._done: list[defer.Deferred] = []

    # For FileProducer ----------------------------------------------------------------

    def open(self) -> BinaryIO:
        try:
            return open(self.path, "rb")
        except FileNotFoundError:
            # Renamed into the cache between our look at the path and the open.
            return open(self._store.path(self.key), "rb")

    def available(self) -> int:
        """How much of the file readers may have (from memory or disk)."""
        if self._state == "done":
            return self.written
        if self.length is not None:
            # Only the file's last byte waits for the hash: every chunk before it can be
            # handed on as it arrives.
            return min(self.received, self.length - HOLDBACK)
        return max(0, self.received - HOLDBACK)

    def recent(self, offset: int, end: int) -> bytes | None:
        """The bytes from ``offset`` (up to ``end``) of one chunk still held in memory."""
        window = self._window
        if not window or offset < window[0][0]:
            return None
        start, chunk = window[bisect.bisect_right(window, offset, key=itemgetter(0)) - 1]
        stop = start + len(chunk)
        if offset >= stop:
            return None
        if offset == start and end >= stop:
            return chunk  # the usual case: no copy
        return chunk[offset - start : min(end, stop) - start]

    def finished(self) -> bool:
        return self._state == "done"

    def failed(self) -> bool:
        return self._state == "failed"

    def subscribe(self, producer: "FileProducer") -> None:
        self._producers.add(producer)

    def unsubscribe(self, producer: "FileProducer") -> None:
        self._producers.discard(producer)

    # For FileCache -------------------------------------------------------------------

    def when_started(self) -> defer.Deferred["Download"]:
        """Fires once the upstream has answered 200 (so a length may be known)."""
        d: defer.Deferred[Download] = defer.Deferred()
        if self._state == "failed":
            d.errback(self._failure)
        elif self._state != "starting":
            d.callback(self)
        else:
            self._started.append(d)
        return d

    def when_done(self) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        if self._state == "done":
            d.callback(None)
        elif self._state == "failed":
            d.errback(self._failure)
        else:
            self._done.append(d)
        return d

    async def run(self, client: UpstreamClient) -> None:
        try:
            self._writer = DiskWriter(
                self._store.create(self.path),
                [self._hash, *self._others.values()],
                written=self._on_disk,
                failed=self._disk_failed,
            )
            response = self._response = await client.get(self.entry.url)
            if response.code != 200:
                response.abort()
                raise UpstreamError(f"upstream answered {response.code} for {self.entry.filename}")
            if response.length is not None:
                self.length = response.length
            self._state = "streaming"
            for d in self._started:
                d.callback(self)
            self._started.clear()
            await response.stream(self._received)
            await self._writer.flushed()
            self._verify()
            await self._writer.close()
            await threads.deferToThread(self._store.commit, self.path, self._store.path(self.key))
        except Exception as e:
            if self._writer is not None and self._writer.failure is not None:
                e = self._writer.failure.value  # the disk's error, not the aborted read it caused
            self._fail(Failure(e if isinstance(e, UpstreamError) else UpstreamError(str(e))))
            return
        self.path = self._store.path(self.key)
        self._state = "done"
        self._window.clear()
        self._stats.incr("files_cached")
        log.info(
            "cached {filename} ({bytes} bytes, sha256 {sha256})",
            filename=self.entry.filename,
            bytes=self.written,
            sha256=self._hash.hexdigest(),
        )
        self._notify()
        for d in self._done:
            d.callback(None)
        self._done.clear()

    def _received(self, data: bytes) -> None:
        """A chunk from the upstream: to the disk writer, and at once to caught-up readers."""
        self._window.append((self.received, data))
        self.received += len(data)
        self._stats.incr("bytes_fetched", len(data))
        self._writer.write(data)
        if self._writer.backlog > MAX_BACKLOG and not self._paused:
            self._paused = True
            self._stats.incr("upstream_pauses")
            self._response.pause()
        self._notify()

    def _on_disk(self, size: int) -> None:
        self.written += size
        keep_from = min(self.written, self.received - self._retain())
        window = self._window
        gone = 0
        while gone < len(window) and window[gone][0] + len(window[gone][1]) <= keep_from:
            gone += 1
        del window[:gone]
        if self._paused and self._writer.backlog <= MAX_BACKLOG // 2:
            self._paused = False
            self._response.resume()
        self._notify()

    def _disk_failed(self, failure: Failure) -> None:
        if self._response is not None:
            self._response.abort()

    def _verify(self) -> None:
        if self.length is not None and self.received != self.length:
            raise UpstreamError(f"{self.entry.filename}: got {self.received} of {self.length} bytes")
        expected = dict(self.entry.hashes)
        if not self.key.startswith("u"):
            expected["sha256"] = self.key
        actual = {name: h.hexdigest() for name, h in self._others.items()}
        actual["sha256"] = self._hash.hexdigest()
        for name, digest in expected.items():
            if name in actual and actual[name] != digest:
                self._stats.incr("hash_mismatches")
                raise HashMismatch(
                    f"{self.entry.filename}: {name} is {actual[name]}, the index says {digest}"
                )

    def _fail(self, failure: Failure) -> None:
        self._state = "failed"
        self._failure = failure
        self._window.clear()
        self._stats.incr("upstream_errors")
        log.warn(
            "download of {filename} failed: {error}",
            filename=self.entry.filename,
            error=failure.getErrorMessage(),
        )
        if self._writer is not None:
            self._writer.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        # Readers hold the file open; they abort rather than read it to the end.
        self._notify()
        for d in self._started + self._done:
            d.errback(failure)
        self._started.clear()
        self._done.clear()

    def _notify(self) -> None:
        for producer in list(self._producers):
            producer.progress()


class FileCache:
    """Answers "where do I read this file from": the store, or the one download of it."""

    def __init__(
        self, store: FileStore, client: UpstreamClient | None, stats: Stats, budget=None
    ) -> None:
        self.store = store
        self._client = client
        self._stats = stats
        self._budget = budget  # an eviction.LRUBudget, told of every use
        if budget is not None:
            budget.on_evict = self._forget_metadata
        self._downloads: dict[str, Download] = {}
        # sha256 of the METADATA we hold for wheels whose index offers none
        self._local_metadata: dict[str, str] = {}
        # Bumped whenever such metadata appears, so pages announcing it are rendered anew.
        self.metadata_generation = 0

    def local_metadata(self, key: str) -> str | None:
        """The sha256 of the METADATA we can serve for a cached wheel, if any."""
        known = self._local_metadata.get(key)
        if known is None:
            # Not remembered when absent: another process sharing the cache directory may
            # extract it later, and pages rendered anew (at the latest after the TTL) show it.
            try:
                data = self.store.metadata_path(key).read_bytes()
            except OSError:
                return None
            known = self._local_metadata[key] = hashlib.sha256(data).hexdigest()
        return known

    def _forget_metadata(self, key: str) -> None:
        if self._local_metadata.pop(key, None) is not None:
            self.metadata_generation += 1

    def _remember_metadata(self, key: str, data: bytes | None) -> None:
        if data is not None:
            self._local_metadata[key] = hashlib.sha256(data).hexdigest()
            self.metadata_generation += 1

    def _retain_each(self) -> int:
        return RETAIN // max(1, len(self._downloads))

    def cached(self, key: str) -> CachedFile | None:
        size = self.store.size(key)
        if size is None:
            return None
        if self._budget is not None:
            self._budget.used(key, size)
        return CachedFile(self.store.path(key), size)

    async def fetch(self, key: str, entry: FileEntry) -> Source:
        """The file from the cache, or a download of it (joined if one is running)."""
        found = self.cached(key)
        if found is not None:
            self._stats.incr("cache_hits")
            return found
        return await self.download(key, entry).when_started()

    def download(self, key: str, entry: FileEntry) -> Download:
        """The one download of a file: started now, or the one already running."""
        download = self._downloads.get(key)
        if download is None:
            if self._client is None:
                raise NotCached(f"{entry.filename} is not cached, and this server asks no upstream")
            self._stats.incr("cache_misses")
            download = self._downloads[key] = Download(
                key, entry, self.store, self._stats, self._retain_each
            )
            finished = defer.ensureDeferred(download.run(self._client))
            finished.addBoth(lambda _: self._downloads.pop(key, None))
            if self._budget is not None:
                download.when_done().addCallback(
                    lambda _: self._budget.used(key, download.written)
                ).addErrback(lambda _: None)
            if entry.filename.endswith(".whl") and not entry.core_metadata:
                download.when_done().addCallback(
                    lambda _: threads.deferToThread(self.store.extract_metadata, key)
                ).addCallback(lambda data: self._remember_metadata(key, data)).addErrback(
                    lambda _: None
                )
        else:
            self._stats.incr("download_joins")
        return download

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

    async def metadata(self, key: str, entry: FileEntry) -> bytes | None:
        """PEP 658 metadata of a file, from the cache or the upstream (``None``: there is none)."""
        path = self.store.metadata_path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        if not entry.core_metadata:
            if not entry.filename.endswith(".whl"):
                return None
            if self.cached(key) is None:
                if key not in self._local_metadata or self._client is None:
                    return None
                # We announced it, and the wheel has gone since (evicted, maybe by another
                # process): a client that trusted our page gets it all the same.
                await self.download(key, entry).when_done()
            data = await threads.deferToThread(self.store.extract_metadata, key)
            self._remember_metadata(key, data)
            return data
        if self._client is None:
            return None
        response = await self._client.get(entry.url + ".metadata")
        if response.code == 404:
            response.abort()
            return None
        if response.code != 200:
            response.abort()
            raise UpstreamError(f"upstream answered {response.code} for {entry.filename}.metadata")
        data = await response.content()
        if isinstance(entry.core_metadata, dict):
            for name, digest in entry.core_metadata.items():
                if name in hashlib.algorithms_available and hashlib.new(name, data).hexdigest() != digest:
                    self._stats.incr("hash_mismatches")
                    raise HashMismatch(f"{entry.filename}.metadata: {name} does not match the index")
        try:
            await threads.deferToThread(self.store.write, path, data)
        except OSError as e:
            log.warn("could not cache {path}: {error}", path=str(path), error=str(e))
        return data


@implementer(IPushProducer)
class FileProducer:
    """Sends ``[start, end)`` of a source to a request, as fast as the client takes it.

    The same producer serves a cached file and a file still being downloaded: it reads
    what the source says is available, and waits for ``progress()`` when it has caught up.
    """

    # A client that takes nothing for this long is gone; its connection is closed.
    stall_timeout = 300.0

    def __init__(self, request, source: Source, start: int, end: int | None, stats: Stats, clock=None) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self._clock = clock
        self._stall = None
        self._request = request
        self._source = source
        self._offset = start
        self._end = end
        self._stats = stats
        self._paused = False
        self._stopped = False
        self._file = source.open()
        self._file_position = 0

    def start(self) -> None:
        self._source.subscribe(self)
        self._request.registerProducer(self, True)
        self._request.notifyFinish().addErrback(lambda _: self.stopProducing())
        self._pump()

    def progress(self) -> None:
        """The source has more (or has ended)."""
        self._pump()

    def _limit(self) -> int:
        limit = self._source.available()
        return limit if self._end is None else min(limit, self._end)

    def pauseProducing(self) -> None:
        self._paused = True
        if self._stall is None:
            self._stall = self._clock.callLater(self.stall_timeout, self._stalled)

    def resumeProducing(self) -> None:
        self._paused = False
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        self._pump()

    def _stalled(self) -> None:
        self._stall = None
        log.info("closing a connection that took no data for {seconds}s", seconds=self.stall_timeout)
        self._abort()

    def stopProducing(self) -> None:
        """The client went away: the download (if any) goes on for the others."""
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        if not self._stopped:
            self._stopped = True
            self._source.unsubscribe(self)
            self._file.close()

    def _pump(self) -> None:
        if self._stopped:
            return
        if self._source.failed():
            self._abort()
            return
        limit = self._limit()
        while not self._paused and not self._stopped and self._offset < limit:
            data = self._source.recent(self._offset, limit) or self._read(limit)
            if not data:
                # The file is shorter than the source says: never pretend it is complete.
                self._abort()
                return
            self._offset += len(data)
            self._stats.incr("bytes_served", len(data))
            self._request.write(data)
        if self._stopped:
            return
        done = self._source.finished() and (
            self._offset >= (self._end if self._end is not None else self._source.available())
        )
        if done:
            self.stopProducing()
            self._request.unregisterProducer()
            self._request.finish()

    def _read(self, limit: int) -> bytes:
        """From the file: what memory no longer holds is on disk."""
        if self._file_position != self._offset:
            self._file.seek(self._offset)
        size = min(CHUNK, min(limit, self._source.written) - self._offset)
        if size <= 0:
            return b""
        data = self._file.read(size)
        self._file_position = self._offset + len(data)
        return data

    def _abort(self) -> None:
        self.stopProducing()
        self._request.unregisterProducer()
        transport = self._request.transport
        if transport is not None:
            transport.abortConnection()
