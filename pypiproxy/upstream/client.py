"""The one upstream HTTP client: connection pool, TLS policy, credentials, timeouts, fetch logs."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from hyperlink import EncodedURL  # Twisted's and treq's own URL library
from twisted.internet import defer, error as ierror
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import client as webclient
from twisted.web.error import SchemeNotSupported
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IResponse

from ..config import DEFAULT_MAX_PAGE_SIZE, UpstreamIndex, origin_of, redact
from .bounded import BoundedDecoder, PageTooLarge
from .endpoints import LargeReadEndpoints, trust_root
from .guard import ConnectGuard, NoDowngradeRedirects
from .errors import UpstreamError, UpstreamTimeout

log = Logger()

PAGE_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"


@dataclass
class UpstreamResponse:
    """Response headers have arrived; the body is read (streamed or collected) separately."""

    code: int
    headers: Headers
    url: str
    _response: IResponse
    _client: "UpstreamClient"
    _started: float
    _reader: "_BodyReader | None" = None
    _page_limit: int | None = None  # an index page: decoded and capped while read

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name.encode("ascii"))
        return values[0].decode("latin-1") if values else None

    @property
    def length(self) -> int | None:
        length = self._response.length
        return length if isinstance(length, int) else None

    def stream(self, write: Callable[[bytes], None]) -> defer.Deferred[int]:
        """Deliver the body to ``write`` as it arrives; fires with the byte count."""
        return self._client._read_body(self, write)

    async def content(self) -> bytes:
        chunks: list[bytes] = []
        await self.stream(chunks.append)
        return b"".join(chunks)

    def pause(self) -> None:
        """Read no more for now (the consumer is behind); the idle timeout waits too."""
        if self._reader is not None:
            self._reader.pause()

    def resume(self) -> None:
        if self._reader is not None:
            self._reader.resume()

    def abort(self) -> None:
        """Stop reading: the connection is closed rather than drained."""
        if self._reader is not None:
            self._reader.abort()
        else:
            self._response.deliverBody(_Discard())


class _BodyReader(Protocol):
    """Hands each chunk over as it arrives and gives up when the upstream goes quiet."""

    def __init__(self, write: Callable[[bytes], None], idle: float, clock: IReactorTime) -> None:
        self.write = write
        # Cancelling the reading closes the connection rather than leaving it to run.
        self.finished: defer.Deferred[int] = defer.Deferred(lambda _: self.abort())
        self.received = 0
        self._idle = idle
        self._clock = clock
        self._timer = clock.callLater(idle, self._timedOut)

    def dataReceived(self, data: bytes) -> None:
        if self.finished.called:
            return
        self.received += len(data)
        if self._timer.active():  # not while paused
            self._timer.reset(self._idle)
        try:
            self.write(data)
        except Exception:
            self._fail(Failure())

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self._timer.active():
            self._timer.cancel()
        if self.finished.called:
            return
        if reason.check(webclient.ResponseDone):
            self.finished.callback(self.received)
        elif reason.check(webclient.PotentialDataLoss):
            # No Content-Length and no chunking: the close marks the end.
            self.finished.callback(self.received)
        else:
            self.finished.errback(UpstreamError(f"body broken: {reason.getErrorMessage()}"))

    def pause(self) -> None:
        if self._timer.active():
            self._timer.cancel()
        if self.transport is not None and not self.finished.called:
            self.transport.pauseProducing()

    def resume(self) -> None:
        if self.finished.called:
            return
        if not self._timer.active():
            self._timer = self._clock.callLater(self._idle, self._timedOut)
        if self.transport is not None:
            self.transport.resumeProducing()

    def _timedOut(self) -> None:
        self._fail(Failure(UpstreamTimeout("no data from upstream within the timeout")))

    def abort(self) -> None:
        self._fail(Failure(UpstreamError("reading aborted")))

    def _fail(self, failure: Failure) -> None:
        if self._timer.active():
            self._timer.cancel()
        if not self.finished.called:
            self.finished.errback(failure)
        if self.transport is not None:
            self.transport.stopProducing()


# Connections kept open to each upstream host. uv asks up to 50 things at once; with 10 kept,
# a cold install of the benchmark's corpus opened a new connection for 128 of its 279
# upstream requests.
PERSISTENT_PER_HOST = 64


class _QuietClientFactory(webclient._HTTP11ClientFactory):
    noisy = False  # "Starting factory"/"Stopping factory": two log lines per connection, saying nothing


class _QuietPool(webclient.HTTPConnectionPool):
    _factory = _QuietClientFactory  # the pool's hook for its connections' factory


class UpstreamClient:
    """Owns the connection pool, the TLS policy, the upstreams' credentials and timeouts."""

    def __init__(
        self,
        reactor,
        upstreams: Sequence[UpstreamIndex],
        timeout: float,
        ca_file: Path | None = None,
        agent: IAgent | None = None,
        guard: ConnectGuard | None = None,
        max_page_size: int = DEFAULT_MAX_PAGE_SIZE,
    ) -> None:
        self._reactor = reactor
        self._max_page_size = max_page_size
        self._timeout = timeout
        self._credentials = {
            u.origin: _basic(u.username, u.password or "") for u in upstreams if u.username
        }
        self._pool = _QuietPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = PERSISTENT_PER_HOST
        self._pool.retryAutomatically = True
        if agent is None:  # tests pass one that answers from a resource tree in memory
            trust = trust_root(ca_file) if ca_file else None
            policy = webclient.BrowserLikePolicyForHTTPS(trustRoot=trust)
            endpoints = LargeReadEndpoints(reactor, policy, timeout, guard or ConnectGuard(upstreams))
            agent = webclient.Agent.usingEndpointFactory(reactor, endpoints, pool=self._pool)
        # Files byte for byte; pages decoded by us (BoundedDecoder), under a size cap. Both
        # follow redirects as browsers do, never from https to http.
        self._as_is = NoDowngradeRedirects(agent)

    async def get(
        self, url: str, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> UpstreamResponse:
        """Ask for a file, byte for byte: ``Accept-Encoding: identity`` and nothing decoded
        (as pip does), so a server that labels a ``.tar.gz`` as gzip-encoded does not get it
        unpacked and then refused for its hash. Fires once the status and headers are in."""
        sent = self._headers(url, headers)
        sent.setRawHeaders("Accept-Encoding", ["identity"])
        return await self._send(
            url,
            lambda: self._as_is.request(
                method.encode("ascii"), EncodedURL.from_text(url).to_uri().to_text().encode("ascii"), sent
            ),
        )

    async def open_page(
        self, url: str, etag: str | None = None, last_modified: str | None = None
    ) -> UpstreamResponse:
        """Ask for an index page (gzip welcome), conditionally when we hold validators; fires
        once the headers are in. Its body, read with ``stream``/``content``, comes decoded and
        capped at ``max_page_size`` (compressed and decoded) while it is read."""
        headers = {"Accept": PAGE_ACCEPT, "Accept-Encoding": "gzip"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        sent = self._headers(url, headers)
        response = await self._send(
            url,
            lambda: self._as_is.request(b"GET", EncodedURL.from_text(url).to_uri().to_text().encode("ascii"), sent),
        )
        response._page_limit = self._max_page_size
        if response.length is not None and response.length > self._max_page_size:
            response.abort()
            self._log_fetch(response.url, f"{response.code}+too-large", 0, response._started)
            raise PageTooLarge(f"{redact(url)}: {response.length} bytes, over --max-page-size")
        return response

    async def get_page(
        self, url: str, etag: str | None = None, last_modified: str | None = None
    ) -> tuple[UpstreamResponse, bytes]:
        """An index page and its whole (decoded, capped) body."""
        response = await self.open_page(url, etag, last_modified)
        return response, await response.content()

    def _headers(self, url: str, headers: dict[str, str] | None) -> Headers:
        sent = Headers({"User-Agent": ["pypiproxy"]})
        for name, value in (headers or {}).items():
            sent.setRawHeaders(name, [value])
        authorization = self._credentials.get(origin_of(url))
        if authorization:
            sent.setRawHeaders("Authorization", [authorization])
        return sent

    async def _send(self, url: str, send: Callable[[], defer.Deferred[IResponse]]) -> UpstreamResponse:
        """Send a request; fires once the status and headers are in (within the timeout)."""
        started = self._reactor.seconds()
        timer = None
        try:
            requested = send()
            timer = self._reactor.callLater(self._timeout, requested.cancel)
            response = await requested
        except defer.CancelledError:
            raise self._cancelled(url, started, timer) from None
        except (ierror.TimeoutError, ierror.ConnectingCancelledError):
            self._log_fetch(url, "timeout", 0, started)
            raise UpstreamTimeout(f"cannot connect to {redact(url)} in {self._timeout:g}s") from None
        except (webclient.ResponseNeverReceived, webclient.ResponseFailed) as e:
            if any(reason.check(defer.CancelledError) for reason in e.reasons):
                raise self._cancelled(url, started, timer) from None
            self._log_fetch(url, "error", 0, started)
            raise UpstreamError(f"{redact(url)}: {_describe(e)}") from None
        except (ierror.ConnectError, ierror.DNSLookupError, SchemeNotSupported, OSError, ValueError) as e:
            # Refused, unresolvable, an unsupported scheme, a URL that cannot be sent (ValueError):
            # the upstream's trouble. Anything else is a bug of ours and goes up with its traceback.
            self._log_fetch(url, "error", 0, started)
            raise UpstreamError(f"{redact(url)}: {_describe(e)}") from None
        finally:
            if timer is not None and timer.active():
                timer.cancel()
        final_url = url
        if response.request is not None:
            final_url = response.request.absoluteURI.decode("utf-8", "replace")
        return UpstreamResponse(
            code=response.code,
            headers=response.headers,
            url=final_url,
            _response=response,
            _client=self,
            _started=started,
        )

    def _cancelled(self, url: str, started: float, timer: IDelayedCall | None) -> Exception:
        """Our timer's cancel is a timeout; the caller's own cancel stays a cancel."""
        if timer is not None and timer.called:
            self._log_fetch(url, "timeout", 0, started)
            return UpstreamTimeout(f"no answer from {redact(url)} in {self._timeout:g}s")
        self._log_fetch(url, "cancelled", 0, started)
        return defer.CancelledError()

    def _read_body(self, response: UpstreamResponse, write: Callable[[bytes], None]) -> defer.Deferred[int]:
        decoder = None
        if response._page_limit is not None:
            try:
                decoder = BoundedDecoder(response.header("Content-Encoding"), response._page_limit, write)
            except UpstreamError:
                response._response.deliverBody(_Discard())
                self._log_fetch(response.url, f"{response.code}+unreadable", 0, response._started)
                return defer.fail()
            write = decoder
        reader = response._reader = _BodyReader(write, self._timeout, self._reactor)
        response._response.deliverBody(reader)

        def done(result: int | Failure) -> int | Failure:
            if decoder is not None and not isinstance(result, Failure):
                try:
                    decoder.finish()
                except UpstreamError:
                    result = Failure()
            status = response.code if not isinstance(result, Failure) else f"{response.code}+broken"
            if isinstance(result, Failure) and result.check(PageTooLarge):
                status = f"{response.code}+too-large"
            self._log_fetch(response.url, status, reader.received, response._started)
            return result

        return reader.finished.addBoth(done)

    def _log_fetch(self, url: str, status: object, size: int, started: float) -> None:
        log.info(
            "upstream fetch {url} {status} {bytes} bytes {seconds:.3f}s",
            url=redact(url),
            status=status,
            bytes=size,
            seconds=self._reactor.seconds() - started,
        )

    def close(self) -> defer.Deferred[None]:
        return self._pool.closeCachedConnections()


class _Discard(Protocol):
    def makeConnection(self, transport) -> None:  # type: ignore[no-untyped-def]
        super().makeConnection(transport)
        transport.stopProducing()


def _basic(username: str, password: str) -> str:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return f"Basic {token}"


def _describe(e: Exception) -> str:
    if isinstance(e, webclient.ResponseNeverReceived) or isinstance(e, webclient.ResponseFailed):
        reasons = "; ".join(f.getErrorMessage() for f in e.reasons)
        return f"{type(e).__name__}: {reasons}"
    return e.__class__.__name__ + (f": {e}" if str(e) else "")
