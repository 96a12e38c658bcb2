"""The guard's decisions: which of an upstream page's files are offered, and why the rest are not."""

# -*- test-case-name: tests.test_guard -*-

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from packaging.utils import canonicalize_name, canonicalize_version
from twisted.internet.interfaces import IReactorTime

from .. import simple
from ..cache import Withheld
from ..config import format_duration
from .rules import BlockRule, WatchedFile, parse_allow, parse_block

HELD = "held_files"
BLOCKED = "blocked_files"
REFUSED = "refused_files"


@dataclass(frozen=True)
class Rules:
    """The rules in force at one moment; a new object whenever a file's rules change."""

    block: tuple[BlockRule, ...] = ()
    allow: frozenset[str] | None = None  # None: every project


@dataclass(frozen=True)
class Applied:
    """An upstream page with the rules applied: what is offered, what is not, and until when
    this holds (the moment the first held file comes of age)."""

    page: simple.ProjectPage
    withheld: dict[str, Withheld]
    valid_until: float
    closed: str | None = None  # why no file of the project is served, listed or not


class Guard:
    """``--min-age``, ``--block``, ``--allow-only`` and PEP 792 quarantine, for upstream pages.

    Private projects never reach it: the private tier answers them in front of it.
    """

    def __init__(
        self,
        clock: IReactorTime,
        min_age: float | None = None,
        exempt: tuple[str, ...] = (),
        block: Path | None = None,
        allow_only: Path | None = None,
    ) -> None:
        self._clock = clock
        self.min_age = min_age
        self._exempt = frozenset(canonicalize_name(n) for n in exempt)
        self._block = WatchedFile(block, parse_block, clock, "--block") if block else None
        self._allow = WatchedFile(allow_only, parse_allow, clock, "--allow-only") if allow_only else None
        self._rules = Rules()
        self.rules()

    def describe(self) -> str:
        """One line for the start-up log."""
        parts = []
        if self.min_age is not None:
            parts.append(f"--min-age {format_duration(self.min_age)}" + (
                f" (exempt: {', '.join(sorted(self._exempt))})" if self._exempt else ""))
        if self._block is not None:
            parts.append(f"--block {self._block.path} ({len(self._block.rules)} rules)")
        if self._allow is not None:
            parts.append(f"--allow-only {self._allow.path} ({len(self._allow.rules)} projects)")
        return ", ".join(parts) or "no rules (quarantined projects are still refused)"

    def lines(self) -> tuple[str, ...]:
        """The rules in force now, one line each, for people (the landing page); none: empty.
        Blocked lines are shown as written, at most 50; the allow list by its size."""
        rules = self.rules()
        lines = []
        if self.min_age is not None:
            lines.append(f"files newer than {format_duration(self.min_age)} are held back" + (
                f" (except {', '.join(sorted(self._exempt))})" if self._exempt else ""))
        lines += [f"blocked: {rule.line}" for rule in rules.block[:50]]
        if len(rules.block) > 50:
            lines.append(f"… and {len(rules.block) - 50} more blocked lines")
        if rules.allow is not None:
            lines.append(f"only the {len(rules.allow)} projects of the allow list are served")
        return tuple(lines)

    def rules(self) -> Rules:
        """The rules in force now (the files are re-read when they change)."""
        block = self._block.current() if self._block else ()
        allow = self._allow.current() if self._allow else None
        if block is not self._rules.block or allow is not self._rules.allow:
            self._rules = Rules(block, allow)
        return self._rules

    def project_refusal(self, name: str) -> str | None:
        """Why an upstream project is not served at all, or None."""
        allow = self.rules().allow
        if allow is not None and name not in allow:
            return f"project {name!r} is not in this server's --allow-only list"
        return None

    def apply(self, page: simple.ProjectPage, rules: Rules | None = None, now: float | None = None) -> Applied:
        """The page as offered: quarantined, blocked and too-new files left out. Pure given
        ``rules`` and ``now`` (read in the reactor's thread), so it may run in another."""
        name = canonicalize_name(page.name)
        if page.quarantined:
            reason = f"project {name!r} is quarantined by its index" + (
                f": {page.status_reason}" if page.status_reason else "")
            withheld = {e.filename: Withheld(e, 404, reason, REFUSED) for e in page.files}
            return Applied(replace(page, files=(), versions=()), withheld, math.inf, closed=reason)
        now = self._clock.seconds() if now is None else now
        rules = self.rules() if rules is None else rules
        offered: list[simple.FileEntry] = []
        withheld: dict[str, Withheld] = {}
        valid_until = math.inf
        for entry in page.files:
            verdict, release = self._verdict(rules, name, entry, now)
            if verdict is None:
                offered.append(entry)
            else:
                withheld[entry.filename] = verdict
                if release is not None:
                    valid_until = min(valid_until, release)
        if not withheld:
            return Applied(page, {}, valid_until)
        return Applied(replace(page, files=tuple(offered), versions=_versions_left(page, offered, withheld)),
                       withheld, valid_until)

    def refusal(self, entry: simple.FileEntry) -> Withheld | None:
        """Why a file may not be served, from its entry alone (quarantine is the page's)."""
        try:
            name, _version = simple.parse_filename(entry.filename)
        except simple.BadFilename:
            return None
        reason = self.project_refusal(name)
        if reason is not None:
            return Withheld(entry, 404, reason, REFUSED)
        return self._verdict(self.rules(), name, entry, self._clock.seconds())[0]

    def _verdict(
        self, rules: Rules, name: str, entry: simple.FileEntry, now: float
    ) -> tuple[Withheld | None, float | None]:
        """(why not, or None; when a held file comes of age)."""
        matching = [rule for rule in rules.block if rule.name == name]
        if matching:
            version = entry.version
            for rule in matching:
                if rule.matches(name, version):
                    path = self._block.path if self._block else "--block"
                    return Withheld(entry, 403, f"{entry.filename} is blocked by the rule {rule.line!r} in {path}",
                                    BLOCKED), None
        if self.min_age is None or name in self._exempt:
            return None, None
        uploaded = _timestamp(entry.upload_time)
        if uploaded is None:
            return None, None  # documented: without an upload time there is nothing to wait for
        release = uploaded + self.min_age
        if now >= release:
            return None, None
        when = datetime.fromtimestamp(release, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        reason = (f"{entry.filename} is held back by --min-age {format_duration(self.min_age)}: uploaded "
                  f"{entry.upload_time}, available from {when}")
        return Withheld(entry, 404, reason, HELD), release


def _timestamp(upload_time: str | None) -> float | None:
    """PEP 700's ``upload-time`` (ISO 8601, UTC) as a timestamp; None if absent or unreadable."""
    if not upload_time:
        return None
    try:
        moment = datetime.fromisoformat(upload_time)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _versions_left(
    page: simple.ProjectPage, offered: list[simple.FileEntry], withheld: dict[str, Withheld]
) -> tuple[str, ...]:
    """PEP 700 ``versions`` without those whose every file was left out."""
    kept = {canonicalize_version(v, strip_trailing_zero=False) for v in map(simple.version_of,
            (e.filename for e in offered)) if v is not None}
    gone = {canonicalize_version(v, strip_trailing_zero=False) for v in map(simple.version_of, withheld)
            if v is not None} - kept
    return tuple(v for v in page.all_versions() if canonicalize_version(v, strip_trailing_zero=False) not in gone)
