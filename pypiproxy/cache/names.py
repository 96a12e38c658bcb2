"""The project list on disk: fetched as a stream, sorted in runs, rendered to files, served from them.

A public index lists ~750,000 names (40 MB of HTML). Nothing here holds them all in memory:
the upstream's body is written to a file as it arrives (decoded and capped by the client);
a thread reads it in pieces, sorts the names in runs of RUN names and merges the runs into
``upstream.txt``; another pass merges that with the private names into ``names.txt`` (one
name a line, for the search page) and the four forms clients get (HTML, JSON, each plain and
gzipped), each with its strong ETag. Requests are answered from those files by a producer.

An expired list is served at once while one background fetch refreshes it; a failing
upstream keeps the list we have.
"""

from __future__ import annotations

import gzip
import hashlib
import heapq
import json
import os
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator, Sequence

from twisted.python.failure import Failure
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ..config import UpstreamIndex, redact
from ..interfaces import ToThread
from ..simple import listing
from ..stats import Stats
from ..upstream import UpstreamClient, UpstreamError
from ..upstream.index import UpstreamStatus
from .pages import Coalescer
from .store import FileStore

log = Logger()

RUN = 25_000  # names sorted at once: one C call (holding the GIL) stays short
PIECE = 1024 * 1024  # bytes parsed at once
WRITE_BUFFER = 256 * 1024
RETRY_BACKOFF = 30.0
FORMS = (("html", False), ("html", True), ("json", False), ("json", True))
# Which of the upstreams' names are listed: (a token that changes whenever the answer may,
# a test of a name, or None for every name). The service builds it from --allow-only and
# --private-namespace; it is called in a thread, so it must only read.
Listed = Callable[[], tuple[object, Callable[[str], bool] | None]]


def _everything() -> tuple[object, None]:
    return None, None


@dataclass(frozen=True)
class ListForm:
    """One form of the project list, as a file."""

    path: Path
    size: int
    etag: str


@dataclass(frozen=True)
class ProjectList:
    """The files of one version of the project list."""

    forms: dict[tuple[str, bool], ListForm]
    names: Path  # one normalised name a line, sorted
    count: int

    def form(self, fmt: str, gzipped: bool) -> ListForm:
        return self.forms[(fmt, gzipped)]


