"""The private store: uploaded and imported files with their sidecars; never evicted or overwritten.

A wheel's METADATA is kept in a file of its own beside it (``<filename>.metadata``), read only
when asked for: sidecars stay small, and a project's many uploads are not held in memory.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Callable

from packaging.version import InvalidVersion, Version
from twisted.logger import Logger

from .. import simple
from ..simple import NORMALISED_NAME
from .validation import AlreadyExists, Distribution, Refused, check_distribution

log = Logger()

# A directory changed this recently may change again within the same timestamp tick, so
# what was read from it is not trusted (git's "racily clean" rule).
RACY_NS = 2_000_000_000
# The URL a private file's entry carries: it is never fetched, only recognised.
PRIVATE_URL = "private:"


@dataclass(frozen=True)
class StoredFile:
    """One file in the private store, as its sidecar describes it."""

    project: str
    filename: str
    path: Path
    sha256: str
    size: int
    requires_python: str | None
    upload_time: str
    metadata_sha256: str | None  # of its PEP 658 metadata; None: it has none
    version: str | None = None
    is_yanked: bool = False
    yanked_reason: str | None = None
    # Sidecars written before METADATA had a file of its own hold it inline (base64).
    _inline_metadata: bool = False

    @classmethod
    def of(cls, dist: "Distribution", path: Path, upload_time: str) -> "StoredFile":
        """The record of a checked distribution, stored at ``path``."""
        return cls(
            project=dist.project,
            filename=dist.filename,
            path=path,
            sha256=dist.sha256,
            size=dist.size,
            requires_python=dist.requires_python,
            upload_time=upload_time,
            metadata_sha256=hashlib.sha256(dist.metadata).hexdigest() if dist.metadata is not None else None,
            version=dist.version,
        )

    @property
    def metadata_path(self) -> Path:
        return self.path.with_name(self.filename + ".metadata")

    @property
    def metadata(self) -> bytes | None:
        """Its PEP 658 metadata, read now (at most 1 MiB: uploads over that are refused)."""
        if self.metadata_sha256 is None:
            return None
        try:
            if self._inline_metadata:
                sidecar = json.loads(self.path.with_name(self.filename + ".json").read_bytes())
                return base64.b64decode(sidecar["metadata"])
            return self.metadata_path.read_bytes()
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warn("cannot read the metadata of private file {path}: {error}", path=str(self.path), error=str(e))
            return None

    def entry(self) -> simple.FileEntry:
        return simple.FileEntry(
            filename=self.filename,
            url=f"{PRIVATE_URL}{self.project}/{self.filename}",
            hashes={"sha256": self.sha256},
            requires_python=self.requires_python,
            has_metadata=self.metadata_sha256 is not None,
            metadata_hashes={"sha256": self.metadata_sha256} if self.metadata_sha256 else {},
            size=self.size,
            upload_time=self.upload_time,
            is_yanked=self.is_yanked,
            yanked_reason=self.yanked_reason if self.is_yanked else None,
        )


def _now() -> str:
    """PEP 700's upload-time format."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class PrivateStore:
    """``private/<project>/<filename>`` plus ``<filename>.json``; never evicted, never overwritten.

    The filesystem is the database: several processes (a server and ``pypiproxy import``)
    may share it. What is read from a project folder is remembered until the folder changes.
    """

    def __init__(self, directory: Path, temporary: Callable[[str], Path]) -> None:
        self.directory = directory
        self.temporary = temporary
        directory.mkdir(parents=True, exist_ok=True)
        # (mtime of the store's folder, names, sha256 -> file); every add touches the folder.
        self._snapshot: tuple[int, tuple[str, ...], dict[str, StoredFile]] | None = None
        self._projects: dict[str, tuple[int, tuple[StoredFile, ...]]] = {}

    # Reading (reactor thread; small files) ---------------------------------------------

    def _current(self) -> tuple[tuple[str, ...], dict[str, StoredFile]]:
        mtime = _mtime(self.directory)
        if self._snapshot is not None and self._snapshot[0] == mtime:
            return self._snapshot[1], self._snapshot[2]
        names = []
        keys: dict[str, StoredFile] = {}
        for child in sorted(self.directory.iterdir()):
            if NORMALISED_NAME.match(child.name) and child.is_dir():
                files = self.project(child.name)
                if files:
                    names.append(child.name)
                    keys.update((f.sha256, f) for f in files)
        if mtime is not None and not _racy(mtime):
            self._snapshot = (mtime, tuple(names), keys)
        return tuple(names), keys

    def names(self) -> tuple[str, ...]:
        """Every project with at least one private file, sorted."""
        return self._current()[0]

    def by_key(self, key: str) -> StoredFile | None:
        """A private file by its sha256."""
        return self._current()[1].get(key)

    def project(self, name: str) -> tuple[StoredFile, ...]:
        """A project's private files, oldest upload first; empty if it has none."""
        folder = self.directory / name
        mtime = _mtime(folder)
        if mtime is None:
            self._projects.pop(name, None)
            return ()
        known = self._projects.get(name)
        if known is not None and known[0] == mtime:
            return known[1]
        found = [s for s in map(partial(self._read, name), folder.glob("*.json")) if s is not None]
        found.sort(key=lambda s: (s.upload_time, s.filename))
        files = tuple(found)
        if not _racy(mtime):
            self._projects[name] = (mtime, files)
        return files

    def forget(self, name: str) -> None:
        """Drop what is remembered of a project after a change made by this process."""
        self._projects.pop(name, None)
        self._snapshot = None

    def _read(self, name: str, sidecar: Path) -> StoredFile | None:
        path = sidecar.with_suffix("")
        try:
            data = json.loads(sidecar.read_bytes())
            if not path.exists():
                return None
            inline = data.get("metadata")
            digest = data.get("metadata_sha256")
            if inline is not None and digest is None:
                digest = hashlib.sha256(base64.b64decode(inline)).hexdigest()
            return StoredFile(
                project=name,
                filename=path.name,
                path=path,
                sha256=data["sha256"],
                size=int(data["size"]),
                requires_python=data.get("requires_python"),
                upload_time=data["upload_time"],
                metadata_sha256=str(digest) if digest is not None else None,
                version=data.get("version") or simple.version_of(path.name),
                is_yanked=bool(data.get("yanked")),
                yanked_reason=data.get("yanked_reason") or None,
                _inline_metadata=inline is not None,
            )
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warn("ignoring unreadable private sidecar {path}: {error}", path=str(sidecar), error=str(e))
            return None

    def known(self, project: str) -> bool:
        """Whether the name was ever used here (it has files, or removed ones)."""
        return (self.directory / project).is_dir()

    def exists(self, project: str, filename: str) -> StoredFile | None:
        """The stored file of that name, if any (read from disk, so other writers count)."""
        sidecar = self.directory / project / f"{filename}.json"
        if not (self.directory / project / filename).exists():
            return None
        return self._read(project, sidecar) if sidecar.exists() else _unfinished(project, filename)

    # Writing (blocking: run in a thread) -----------------------------------------------

    def add(
        self,
        temporary: Path,
        dist: Distribution,
        *,
        upload_time: str | None = None,
        source: str = "upload",
        uploaded_by: str | None = None,
    ) -> StoredFile:
        """Move a checked temporary file into the store, atomically; never overwrites.

        The file is linked into place first (a link fails if the name is taken, also by
        another process), then its sidecar appears: readers list a file only once both
        are there, so a crash in between leaves nothing visible (``repair`` finishes it).
        """
        folder = self.directory / dist.project
        folder.mkdir(exist_ok=True)
        final = folder / dist.filename
        if _tombstone(final).exists():
            raise Refused(
                f"File name has been previously used: {dist.filename} was removed, and a file name "
                "is never used twice (a pinned hash must not change meaning); upload a new version"
            )
        with open(temporary, "rb") as f:
            os.fsync(f.fileno())
        try:
            os.link(temporary, final)
        except FileExistsError:
            raise AlreadyExists(f"File already exists: {dist.filename}") from None
        os.unlink(temporary)
        stored = StoredFile.of(dist, final, upload_time or _now())
        self._write_metadata(stored, dist.metadata)
        self._write_sidecar(stored, source=source, uploaded_by=uploaded_by, version=dist.version)
        # Readers in every process notice a change by the store folder's mtime.
        os.utime(self.directory)
        return stored

    def _write_metadata(self, stored: StoredFile, metadata: bytes | None) -> None:
        """The METADATA file, before the sidecar that makes the file visible."""
        if metadata is None:
            return
        temporary = self.temporary(stored.filename + ".metadata")
        with open(temporary, "wb") as f:
            f.write(metadata)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, stored.metadata_path)

    def _write_sidecar(self, stored: StoredFile, **extra: str | None) -> None:
        record = {
            "filename": stored.filename,
            "project": stored.project,
            "sha256": stored.sha256,
            "size": stored.size,
            "requires_python": stored.requires_python,
            "upload_time": stored.upload_time,
            **extra,
            "metadata_sha256": stored.metadata_sha256,  # the metadata is in <filename>.metadata
        }
        temporary = self.temporary(stored.filename + ".json")
        with open(temporary, "w") as f:
            json.dump(record, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, stored.path.with_name(stored.filename + ".json"))

    def repair(self) -> list[Path]:
        """Write the sidecar of files a crash left without one (blocking; at start)."""
        repaired = []
        for folder in self.directory.iterdir():
            if not (folder.is_dir() and NORMALISED_NAME.match(folder.name)):
                continue
            for path in folder.iterdir():
                if path.suffix in (".json", ".removed", ".metadata") or path.with_name(path.name + ".json").exists():
                    continue
                try:
                    dist = check_distribution(path, path.name)
                except (Refused, OSError) as e:
                    log.warn("private file {path} has no sidecar and is unusable: {error}", path=str(path), error=str(e))
                    continue
                stored = StoredFile.of(dist, path, _now())
                self._write_metadata(stored, dist.metadata)
                self._write_sidecar(stored, source="repair", version=dist.version)
                log.info("wrote the missing sidecar of private file {path}", path=str(path))
                repaired.append(path)
        if repaired:
            os.utime(self.directory)
        return repaired


    def set_yanked(self, project: str, version: str, yanked: bool, reason: str | None = None) -> list[StoredFile]:
        """Mark every file of a version yanked (PEP 592), or not; the changed files (blocking).

        Raises NoSuchRelease when the project has no file of that version.
        """
        files = self._release(project, version)
        for stored in files:
            sidecar = stored.path.with_name(stored.filename + ".json")
            record = json.loads(sidecar.read_bytes())
            record["yanked"] = yanked
            record["yanked_reason"] = (reason or None) if yanked else None
            self._replace_json(sidecar, record)
        self._changed(project)
        return files

    def remove(self, project: str, version: str | None = None, filename: str | None = None) -> list[StoredFile]:
        """Delete private files for good; their names stay used (a tombstone each) (blocking).

        Raises NoSuchRelease when nothing matches.
        """
        if version is None:
            files = list(self.project(project))
            if not files:
                raise NoSuchRelease(f"project {project!r} has no private files")
        else:
            files = self._release(project, version)
        if filename is not None:
            files = [f for f in files if f.filename == filename]
            if not files:
                raise NoSuchRelease(f"project {project!r} {version} has no file {filename!r}")
        for stored in files:
            # The tombstone first: the name must never be free, not even for a moment.
            self._replace_json(_tombstone(stored.path), {"filename": stored.filename, "sha256": stored.sha256,
                                                         "removed_at": _now()})
            stored.path.with_name(stored.filename + ".json").unlink(missing_ok=True)
            stored.path.unlink(missing_ok=True)
            stored.metadata_path.unlink(missing_ok=True)
        self._changed(project)
        return files

    def _release(self, project: str, version: str) -> list[StoredFile]:
        self._projects.pop(project, None)
        wanted = _version(version)
        files = [f for f in self.project(project) if f.version and _version(f.version) == wanted]
        if not files:
            raise NoSuchRelease(f"project {project!r} has no private files of version {version}")
        return files

    def _replace_json(self, path: Path, record: dict) -> None:
        temporary = self.temporary(path.name)
        with open(temporary, "w") as f:
            json.dump(record, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)

    def _changed(self, project: str) -> None:
        # Readers in every process notice a change by the folders' mtimes.
        folder = self.directory / project
        if folder.exists():
            os.utime(folder)
        os.utime(self.directory)
        self.forget(project)


class NoSuchRelease(KeyError):
    """No private file matches the project, version or file name asked for."""

    def __str__(self) -> str:
        return str(self.args[0])


def _tombstone(path: Path) -> Path:
    """What marks a removed file's name as used."""
    return path.with_name(path.name + ".removed")


def _version(text: str) -> Version | str:
    try:
        return Version(text)
    except InvalidVersion:
        return text


def _unfinished(project: str, filename: str) -> StoredFile:
    """A file whose sidecar is still being written: it exists, nothing more is known."""
    return StoredFile(project, filename, Path(), "", 0, None, "", None)


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def _racy(mtime_ns: int) -> bool:
    return time.time_ns() - mtime_ns < RACY_NS
