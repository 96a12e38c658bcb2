"""The cache directory's layout: content-addressed files, atomic writes, per-process temporaries."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import BinaryIO, Mapping

from ..simple import FileEntry
from ..simple.hashes import known

# A cached file's name: its sha256, or "u" and 63 hex digits of its URL's for an index
# that gives no sha256.
KEY = re.compile(r"^(?:[0-9a-f]{64}|u[0-9a-f]{63})\Z")
# Metadata beside a file: ``<key>.whl.metadata`` taken from the cached (verified) wheel itself;
# ``<key>.<algorithm>-<digest>.metadata`` an upstream's, under the hash its page announced (so
# a page announcing other metadata for the same file never reads or replaces it); and
# ``<key>.url-<hash of its URL>.metadata`` an upstream's whose page announced no hash we know.
METADATA = re.compile(
    r"^(?P<key>[0-9a-f]{64}|u[0-9a-f]{63})\.(?:(?P<wheel>whl)|(?P<algorithm>[a-z0-9_]{1,20})-"
    r"(?P<digest>[0-9a-f]{32,128})|url-(?P<url>[0-9a-f]{32}))\.metadata\Z"
)
_HEX = re.compile(r"^[0-9a-f]{32,128}\Z")


def cache_key(entry: FileEntry) -> str:
    """The file's name in the store: its sha256, or for an index without one, its URL's."""
    sha256 = entry.sha256
    if sha256 and KEY.match(sha256):
        return sha256
    return "u" + hashlib.sha256(entry.url.encode()).hexdigest()[:63]


class FileStore:
    """Plain files with atomic renames: ``files/ab/<key>``, temporaries in ``tmp/``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files = directory / "files"
        self._tmp_root = directory / "tmp"
        # One temporary folder per process, so processes sharing the directory never
        # remove each other's downloads in progress.
        self.tmp = self._tmp_root / f"{socket.gethostname()}.{os.getpid()}"
        self.files.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.files / key[:2] / key

    def metadata_path(self, key: str) -> Path:
        """Where the METADATA extracted from the cached wheel ``key`` is kept."""
        return self.files / key[:2] / f"{key}.whl.metadata"

    def upstream_metadata_path(self, key: str, hashes: Mapping[str, str], url: str) -> Path:
        """Where an upstream's ``.metadata`` for file ``key`` is kept, under the hash its page
        announced (the first we can check), else under its URL."""
        for algorithm in sorted(known(hashes), key=lambda a: (a != "sha256", a)):
            digest = hashes[algorithm]
            if re.fullmatch(r"[a-z0-9_]{1,20}", algorithm) and _HEX.match(digest):
                return self.files / key[:2] / f"{key}.{algorithm}-{digest}.metadata"
        tag = hashlib.sha256(url.encode()).hexdigest()[:32]
        return self.files / key[:2] / f"{key}.url-{tag}.metadata"

    def metadata_paths(self, key: str) -> list[Path]:
        """Every metadata file kept beside file ``key`` (to drop with it)."""
        try:
            return [p for p in (self.files / key[:2]).glob(f"{key}.*.metadata") if METADATA.match(p.name)]
        except OSError:
            return []

    def size(self, key: str) -> int | None:
        """The cached file's size, or ``None`` if it is not in the cache."""
        try:
            return self.path(key).stat().st_size
        except OSError:
            return None

    def census(self) -> tuple[int, int]:
        """How many files the cache holds, and their bytes (a walk of the folders: in a thread)."""
        count = total = 0
        try:
            folders = list(os.scandir(self.files))
        except OSError:
            return 0, 0
        for folder in folders:
            try:
                entries = list(os.scandir(folder.path))
            except OSError:
                continue
            for entry in entries:
                if KEY.match(entry.name):
                    try:
                        total += entry.stat().st_size
                    except OSError:
                        continue  # evicted meanwhile
                    count += 1
        return count, total

    def create(self, path: Path) -> BinaryIO:
        """A temporary file to download into, unbuffered so readers see every write."""
        return open(path, "wb", buffering=0)

    def temporary(self, key: str) -> Path:
        # Made again if need be: a process on another host sharing the directory removes
        # a folder left untouched for a day, not knowing whether its process still runs.
        self.tmp.mkdir(parents=True, exist_ok=True)
        return self.tmp / f"{key}.{os.urandom(4).hex()}.part"

    def commit(self, temporary: Path, final: Path) -> None:
        """Make a finished temporary file visible under its final name (in a thread)."""
        final.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "rb") as f:
            os.fsync(f.fileno())
        os.replace(temporary, final)

    def write(self, final: Path, data: bytes) -> None:
        """Write a small file atomically."""
        temporary = self.temporary(final.name)
        try:
            with open(temporary, "wb") as f:
                f.write(data)
            self.commit(temporary, final)
        finally:
            temporary.unlink(missing_ok=True)

    def clean_leftovers(self) -> list[Path]:
        """Remove temporaries of processes on this host that no longer run (crashed), and
        any folder untouched for a day (another host's, or a reused pid's). At start only."""
        removed = []
        host = socket.gethostname()
        for folder in self._tmp_root.iterdir():
            if folder == self.tmp:
                # Ours by name, yet written before we started: a container restarted in
                # place comes back with the host name and pid of the process that crashed.
                leftovers = list(folder.iterdir())
                for leftover in leftovers:
                    leftover.unlink(missing_ok=True)
                if leftovers:
                    removed.append(folder)
                continue
            owner, _, pid = folder.name.rpartition(".")
            try:
                stale = time.time() - folder.stat().st_mtime > 86400
            except OSError:
                continue  # another process starting at the same time removed it
            # A live process whose quiet folder goes makes it again (see temporary()).
            if stale or (owner == host and not _alive(pid)):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        return removed


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
