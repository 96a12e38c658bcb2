"""``pypiproxy import``: move private packages in from folders of files or from another index."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence, TextIO

from packaging.utils import canonicalize_name
from twisted.internet import defer, threads

from ..cache import FileStore
from ..config import UpstreamIndex, redact
from ..private import PrivateStore, Refused, check_distribution
from ..simple import BadFilename, FileEntry, is_distribution_name, parse_filename
from ..simple.hashes import sha256_of
from ..upstream import ProjectMissing, UpstreamClient, UpstreamError, fetch_project, fetch_project_list
from .arguments import add_credentials_option, index_url, index_with_credentials, positive
from .reactor import run_command

DEFAULT_JOBS = 4
DEFAULT_TIMEOUT = 60.0


@dataclass
class Report:
    """What happened to each file, printed as it happens and summed up at the end."""

    out: TextIO
    imported: int = 0
    skipped: int = 0
    ignored: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)

    def done(self, filename: str, project: str) -> None:
        self.imported += 1
        self.out.write(f"imported {filename} ({project})\n")

    def skip(self, filename: str) -> None:
        self.skipped += 1
        self.out.write(f"skipped  {filename}: already in the private store\n")

    def refuse(self, what: str, reason: str) -> None:
        self.refused.append((what, reason))
        self.out.write(f"refused  {what}: {reason}\n")

    def finish(self, err: TextIO) -> int:
        """The summary; the exit status is 1 when anything was refused."""
        line = f"imported {self.imported}, skipped {self.skipped} (already there), refused {len(self.refused)}"
        if self.ignored:
            line += f", ignored {self.ignored} other files (not wheels or sdists)"
        self.out.write(line + "\n")
        if not self.refused:
            return 0
        err.write(f"pypiproxy import: {len(self.refused)} refused:\n")
        for what, reason in self.refused:
            err.write(f"  {what}: {reason}\n")
        return 1


class Importer:
    """Moves files into a cache directory's private store, checked as uploads are."""

    def __init__(self, cache_dir: Path, report: Report) -> None:
        self._files = FileStore(cache_dir)  # for its temporary folder, on the same disk
        self.store = PrivateStore(cache_dir / "private", self._files.temporary)
        self.report = report

    def close(self) -> None:
        shutil.rmtree(self._files.tmp, ignore_errors=True)

    def _existing(self, filename: str, sha256: str | None) -> bool | None:
        """True: the same file is stored (skip); False: nothing there; None: a different one."""
        project, _ = parse_filename(filename)
        stored = self.store.exists(project, filename)
        if stored is None:
            return False
        if sha256 is None or stored.sha256 in ("", sha256):
            return True
        return None

    def _differs(self, what: str, filename: str) -> None:
        self.report.refuse(what, f"a different file named {filename} is already in the private store")

    # Folders -----------------------------------------------------------------------------

    def import_paths(self, paths: Sequence[Path]) -> None:
        """Blocking: every wheel and sdist below the paths, in name order."""
        for source in _walk(paths, self.report):
            self.import_file(source)

    def import_file(self, source: Path) -> None:
        filename = source.name
        try:
            existing = self._existing(filename, None)
            if existing:
                existing = self._existing(filename, sha256_of(source))
                if existing:
                    self.report.skip(filename)
                else:
                    self._differs(str(source), filename)
                return
            temporary = self.store.temporary(filename)
            try:
                shutil.copyfile(source, temporary)
                dist = check_distribution(temporary, filename)
                mtime = datetime.fromtimestamp(source.stat().st_mtime, timezone.utc)
                self.store.add(
                    temporary,
                    dist,
                    upload_time=mtime.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    source=f"import {source}",
                )
            finally:
                temporary.unlink(missing_ok=True)
        except Refused as e:
            if e.code == 409:
                self.report.skip(filename)  # imported meanwhile by someone else
            else:
                self.report.refuse(str(source), e.reason)
            return
        except OSError as e:
            self.report.refuse(str(source), e.strerror or str(e))
            return
        self.report.done(filename, dist.project)

    # Another index -----------------------------------------------------------------------

    async def import_index(
        self,
        reactor: Any,
        index: UpstreamIndex,
        projects: Sequence[str],
        *,
        jobs: int = DEFAULT_JOBS,
        timeout: float = DEFAULT_TIMEOUT,
        ca_file: Path | None = None,
    ) -> None:
        """Every file of the named projects (or of every project the index lists)."""
        client = UpstreamClient(reactor, [index], timeout, ca_file)
        limit = defer.DeferredSemaphore(jobs)
        try:
            names = [canonicalize_name(p) for p in projects] or await self._list(client, index)
            pages = await defer.gatherResults(
                [limit.run(lambda n=n: defer.ensureDeferred(self._page(client, index, n))) for n in names]
            )
            work = [
                limit.run(lambda n=n, e=e: defer.ensureDeferred(self._import_entry(client, n, e)))
                for n, entries in zip(names, pages, strict=True)
                for e in entries
            ]
            await defer.gatherResults(work)
        finally:
            await client.close()

    async def _list(self, client: UpstreamClient, index: UpstreamIndex) -> list[str]:
        try:
            return list(await fetch_project_list(client, index.url))
        except UpstreamError as e:
            self.report.refuse(redact(index.url), f"cannot list the index's projects: {e}")
            return []

    async def _page(self, client: UpstreamClient, index: UpstreamIndex, name: str) -> list[FileEntry]:
        try:
            page = (await fetch_project(client, index.url, name)).page
        except ProjectMissing:
            self.report.refuse(name, f"no such project on {redact(index.url)}")
            return []
        except UpstreamError as e:
            self.report.refuse(name, f"cannot read its page: {e}")
            return []
        entries = [e for e in page.files if is_distribution_name(e.filename)]
        self.report.ignored += len(page.files) - len(entries)
        return entries

    async def _import_entry(self, client: UpstreamClient, name: str, entry: FileEntry) -> None:
        filename = entry.filename
        existing = self._existing(filename, entry.sha256)
        if existing:
            self.report.skip(filename)
            return
        if existing is None:
            self._differs(filename, filename)
            return
        temporary = self.store.temporary(filename)
        try:
            response = await client.get(entry.url)
            if response.code != 200:
                response.abort()
                raise UpstreamError(f"download answered {response.code}")
            with open(temporary, "wb") as f:
                await response.stream(f.write)
            dist = await threads.deferToThread(
                check_distribution,
                temporary,
                filename,
                name=name,
                digests=entry.hashes,
                requires_python=entry.requires_python,
            )
            await threads.deferToThread(
                self.store.add, temporary, dist, upload_time=entry.upload_time, source="import from an index"
            )
        except Refused as e:
            if e.code == 409:
                self.report.skip(filename)
            else:
                self.report.refuse(filename, e.reason)
            return
        except (UpstreamError, OSError) as e:
            self.report.refuse(filename, str(e))
            return
        finally:
            temporary.unlink(missing_ok=True)
        self.report.done(filename, dist.project)


