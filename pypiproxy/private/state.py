"""Small JSON state files shared by processes: read again when they change, written atomically under a lock."""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

T = TypeVar("T")


class StateFile:
    """One JSON object in a file that several processes (servers, console commands) share.

    Reading costs a ``stat`` while nothing changed: what was parsed is kept with the file's
    (inode, mtime, size), and every write is a new file renamed into place, so any change
    made by any process is seen by the next read. Read-modify-write runs under an exclusive
    ``flock`` on a lock file beside it, so two writers never lose each other's change.
    """

    def __init__(self, path: Path, mode: int = 0o644) -> None:
        self.path = path
        self._mode = mode
        self._lock = path.with_name(path.name + ".lock")
        self._known: tuple[tuple[int, int, int], dict[str, Any]] | None = None

    def read(self) -> dict[str, Any]:
        """The current content (do not change it: use ``update``)."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._known = None
            return {}
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._known is not None and self._known[0] == stamp:
            return self._known[1]
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except ValueError as e:
            raise StateError(f"{self.path} is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise StateError(f"{self.path} does not hold a JSON object")
        self._known = (stamp, data)
        return data

    def update(self, change: Callable[[dict[str, Any]], T]) -> T:
        """Apply ``change`` to a fresh copy of the content and write it back (blocking)."""
        with self._locked():
            self._known = None
            data = json.loads(json.dumps(self.read()))  # a deep copy the change may edit
            result = change(data)
            self._write(data)
            return result

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock, "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _write(self, data: dict[str, Any]) -> None:
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self._mode)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.path)


class StateError(ValueError):
    """A state file that cannot be read; the message names it."""
