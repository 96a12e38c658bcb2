"""The audit trail: one line per change or refusal that matters, naming the user, never a secret."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger

log = Logger(namespace="pypiproxy.audit")


class Audit:
    """Each event goes to the server's log and, as a JSON line, to ``team/audit.log``, which
    the console commands write too: one place that tells who did what, from any process."""

    def __init__(self, path: Path, run: Callable[..., Any] | None = None) -> None:
        self.path = path
        # A server gives its thread runner: the append is a disk write, kept off the reactor.
        self._run = run

    def record(self, event: str, user: str | None, **details: Any) -> defer.Deferred[None]:
        """Note one event: logged now, appended to the file (in a thread, in a server); the
        Deferred fires once it is in the file, so an answer can wait for its audit line."""
        who = user or "anonymous"
        text = " ".join(f"{key}={value!r}" for key, value in details.items() if value is not None)
        log.info("audit: {event} by {user} {details}", event=event, user=who, details=text)
        line = {"time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "event": event,
                "user": who, **{k: v for k, v in details.items() if v is not None}}
        data = (json.dumps(line, sort_keys=True) + "\n").encode()
        if self._run is None:
            self._append(data)
            return defer.succeed(None)
        return self._run(self._append, data)

    def _append(self, data: bytes) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_APPEND: lines from several processes never overwrite each other.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as e:
            log.error("cannot write the audit log {path}: {error}", path=str(self.path), error=e.strerror)