class ProjectListCache:
    """The upstreams' project list merged with ``extra_names()`` (the private ones), on disk."""

    def __init__(
        self,
        directory: Path,
        client: UpstreamClient | None,
        upstreams: Sequence[UpstreamIndex],
        ttl: float,
        clock: IReactorTime,
        stats: Stats,
        store: FileStore,
        to_thread: ToThread,
        extra_names: Callable[[], tuple[str, ...]],
        listed: Listed = _everything,
    ) -> None:
        self._listed = listed
        self._directory = directory
        self._client = client
        self._upstreams = tuple(upstreams) if client is not None else ()
        self._ttl = ttl
        self._clock = clock
        self._stats = stats
        self._store = store
        self._to_thread = to_thread
        self._extra_names = extra_names
        self._fetched_at: float | None = None  # of upstream.txt; None: we have none
        self._retry_at = 0.0
        self._runs = Coalescer()  # one fetch, one rendering at a time
        self._previous: list[Path] = []
        self._current: tuple[tuple[float | None, tuple[str, ...], object], ProjectList] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        try:
            self._fetched_at = float(json.loads((directory / "upstream.json").read_bytes())["fetched_at"])
        except (OSError, ValueError, KeyError, TypeError):
            self._fetched_at = None  # never fetched (or the file is damaged): fetched on demand

    @property
    def names_path(self) -> Path:
        """One normalised name a line, sorted: every name the list served last held."""
        return self._directory / "names.txt"

    async def project_list(self) -> ProjectList:
        """The current list's files; raises UpstreamError when there is none, no upstream
        can give one, and there are no private names either."""
        now = self._clock.seconds()
        if self._upstreams and self._fetched_at is None:
            try:
                await self._runs.run("fetch", self._fetch_all)  # nothing to serve meanwhile
            except UpstreamError as e:
                if not self._extra_names():
                    raise
                log.warn("listing private projects only: {error}", error=str(e))
        elif self._upstreams and self._expired(now):
            # Answered at once from what we have; one fetch refreshes it in the background
            # (a failure is logged there and keeps this list).
            self._stats.incr("stale_while_revalidate")
            self._runs.run("fetch", self._fetch_all).addErrback(self._background_failed)
        return await self._rendered()

    def _background_failed(self, failure: Failure) -> None:
        if not failure.check(UpstreamError):  # those are logged where they happen
            log.failure("refreshing the project list failed", failure)

    def _expired(self, now: float) -> bool:
        assert self._fetched_at is not None
        return now >= self._fetched_at + self._ttl and now >= self._retry_at

    async def _fetch_all(self) -> None:
        assert self._client is not None
        raws: list[tuple[Path, str]] = []
        try:
            for upstream in self._upstreams:
                raws.append(await self._download(upstream))
            count = await self._to_thread(self._sort_names, raws, self._directory / "upstream.txt")
        except UpstreamError as e:
            self._stats.incr("upstream_errors")
            log.warn("could not fetch the project list: {error}", error=str(e))
            self._retry_at = self._clock.seconds() + min(self._ttl, RETRY_BACKOFF)
            raise
        finally:
            for path, _ in raws:
                path.unlink(missing_ok=True)
        self._fetched_at = self._clock.seconds()
        self._retry_at = 0.0
        await self._to_thread(
            self._store.write, self._directory / "upstream.json", json.dumps({"fetched_at": self._fetched_at}).encode()
        )
        log.info("project list fetched: {count} names", count=count)

    async def _download(self, upstream: UpstreamIndex) -> tuple[Path, str]:
        """The upstream's list, decoded, into a temporary file (written as it arrives)."""
        assert self._client is not None
        self._stats.incr("upstream_page_fetches")
        response = await self._client.open_page(upstream.url)
        if response.code != 200:
            response.abort()
            raise UpstreamStatus(f"{redact(upstream.url)} answered {response.code}", response.code)
        path = self._store.temporary("project-list")
        with open(path, "wb", buffering=WRITE_BUFFER) as raw:
            try:
                await response.stream(raw.write)
            except BaseException:
                raw.close()
                path.unlink(missing_ok=True)
                raise
        return path, response.header("Content-Type") or ""

    def _sort_names(self, raws: list[tuple[Path, str]], final: Path) -> int:  # in a thread
        """Every name of the raw lists, normalised, sorted, each once, into ``final``."""
        runs: list[Path] = []
        batch: list[str] = []

        def flush() -> None:
            if batch:
                run = self._store.temporary("names-run")
                run.write_text("".join(f"{name}\n" for name in sorted(set(batch))))
                runs.append(run)
                batch.clear()

        def add(name: str) -> None:
            batch.append(name)
            if len(batch) >= RUN:
                flush()

        try:
            for path, content_type in raws:
                scanner = listing.ListScanner(content_type, add)
                with open(path, "rb") as raw:
                    while piece := raw.read(PIECE):
                        scanner.feed(piece)
                scanner.close()
            flush()
            return self._write_lines(final, _merged(runs, ()))
        except ValueError as e:  # IndexFormatError
            raise UpstreamError(f"the project list is not a Simple API page: {e}") from None
        finally:
            for run in runs:
                run.unlink(missing_ok=True)

    def _write_lines(self, final: Path, names: Iterable[str]) -> int:
        temporary = self._store.temporary(final.name)
        count = 0
        try:
            with open(temporary, "w", buffering=WRITE_BUFFER) as out:
                for name in names:
                    out.write(name + "\n")
                    count += 1
            self._store.commit(temporary, final)
        finally:
            temporary.unlink(missing_ok=True)
        return count

    # Rendering --------------------------------------------------------------------

    async def _rendered(self) -> ProjectList:
        """The forms for the upstream list we hold and the private names now (rendered once)."""
        while True:
            token, shown = self._listed()
            version = (self._fetched_at, tuple(self._extra_names()), token)
            if self._current is not None and self._current[0] == version:
                return self._current[1]
            await self._runs.run("render", lambda: self._render(version, shown))

    async def _render(self, version: tuple[float | None, tuple[str, ...], object], shown) -> None:
        fetched_at, extra, _token = version
        upstream = self._directory / "upstream.txt" if fetched_at is not None else None
        # Our own files (another process on the directory serves its own): the pid in the name.
        digest = hashlib.blake2b(repr(version).encode(), digest_size=8).hexdigest()
        rendered = await self._to_thread(
            self._render_files, upstream, sorted(extra), f"{os.getpid()}-{digest}", shown
        )
        self._current = (version, rendered)
        current = [form.path for form in rendered.forms.values()]
        for stale in self._previous:
            if stale not in current:
                stale.unlink(missing_ok=True)  # producers sending it keep it open until done
        self._previous = current

    def _render_files(
        self, upstream: Path | None, extra: list[str], generation: str, shown: Callable[[str], bool] | None
    ) -> ProjectList:  # in a thread
        names: Iterator[str] = iter(())
        if upstream is not None:
            names = _lines(upstream) if shown is None else filter(shown, _lines(upstream))
        writers = {key: _FormWriter(self._store, self._directory, key, generation) for key in FORMS}
        plain = {fmt: writers[(fmt, False)] for fmt in ("html", "json")}
        zipped = {fmt: writers[(fmt, True)] for fmt in ("html", "json")}
        count = 0
        names_temporary = self._store.temporary("names")
        try:
            with open(names_temporary, "w", buffering=WRITE_BUFFER) as names_out:
                html: list[str] = [listing.HTML_HEAD]
                js: list[str] = [listing.JSON_HEAD]
                for name in _merged([], extra, names):
                    names_out.write(name + "\n")
                    html.append(listing.html_line(name))
                    js.append(listing.json_item(name, first=count == 0))
                    count += 1
                    if len(html) >= 4096:
                        _flush(html, plain["html"], zipped["html"])
                        _flush(js, plain["json"], zipped["json"])
                html.append(listing.HTML_TAIL)
                js.append(listing.JSON_TAIL)
                _flush(html, plain["html"], zipped["html"])
                _flush(js, plain["json"], zipped["json"])
            forms = {}
            for fmt in ("html", "json"):
                forms[(fmt, False)] = plain[fmt].commit(None)
                forms[(fmt, True)] = zipped[fmt].commit(forms[(fmt, False)].etag)
            self._store.commit(names_temporary, self.names_path)
        finally:
            for writer in writers.values():
                writer.discard()
            names_temporary.unlink(missing_ok=True)
        return ProjectList(forms=forms, names=self.names_path, count=count)


