"""The ``--block`` and ``--allow-only`` files: parsed line by line, re-read when they change."""

# -*- test-case-name: tests.test_guard -*-

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Generic, TypeVar

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ..simple import VALID_NAME

log = Logger()

# How often a rules file's mtime is looked at: edits take effect within this, and the file
# is not touched per request.
CHECK_INTERVAL = 2.0

T = TypeVar("T")


class RuleError(ValueError):
    """A line of a rules file that means nothing we can apply; the message names it."""


@dataclass(frozen=True)
class BlockRule:
    """One line of ``--block``: a project, and optionally which of its versions."""

    line: str  # as written, without its comment
    name: str  # normalised
    specifier: SpecifierSet

    def matches(self, name: str, version: str | None) -> bool:
        if name != self.name:
            return False
        if not self.specifier:
            return True
        if version is None:
            return False
        try:
            # A pre-release in the range is blocked too (``foo<2`` blocks ``foo 1.5b1``).
            return self.specifier.contains(Version(version), prereleases=True)
        except InvalidVersion:
            return False


def _lines(text: str) -> list[tuple[int, str]]:
    """(line number, content) of each line that says something; ``#`` starts a comment."""
    out = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if line:
            out.append((number, line))
    return out


def parse_block(text: str, source: str) -> tuple[BlockRule, ...]:
    """``name``, ``name==1.2.3``, ``name<2``, ``name==1.*``: one requirement a line."""
    rules = []
    for number, line in _lines(text):
        try:
            requirement = Requirement(line)
        except InvalidRequirement as e:
            raise RuleError(f"{source}:{number}: not a requirement: {line!r} ({e})") from None
        if requirement.marker is not None:
            raise RuleError(f"{source}:{number}: markers mean nothing to a server, remove ';...': {line!r}")
        if requirement.url is not None:
            raise RuleError(f"{source}:{number}: a URL means nothing here, name versions instead: {line!r}")
        if requirement.extras:
            raise RuleError(f"{source}:{number}: extras mean nothing here, remove '[...]': {line!r}")
        rules.append(BlockRule(line, canonicalize_name(requirement.name), requirement.specifier))
    return tuple(rules)


def parse_allow(text: str, source: str) -> frozenset[str]:
    """Project names, one a line, as normalised names."""
    names = set()
    for number, line in _lines(text):
        if not VALID_NAME.match(line):
            raise RuleError(f"{source}:{number}: not a project name: {line!r}")
        names.add(canonicalize_name(line))
    return frozenset(names)


def load(path: Path, parse: Callable[[str, str], T]) -> T:
    """Parse a rules file now; RuleError (naming the file, and the line) if it cannot be."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RuleError(f"cannot read {str(path)!r}: {getattr(e, 'strerror', None) or e}") from None
    return parse(text, str(path))


class WatchedFile(Generic[T]):
    """A rules file, parsed at start and again whenever it changes.

    Its mtime is looked at (one ``stat``) when the rules are asked for, at most every
    ``interval`` seconds, never per request; so an edit takes effect within seconds without
    a restart. The file is small and read only when it changed. A file that no longer
    parses keeps the rules it had (an editor's half-written save must not open the gate),
    and says which line is wrong.
    """

    def __init__(
        self,
        path: Path,
        parse: Callable[[str, str], T],
        clock: IReactorTime,
        option: str,
        interval: float = CHECK_INTERVAL,
    ) -> None:
        self.path = path
        self._parse = parse
        self._clock = clock
        self._option = option
        self._interval = interval
        self._stamp = self._stat()
        self.rules: T = load(path, parse)
        self._next_check = clock.seconds() + interval

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def current(self) -> T:
        """The rules in force (the same object while the file has not changed)."""
        now = self._clock.seconds()
        if now >= self._next_check:
            self._next_check = now + self._interval
            self._check()
        return self.rules

    def _check(self) -> None:
        stamp = self._stat()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        if stamp is None:
            log.error("{option} {path} is gone; keeping its previous rules", option=self._option, path=str(self.path))
            return
        try:
            rules = load(self.path, self._parse)
        except RuleError as e:
            log.error("{option} no longer parses, keeping the previous rules: {error}", option=self._option,
                      error=str(e))
            return
        if rules != self.rules:
            before, after = _texts(self.rules), _texts(rules)
            log.info(
                "{option} {path} changed: added {added}, removed {removed}",
                option=self._option,
                path=str(self.path),
                added=sorted(after - before),
                removed=sorted(before - after),
            )
            self.rules = rules


def _texts(rules: object) -> set[str]:
    """Each rule as its line reads, to say what an edit changed."""
    return {rule.line if isinstance(rule, BlockRule) else str(rule) for rule in rules}  # type: ignore[attr-defined]
