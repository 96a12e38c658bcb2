"""What a run did (Report, the summary) and what it says meanwhile (Reporter, the progress bar)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass
class Report:
    """What a run did, for the summary and the exit status."""

    files: int = 0
    bytes: int = 0
    hits: int = 0  # X-Cache: HIT, the proxy had it
    misses: int = 0  # X-Cache: MISS, the proxy fetched it now
    unverified: int = 0  # the index gave no hash we could check
    releases: list[str] = field(default_factory=list)
    sdist_only: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _size(count: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def summary_lines(report: Report) -> list[str]:
    """The end-of-run summary (stdout)."""
    releases = len(report.releases)
    line = (
        f"warmed {report.files} file{'s' if report.files != 1 else ''} ({_size(report.bytes)}) "
        f"of {releases} release{'s' if releases != 1 else ''}"
    )
    if report.hits or report.misses:
        line += f": {report.hits} already cached, {report.misses} newly cached"
    if report.failures:
        line += f"; {len(report.failures)} failed"
    lines = [line]
    if report.sdist_only:
        count = len(report.sdist_only)
        lines.append(
            f"{count} sdist-only release{'s' if count != 1 else ''}, "
            f"dependencies not followed: {', '.join(report.sdist_only)}"
        )
    if report.unverified:
        lines.append(f"{report.unverified} file(s) had no hash on the index to check against")
    return lines


class Reporter:
    """Where a run's messages go: a progress bar on a terminal's stderr, notes, warnings."""

    def __init__(self, err: TextIO, *, quiet: bool = False, progress: bool = False) -> None:
        self._err = err
        self._quiet = quiet
        self._progress: Any = None
        self._task: Any = None
        self._queued = 0
        self._received = 0
        if progress and not quiet:
            # Only for a bar on a terminal: importing rich costs a fifth of a second.
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("warming"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("files  {task.fields[size]}"),
                TimeElapsedColumn(),
                console=Console(file=err),
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._task = self._progress.add_task("warming", total=None, size="0 bytes")
            self._progress.start()

    def note(self, message: str) -> None:
        if not self._quiet:
            self._line(f"note: {message}")

    def warn(self, message: str) -> None:
        self._line(f"warning: {message}")

    def queued(self, count: int = 1) -> None:
        self._queued += count
        if self._progress is not None:
            self._progress.update(self._task, total=self._queued)

    def received(self, count: int) -> None:
        self._received += count
        if self._progress is not None:
            self._progress.update(self._task, size=_size(self._received))

    def finished(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _line(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            self._err.write(text + "\n")
            self._err.flush()
