"""The site's request: methods we answer, the body limit, the gate decided before a body is read,
and upload forms parsed as they stream."""

from __future__ import annotations

import io
from functools import partial
from pathlib import Path
from typing import Any, Callable

from multipart import MultipartError, parse_options_header
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.http_headers import Headers

from .errors import error_page
from .gate import is_upload_path
from .upload import FormReceiver

log = Logger()

# After refusing a body, read (and drop) what a client that did not wait for "100 Continue"
# still sends for this long, so that it reads our answer rather than a connection reset.
LINGER_SECONDS = 10.0
# A POST that is not an upload (a form of /+tokens) has a small body, held in memory.
MAX_FORM_BODY = 64 * 1024


class SiteRequest(server.Request):
    """A request whose body is never bigger than the upload limit, and whose form is
    parsed as it arrives (Twisted's own form parsing reads the whole body into memory)."""

    form: FormReceiver | None = None
    too_large = False  # refused before its body was read (too big, or by the gate)
    account: object | None = None  # the Account, once a login was checked
    gate_passed = False  # the gate let it through when its headers arrived

    def __init__(self, channel: Any, *args: Any, max_body: int, temporary: Callable[[str], Path], **kwargs: Any) -> None:
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(channel, *args, **kwargs)
        self._max_body = max_body
        self._temporary = temporary
        self._received = 0
        self._linger: Any = None
        self._deciding = False
        self._held: list[bytes] = []
        self._complete: tuple[bytes, bytes, bytes] | None = None
        self._expects_continue = False

    @classmethod
    def factory(cls, max_body: int, temporary: Callable[[str], Path]) -> Callable[..., "SiteRequest"]:
        return partial(cls, max_body=max_body, temporary=temporary)

    def _handleStar(self) -> None:
        # Twisted answers "OPTIONS *" itself, before the site sees it: through the gate
        # (--allow-from, --auth all) like every other request instead.
        try:
            self.render(self.site.getResourceFor(self))
        except BaseException:
            self.processingFailed(Failure())

    def render(self, resrc: Any) -> None:
        # Twisted answers methods it does not know with 501; for us they are a client's
        # mistake, and every path of ours takes GET, HEAD or POST alone ("*" OPTIONS alone).
        if self.path == b"*":
            if self.method != b"OPTIONS":
                resrc = error_page(405, "only OPTIONS is allowed for *", {"Allow": "OPTIONS"})
        elif self.method not in (b"GET", b"HEAD", b"POST"):
            method = self.method.decode("latin-1", "replace")[:20]
            resrc = error_page(405, f"method {method} not allowed", {"Allow": "GET, HEAD, POST"})
        super().render(resrc)

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self._max_body:
            self.content = io.BytesIO()
            self._refuse(error_page(413, f"upload too large: the limit is {self._max_body} bytes"))
            log.warn(
                "refused a request body of {length} bytes from {client}: over the limit of {limit}",
                length=length, client=getattr(self.client, "host", "?"), limit=self._max_body,
            )
            return
        command, uri = getattr(self.channel, "_command", None), getattr(self.channel, "_path", None)
        if command is not None and uri is not None:
            # Request sets these only once the body is in; the gate needs them now.
            self.method, self.uri, self.path = command, uri, uri.split(b"?", 1)[0]
        policy = getattr(getattr(self.channel, "site", None), "policy", None)
        if length != 0 and policy is not None:
            # A body is coming: the gate decides now, from the headers, while nothing more is
            # read and before "100 Continue" (which Twisted would send after this) is sent.
            self._expects_continue = _expects_continue(self)
            self.requestHeaders.removeHeader(b"expect")
            self.content = io.BytesIO()
            self._deciding = True
            self.channel.transport.pauseProducing()
            decision = defer.ensureDeferred(policy.decide(self))
            decision.addCallback(self._decided, length).addErrback(self._decision_failed)
            return
        refusal = self._body_refusal(length)
        if refusal is not None:
            self._refuse(refusal)
            return
        self._accept_body(length)

    def _decided(self, refusal: Any, length: int | None) -> None:
        self._deciding = False
        if self.channel is None or getattr(self.channel, "transport", None) is None:
            return  # the client went away meanwhile
        if refusal is None:
            self.gate_passed = True
            refusal = self._body_refusal(length)
        if refusal is not None:
            self._held = []
            # Close at once when nothing more is coming: the body came with the headers, or
            # the client waits for a "100 Continue" it will not get.
            nothing_more = self._complete is not None or self._expects_continue
            self._refuse(refusal, linger=not nothing_more)
            if not nothing_more:
                self.channel.transport.resumeProducing()  # to drain what is still sent
            return
        self._accept_body(length)
        if self._expects_continue:
            self.channel.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        held, self._held = self._held, []
        for data in held:
            self.handleContentChunk(data)
        if self._complete is not None:
            command, path, version = self._complete
            self.requestReceived(command, path, version)
        else:
            self.channel.transport.resumeProducing()

    def _decision_failed(self, failure: Any) -> None:
        log.failure("deciding on a request failed", failure)
        self._decided(error_page(500, "internal error; see the server log"), None)

    def _body_refusal(self, length: int | None) -> Any:
        """Only uploads have big bodies: anything else (a form of /+tokens) is small."""
        if is_upload_path(self) or (length is not None and length <= MAX_FORM_BODY):
            return None
        if length is None and self.method == b"POST":
            return None  # chunked: held to the limit as it arrives
        return error_page(413, f"request body too large here: the limit is {MAX_FORM_BODY} bytes")

    def _accept_body(self, length: int | None) -> None:
        """Where the body goes: an upload's form streams to a temporary file; any other
        body (a small form) is Twisted's business."""
        content_type = self.getHeader(b"content-type")
        if is_upload_path(self) and content_type is not None:
            kind, options = parse_options_header(content_type.decode("latin-1"))
            if kind == "multipart/form-data" and options.get("boundary"):
                try:
                    self.form = FormReceiver(options["boundary"], self._temporary("upload"))
                except MultipartError:
                    self.form = None
                else:
                    self.content = io.BytesIO()
                    self.notifyFinish().addBoth(self._discard)
                    return
        server.Request.gotLength(self, length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.too_large:
            return
        if self._deciding:
            self._held.append(data)  # what came with the headers, before reading paused
            return
        self._received += len(data)
        limit = self._max_body if self.form is not None else min(self._max_body, MAX_FORM_BODY)
        if self._received > limit:
            self._refuse(error_page(413, f"upload too large: the limit is {limit} bytes"))
        elif self.form is not None:
            self.form.feed(data)
        else:
            super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._deciding:
            self._complete = (command, path, version)  # the whole body came with the headers
            return
        if self.too_large:
            # Everything the client sent has been read: now it can read our answer.
            if self._linger is not None and self._linger.active():
                self._linger.cancel()
            self.loseConnection()
            return
        if self.form is not None:
            self.form.finish()
        super().requestReceived(command, path, version)

    def _refuse(self, refusal: Any, linger: bool = True) -> None:
        """Answer at once, before the body is read, and close the connection.

        A client that asked for "100 Continue" never sends the body: the connection closes
        at once. Others send it anyway; what they send is dropped unread for a while, so they
        get to read the answer instead of a reset.
        """
        self.too_large = True
        if self.form is not None:
            self.form.discard()
            self.form = None
        elif self.content is not None:
            self.content.close()
            self.content = io.BytesIO()
        # Twisted would send "100 Continue" after this; the client must not send the body.
        self.requestHeaders.removeHeader(b"expect")
        self.channel.transport.write(_raw_answer(self, refusal))
        if not linger:
            self.loseConnection()
            return
        call_later = getattr(self.channel, "callLater", None)
        if call_later is not None:
            self._linger = call_later(LINGER_SECONDS, self._stop_lingering)

    def _stop_lingering(self) -> None:
        self._linger = None
        self.loseConnection()

    def connectionLost(self, reason: Any) -> None:
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        super().connectionLost(reason)

    def _discard(self, result: object) -> None:
        if self.form is not None and not self.form.claimed:
            self.form.discard()


def _expects_continue(request: server.Request) -> bool:
    expect = request.requestHeaders.getRawHeaders(b"expect")
    version = getattr(request.channel, "_version", b"HTTP/1.1")
    return bool(expect) and expect[0].lower() == b"100-continue" and version == b"HTTP/1.1"


def _raw_answer(request: server.Request, refusal: Any) -> bytes:
    """The whole answer of an error resource, written straight to the connection: the request
    is not complete, so Twisted's response machinery cannot send it."""
    saved = request.responseHeaders
    request.responseHeaders = Headers()
    try:
        body = refusal.render(request)
        headers = request.responseHeaders
    finally:
        request.responseHeaders = saved
    phrase = request.code_message or b""
    lines = [b"HTTP/1.1 %d %s" % (request.code, phrase)]
    for name, values in headers.getAllRawHeaders():
        if name.lower() not in (b"content-length", b"connection"):
            lines.extend(name + b": " + value for value in values)
    lines += [b"Content-Length: %d" % len(body), b"Connection: close", b"", b""]
    return b"\r\n".join(lines) + body