def _flush(parts: list[str], plain: "_FormWriter", zipped: "_FormWriter") -> None:
    data = "".join(parts).encode()
    parts.clear()
    plain.write(data)
    zipped.write(data)


class _FormWriter:
    """One form's file being written (gzipped or not), with the plain body's digest."""

    def __init__(self, store: FileStore, directory: Path, key: tuple[str, bool], generation: str) -> None:
        fmt, gzipped = key
        self._store = store
        self._final = directory / f"form-{generation}.{fmt}{'.gz' if gzipped else ''}"
        self._temporary = store.temporary(self._final.name)
        self._fmt = fmt
        self._file: IO[bytes] = open(self._temporary, "wb", buffering=WRITE_BUFFER)
        self._gzip = gzip.GzipFile(fileobj=self._file, mode="wb", compresslevel=6, mtime=0) if gzipped else None
        self._digest = hashlib.blake2b(digest_size=16)

    def write(self, data: bytes) -> None:
        self._digest.update(data)
        (self._gzip or self._file).write(data)

    def commit(self, plain_etag: str | None) -> ListForm:
        if self._gzip is not None:
            self._gzip.close()
        self._file.close()
        # The same ETags a page rendered in memory has: the gzipped form's is the plain one's.
        etag = plain_etag[:-1] + '-gzip"' if plain_etag else f'"{self._fmt}-{self._digest.hexdigest()}"'
        self._store.commit(self._temporary, self._final)
        return ListForm(self._final, self._final.stat().st_size, etag)

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._temporary.unlink(missing_ok=True)


def _lines(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield line.rstrip("\n")


def _merged(runs: list[Path], extra: Iterable[str], *more: Iterable[str]) -> Iterator[str]:
    """The sorted runs' names and the sorted others, merged, each once."""
    sources = [_lines(run) for run in runs] + [iter(extra), *more]
    for name, _ in groupby(heapq.merge(*sources)):
        yield name


