"""The producer that sends a file source to a client, as fast as the client takes it."""

from __future__ import annotations

from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from zope.interface import implementer

from ..interfaces import IFileSource, ISourceObserver
from ..stats import Stats

log = Logger()

# Bytes read from the file per write to the client, where memory no longer holds them.
CHUNK = 256 * 1024


@implementer(IPushProducer, ISourceObserver)
class FileProducer:
    """Sends ``[start, end)`` of a source to a request, as fast as the client takes it.

    The same producer serves a cached file and a file still being downloaded: it reads
    what the source says is available, and waits for ``progress()`` when it has caught up.
    """

    # A client that takes nothing for this long is gone; its connection is closed.
    stall_timeout = 300.0

    def __init__(
        self,
        request: IRequest,
        source: IFileSource,
        start: int,
        end: int | None,
        stats: Stats,
        clock: IReactorTime,
        counter: str | None = "bytes_served",  # the counter of bytes sent (files'; none for lists)
    ) -> None:
        self._counter = counter
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
            if self._counter is not None:
                self._stats.incr(self._counter, len(data))
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
