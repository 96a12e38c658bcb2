"""``--groups``: Apache ``AuthGroupFile`` lines (``admin: alice``), read again when the file changes."""

from __future__ import annotations

from pathlib import Path

from twisted.logger import Logger

log = Logger()

ADMIN = "admin"
UPLOAD = "upload"


class GroupsError(ValueError):
    """A group file we cannot use; the message names the file and the line."""


def load_groups(path: Path) -> dict[str, frozenset[str]]:
    """Each group's members; a line is ``group: user user…``, ``#`` starts a comment."""
    groups: dict[str, set[str]] = {}
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise GroupsError(f"--groups: cannot read {str(path)!r}: {e}") from None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        group, colon, members = line.partition(":")
        group = group.strip()
        if not colon or not group or " " in group:
            raise GroupsError(f"--groups {str(path)!r} line {number}: not 'group: user user...'")
        groups.setdefault(group, set()).update(members.split())
    return {group: frozenset(users) for group, users in groups.items()}


class Groups:
    """Who is in which group, from a file read again whenever it changes; without a file,
    every user is in ``upload`` and no one is an admin."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._groups = load_groups(path) if path is not None else {}
        self._stamp = _stamp(path) if path is not None else None

    def _current(self) -> dict[str, frozenset[str]]:
        if self._path is None:
            return self._groups
        stamp = _stamp(self._path)
        if stamp != self._stamp:
            try:
                self._groups = load_groups(self._path)
                log.info("reloaded the groups from {path}", path=str(self._path))
            except GroupsError as e:
                log.error("keeping the old groups: {error}", error=str(e))
            self._stamp = stamp
        return self._groups

    def is_admin(self, user: str) -> bool:
        return user in self._current().get(ADMIN, ())

    def may_upload(self, user: str) -> bool:
        if self._path is None:
            return True
        groups = self._current()
        return user in groups.get(UPLOAD, ()) or user in groups.get(ADMIN, ())


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)
