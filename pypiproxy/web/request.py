"""The site's request: methods we answer, the body limit, and upload forms parsed as they stream."""

from __future__ import annotations

import io
from functools import partial
from pathlib import Path
from typing import Any, Callable

from multipart import MultipartError, parse_options_header
from twisted.logger import Logger
from twisted.web import server

from .errors import error_page
from .upload import FormReceiver

log = Logger()

# After refusing an oversized body, read (and drop) what the client still sends for this
# long, so that it reads our answer rather than a connection reset.
LINGER_SECONDS = 10.0


class SiteRequest(server.Request):
    """A request whose body is never bigger than the upload limit, and whose form is
    parsed as it arrives (Twisted's own form parsing reads the whole body into memory)."""

    form: FormReceiver | None = None
    too_large = False
    account: str | None = None  # the user name, once a login was checked

    def __init__(self, channel: Any, *args: Any, max_body: int, temporary: Callable[[str], Path], **kwargs: Any) -> None:
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(channel, *args, **kwargs)
        self._max_body = max_body
        self._temporary = temporary
        self._received = 0
        self._linger: Any = None

    @classmethod
    def factory(cls, max_body: int, temporary: Callable[[str], Path]) -> Callable[..., "SiteRequest"]:
        return partial(cls, max_body=max_body, temporary=temporary)

    def render(self, resrc: Any) -> None:
        # Twisted answers methods it does not know with 501; for us they are a client's
        # mistake, and every path of ours takes GET, HEAD or POST alone.
        if self.method not in (b"GET", b"HEAD", b"POST"):
            method = self.method.decode("latin-1", "replace")[:20]
            resrc = error_page(405, f"method {method} not allowed", {"Allow": "GET, HEAD, POST"})
        super().render(resrc)

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self._max_body:
            self.content = io.BytesIO()
            self._refuse(length)
            return
        content_type = self.getHeader(b"content-type")
        if content_type is not None:
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
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.too_large:
            return
        self._received += len(data)
        if self._received > self._max_body:
            self._refuse(None)
        elif self.form is not None:
            self.form.feed(data)
        else:
            super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self.too_large:
            # Everything the client sent has been read: now it can read our answer.
            if self._linger is not None and self._linger.active():
                self._linger.cancel()
            self.loseConnection()
            return
        if self.form is not None:
            self.form.finish()
        super().requestReceived(command, path, version)

    def _refuse(self, length: int | None) -> None:
        """Answer 413 at once, before the body is read, and close the connection."""
        self.too_large = True
        if self.form is not None:
            self.form.discard()
            self.form = None
        elif self.content is not None:
            self.content.close()
            self.content = io.BytesIO()
        # Twisted would send "100 Continue" after this; the client must not send the body.
        self.requestHeaders.removeHeader(b"expect")
        reason = f"upload too large: the limit is {self._max_body} bytes"
        log.warn(
            "refused a request body of {length} bytes from {client}: over the limit of {limit}",
            length=length if length is not None else f"more than {self._max_body}",
            client=getattr(self.client, "host", "?"),
            limit=self._max_body,
        )
        body = f"413 {reason}\n".encode()
        self.channel.transport.write(
            b"HTTP/1.1 413 " + reason.encode("ascii") + b"\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % len(body) + body
        )
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