def _walk(paths: Iterable[Path], report: Report) -> Iterator[Path]:
    """Wheels and sdists in the paths (folders recursively), by name; others are counted."""
    for path in paths:
        if path.is_file():
            candidates: Iterable[Path] = [path]
        elif path.is_dir():
            candidates = sorted(
                Path(folder, name)
                for folder, _dirs, names in os.walk(path)
                for name in names
            )
        else:
            report.refuse(str(path), "no such file or folder")
            continue
        for candidate in candidates:
            if is_distribution_name(candidate.name):
                yield candidate
            elif candidate.name.endswith(".whl"):
                # Meant to be a wheel, so not to be passed over in silence.
                try:
                    parse_filename(candidate.name)
                except BadFilename as e:
                    report.refuse(str(candidate), str(e))
            else:
                report.ignored += 1


# Command line ----------------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    """Add import's options to its subcommand parser."""
    parser.description = (
        "Move private packages into a pypiproxy cache directory: the wheels and sdists in\n"
        "folders (searched recursively: a pypiserver packages folder, a devpi export, a\n"
        "localshop media folder), or every file of projects on another Simple API index.\n"
        "Files are checked as uploads are; files already there are skipped."
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="a folder or a file")
    parser.add_argument(
        "--cache-dir", required=True, type=Path, metavar="DIR", help="the server's --cache-dir"
    )
    parser.add_argument(
        "--from-index",
        type=index_url("--from-index"),
        metavar="URL",
        help="a Simple API root to import from; https://user:pass@host/simple/ for basic auth",
    )
    parser.add_argument(
        "--project",
        dest="projects",
        action="append",
        default=[],
        metavar="NAME",
        help="with --from-index: import this project; repeatable [default: every project listed]",
    )
    parser.add_argument("--index-ca", type=Path, metavar="FILE", help="PEM bundle to verify the index's TLS with")
    parser.add_argument("-j", "--jobs", type=positive(int), default=DEFAULT_JOBS, metavar="N", help="downloads at a time")
    parser.add_argument("--timeout", type=positive(), default=DEFAULT_TIMEOUT, metavar="SECONDS", help="per request")
    add_credentials_option(parser)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Do the import; 0 when nothing was refused, 1 when something was, 2 for bad usage."""
    out, err = out or sys.stdout, err or sys.stderr
    prog = "pypiproxy import"
    if bool(args.paths) == bool(args.from_index):
        err.write(f"{prog}: error: give either folders (PATH...) or --from-index URL\n")
        return 2
    if args.projects and not args.from_index:
        err.write(f"{prog}: error: --project needs --from-index\n")
        return 2
    if args.index_ca is not None and not args.index_ca.is_file():
        err.write(f"{prog}: error: --index-ca: cannot read {str(args.index_ca)!r}\n")
        return 2
    try:
        from_index = index_with_credentials(args.from_index, args.upstream_credentials)
    except ValueError as e:
        err.write(f"{prog}: error: {e}\n")
        return 2
    report = Report(out)
    try:
        importer = Importer(args.cache_dir, report)
    except OSError as e:
        err.write(f"{prog}: error: --cache-dir {str(args.cache_dir)!r}: {e.strerror}\n")
        return 2
    try:
        if args.paths:
            importer.import_paths(args.paths)
        else:

            async def main(reactor: Any) -> int:
                await importer.import_index(
                    reactor, from_index, args.projects, jobs=args.jobs, timeout=args.timeout, ca_file=args.index_ca
                )
                return 0

            status = run_command(prog, main)
            if status:
                return status
    finally:
        importer.close()
    return report.finish(err)
