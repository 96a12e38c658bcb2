"""One upstream download of one file: written and hashed beside the reactor, read as it grows.

A download is written to a temporary file, and hashed, by a thread beside the reactor.
Clients are sent its chunks from memory while they keep up, and read the growing file
when they fall behind (so memory does not grow with the file or with slow clients), but
never its last byte until the hash has been checked and the file renamed into the cache.
A broken or mismatched download aborts every client reading it.
"""

from __future__ import annotations

import bisect
import os
from operator import itemgetter
from typing import BinaryIO, Callable

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..interfaces import IFileSource, ISourceObserver, ToThread
from ..simple import FileEntry
from ..simple.hashes import known, mismatch
from ..stats import Stats
from ..upstream import UpstreamClient, UpstreamError, UpstreamResponse
from .store import FileStore

log = Logger()

# Bytes received and not yet on disk at which the upstream is paused (resumed at half).
MAX_BACKLOG = 8 * 1024 * 1024
# Bytes of a download held back from clients until its hash is known to be right.
HOLDBACK = 1
# The shortest time a download's rate is estimated over (``available_within``).
RATE_WINDOW = 0.01


class HashMismatch(UpstreamError):
    """The downloaded bytes are not the ones the index promised."""


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
        to_thread: ToThread,
    ) -> None:
        self._file: BinaryIO | None = file
        self._to_thread = to_thread
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
        self._to_thread(self._write_batch, batch).addCallbacks(self._wrote, self._broke)

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


@implementer(IFileSource)
class Download:
    """One upstream fetch of one file, written to a temporary file that clients read."""

    def __init__(
        self,
        key: str,
        entry: FileEntry,
        store: FileStore,
        stats: Stats,
        retain: Callable[[], int],
        to_thread: ToThread,
        clock: IReactorTime,
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
        self._hashes = known({**entry.hashes, "sha256": key})
        self._state = "starting"
        self._to_thread = to_thread
        self._clock = clock
        self._streaming_since = 0.0
        self._observers: set[ISourceObserver] = set()
        self._started: list[defer.Deferred] = []
        self._done: list[defer.Deferred] = []

    # IFileSource ---------------------------------------------------------------------

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

    def available_within(self, seconds: float) -> int:
        """How much readers will likely have ``seconds`` from now, at the rate the file has
        arrived so far (what they have now, while nothing has arrived)."""
        available = self.available()
        if self._state != "streaming" or self.received == 0:
            return available
        # Taken over 10 ms at least: the first chunks of a response come faster than the
        # link goes (they were on their way with the headers), and would promise too much.
        elapsed = max(self._clock.seconds() - self._streaming_since, RATE_WINDOW)
        return available + int(self.received / elapsed * seconds)

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

    def subscribe(self, observer: ISourceObserver) -> None:
        self._observers.add(observer)

    def unsubscribe(self, observer: ISourceObserver) -> None:
        self._observers.discard(observer)

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
                list(self._hashes.values()),
                written=self._on_disk,
                failed=self._disk_failed,
                to_thread=self._to_thread,
            )
            response = self._response = await client.get(self.entry.url)
            if response.code != 200:
                response.abort()
                raise UpstreamError(f"upstream answered {response.code} for {self.entry.filename}")
            if response.length is not None:
                self.length = response.length
            self._state = "streaming"
            self._streaming_since = self._clock.seconds()
            for d in self._started:
                d.callback(self)
            self._started.clear()
            await response.stream(self._received)
            await self._writer.flushed()
            self._verify()
            await self._writer.close()
            await self._to_thread(self._store.commit, self.path, self._store.path(self.key))
        except (UpstreamError, OSError) as e:
            if self._writer is not None and self._writer.failure is not None:
                e = self._writer.failure.value  # the disk's error, not the aborted read it caused
            self._fail(Failure(e if isinstance(e, UpstreamError) else UpstreamError(f"cannot store it: {e}")))
            return
        except Exception:
            # A bug of ours, not the upstream's: keep the traceback, and count no upstream error.
            log.failure("downloading {filename} broke", filename=self.entry.filename)
            self._fail(Failure(UpstreamError("internal error; see the server log")), upstream=False)
            return
        self.path = self._store.path(self.key)
        self._state = "done"
        self._window.clear()
        self._stats.incr("files_cached")
        log.info(
            "cached {filename} ({bytes} bytes, sha256 {sha256})",
            filename=self.entry.filename,
            bytes=self.written,
            sha256=self._hashes["sha256"].hexdigest(),
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
        wrong = mismatch(expected, {name: h.hexdigest() for name, h in self._hashes.items()})
        if wrong is not None:
            self._stats.incr("hash_mismatches")
            raise HashMismatch(f"{self.entry.filename}: {wrong}")

    def _fail(self, failure: Failure, upstream: bool = True) -> None:
        self._state = "failed"
        self._failure = failure
        self._window.clear()
        if upstream:
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
        for observer in list(self._observers):
            observer.progress()
