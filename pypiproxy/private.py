"""The private store (uploaded and imported files) and the upload API that fills it."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import tarfile
import time
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping

from multipart import MultipartError, MultipartSegment, PushMultipartParser, parse_options_header
from packaging.metadata import parse_email
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version
from twisted.internet import threads
from twisted.logger import Logger
from twisted.web import server
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource

from . import simple
from .errors import bad_request, error_page
from .files import CachedFile, Source
from .pages import CachedPage
from .stats import Stats
from .upstream import UpstreamError
from .wheels import NoMetadata, wheel_metadata

log = Logger()

CHUNK = 1024 * 1024
# A wheel's METADATA or an sdist's PKG-INFO larger than this is not metadata but an attack.
MAX_METADATA = 16 * 1024 * 1024
# All the text fields of an upload together (the long description is the big one).
MAX_FORM_FIELDS = 16 * 1024 * 1024
# After refusing an oversized body, read (and drop) what the client still sends for this
# long, so that it reads our answer rather than a connection reset.
LINGER_SECONDS = 10.0
# A directory changed this recently may change again within the same timestamp tick, so
# what was read from it is not trusted (git's "racily clean" rule).
RACY_NS = 2_000_000_000

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]*$")
PRIVATE_URL = "private:"


class Refused(Exception):
    """A file that may not enter the private store; ``reason`` is what the client is told."""

    code = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AlreadyExists(Refused):
    """Files are never overwritten: a second upload of a name is a conflict."""

    code = 409


# Validation: shared by uploads and imports ------------------------------------------------


@dataclass(frozen=True)
class Distribution:
    """A checked wheel or sdist: what the store and the index pages need to know of it."""

    filename: str
    project: str  # normalised
    version: str
    sha256: str
    size: int
    requires_python: str | None
    metadata: bytes | None  # the wheel's METADATA, served as PEP 658 metadata


def parse_filename(filename: str) -> tuple[str, Version]:
    """The normalised project name and version a wheel or sdist file name carries."""
    if not _FILENAME.match(filename) or len(filename) > 255:
        raise Refused(f"not a valid wheel or sdist file name: {filename[:100]!r}")
    try:
        if filename.endswith(".whl"):
            name, version, _build, _tags = parse_wheel_filename(filename)
        else:
            name, version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion) as e:
        raise Refused(f"not a valid wheel or sdist file name: {filename!r} ({e})") from None
    if not _NAME.match(name):
        raise Refused(f"not a valid project name in the file name {filename!r}")
    return name, version


def is_distribution_name(filename: str) -> bool:
    try:
        parse_filename(filename)
    except Refused:
        return False
    return True


def check_distribution(
    path: Path,
    filename: str,
    *,
    name: str | None = None,
    version: str | None = None,
    digests: Mapping[str, str] | None = None,
    requires_python: str | None = None,
) -> Distribution:
    """Check a file before it enters the store (blocking: run it in a thread).

    The name says what it is; the claimed name, version and digests (from an upload form
    or an index page) must agree with it, and so must the metadata inside the archive.
    ``requires_python`` is used where the file's own metadata says nothing.
    """
    project, file_version = parse_filename(filename)
    if name is not None and canonicalize_name(name) != project:
        raise Refused(f"{filename} is a file of {project!r}, not of {canonicalize_name(name)!r}")
    if version is not None:
        try:
            claimed = Version(version)
        except InvalidVersion:
            raise Refused(f"not a valid version: {version!r}") from None
        if claimed != file_version:
            raise Refused(f"{filename} is version {file_version}, not {version}")
    wanted = {k.lower(): v.lower() for k, v in (digests or {}).items() if v}
    actual, size = _digests(path, set(wanted) | {"sha256"})
    for algorithm, digest in wanted.items():
        if algorithm in actual and actual[algorithm] != digest:
            raise Refused(f"{algorithm} digest mismatch for {filename}: the file's is {actual[algorithm]}")
    if filename.endswith(".whl"):
        metadata = _wheel_metadata(path, filename)
        served = metadata
    else:
        metadata = _sdist_metadata(path, filename)
        served = None  # an sdist's PKG-INFO may be dynamic: not PEP 658 metadata
    if metadata is not None:
        fields, _unparsed = parse_email(metadata)
        inner_name, inner_version = fields.get("name"), fields.get("version")
        if inner_name is not None and canonicalize_name(inner_name) != project:
            raise Refused(f"{filename}: its metadata names the project {inner_name!r}")
        if inner_version is not None and _version_or_none(inner_version) != file_version:
            raise Refused(f"{filename}: its metadata says version {inner_version!r}")
        requires_python = fields.get("requires_python") or requires_python
    return Distribution(
        filename=filename,
        project=project,
        version=str(file_version),
        sha256=actual["sha256"],
        size=size,
        requires_python=requires_python or None,
        metadata=served,
    )


# The names the upload API uses for digests, and hashlib's for them.
UPLOAD_DIGESTS = {"sha256_digest": "sha256", "md5_digest": "md5", "blake2_256_digest": "blake2_256"}


def _new_hash(algorithm: str) -> Any:
    if algorithm == "blake2_256":
        return hashlib.blake2b(digest_size=32)
    return hashlib.new(algorithm)


def _digests(path: Path, algorithms: set[str]) -> tuple[dict[str, str], int]:
    hashes = {}
    for algorithm in algorithms:
        try:
            hashes[algorithm] = _new_hash(algorithm)
        except ValueError:
            pass  # an algorithm we do not know is one we cannot check
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            size += len(chunk)
            for h in hashes.values():
                h.update(chunk)
    return {name: h.hexdigest() for name, h in hashes.items()}, size


def _version_or_none(value: str) -> Version | None:
    try:
        return Version(value)
    except InvalidVersion:
        return None


def _wheel_metadata(path: Path, filename: str) -> bytes:
    try:
        return wheel_metadata(path, max_size=MAX_METADATA)
    except NoMetadata as e:
        raise Refused(f"{filename} is not a valid wheel: {e}") from None


def _sdist_metadata(path: Path, filename: str) -> bytes | None:
    """The sdist's top-level PKG-INFO; ``None`` for the old sdists that lack one."""
    try:
        if filename.endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if _is_top_pkg_info(info.filename) and info.file_size <= MAX_METADATA:
                        return archive.read(info)
            return None
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                if _is_top_pkg_info(member.name) and member.isfile() and member.size <= MAX_METADATA:
                    extracted = archive.extractfile(member)
                    return extracted.read() if extracted is not None else None
        return None
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        kind = "zip" if filename.endswith(".zip") else "gzipped tar"
        raise Refused(f"{filename} is not a valid sdist ({kind}): {e}") from None


def _is_top_pkg_info(member: str) -> bool:
    parts = member.strip("/").split("/")
    return len(parts) == 2 and parts[1] == "PKG-INFO"


# The store -------------------------------------------------------------------------------


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
    metadata: bytes | None

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
            metadata=dist.metadata,
        )

    def entry(self) -> simple.FileEntry:
        core: bool | dict[str, str] = False
        if self.metadata is not None:
            core = {"sha256": hashlib.sha256(self.metadata).hexdigest()}
        return simple.FileEntry(
            filename=self.filename,
            url=f"{PRIVATE_URL}{self.project}/{self.filename}",
            hashes={"sha256": self.sha256},
            requires_python=self.requires_python,
            core_metadata=core,
            size=self.size,
            upload_time=self.upload_time,
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
            if _NAME.match(child.name) and child.is_dir():
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
            metadata = data.get("metadata")
            return StoredFile(
                project=name,
                filename=path.name,
                path=path,
                sha256=data["sha256"],
                size=int(data["size"]),
                requires_python=data.get("requires_python"),
                upload_time=data["upload_time"],
                metadata=base64.b64decode(metadata) if metadata is not None else None,
            )
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warn("ignoring unreadable private sidecar {path}: {error}", path=str(sidecar), error=str(e))
            return None

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
        with open(temporary, "rb") as f:
            os.fsync(f.fileno())
        try:
            os.link(temporary, final)
        except FileExistsError:
            raise AlreadyExists(f"File already exists: {dist.filename}") from None
        os.unlink(temporary)
        stored = StoredFile.of(dist, final, upload_time or _now())
        self._write_sidecar(stored, source=source, uploaded_by=uploaded_by, version=dist.version)
        # Readers in every process notice a change by the store folder's mtime.
        os.utime(self.directory)
        return stored

    def _write_sidecar(self, stored: StoredFile, **extra: str | None) -> None:
        record = {
            "filename": stored.filename,
            "project": stored.project,
            "sha256": stored.sha256,
            "size": stored.size,
            "requires_python": stored.requires_python,
            "upload_time": stored.upload_time,
            **extra,
            "metadata_sha256": hashlib.sha256(stored.metadata).hexdigest() if stored.metadata else None,
            # Base64: the exact bytes matter (clients check their hash), and JSON holds text.
            "metadata": base64.b64encode(stored.metadata).decode() if stored.metadata is not None else None,
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
            if not (folder.is_dir() and _NAME.match(folder.name)):
                continue
            for path in folder.iterdir():
                if path.suffix == ".json" or path.with_name(path.name + ".json").exists():
                    continue
                try:
                    dist = check_distribution(path, path.name)
                except (Refused, OSError) as e:
                    log.warn("private file {path} has no sidecar and is unusable: {error}", path=str(path), error=str(e))
                    continue
                stored = StoredFile.of(dist, path, _now())
                self._write_sidecar(stored, source="repair", version=dist.version)
                log.info("wrote the missing sidecar of private file {path}", path=str(path))
                repaired.append(path)
        if repaired:
            os.utime(self.directory)
        return repaired


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


# The private tier in front of the upstream tier ------------------------------------------


class PrivatePages:
    """The page cache, with private projects answered from the store alone.

    A name with any private file never shows the upstream's files (dependency confusion).
    Anything else is the page cache's own business.
    """

    def __init__(self, pages: Any, private: PrivateStore, clock: Any) -> None:
        self._pages = pages
        self._private = private
        self._clock = clock
        self._rendered: dict[str, tuple[tuple[StoredFile, ...], CachedPage]] = {}
        self._merged: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pages, name)

    def _private_page(self, name: str) -> CachedPage | None:
        if name not in self._private.names():
            return None
        files = self._private.project(name)
        if not files:
            return None
        known = self._rendered.get(name)
        if known is not None and known[0] is files:
            return known[1]
        page = simple.ProjectPage(name=name, files=tuple(f.entry() for f in files))
        cached = CachedPage(page=page, source="private", fetched_at=self._clock.seconds())
        self._rendered[name] = (files, cached)
        return cached

    def fresh(self, name: str) -> CachedPage | None:
        return self._private_page(name) or self._pages.fresh(name)

    async def project(self, name: str) -> CachedPage:
        return self._private_page(name) or await self._pages.project(name)

    async def cached(self, name: str) -> CachedPage | None:
        return self._private_page(name) or await self._pages.cached(name)

    async def project_names(self) -> tuple[str, ...]:
        """The upstreams' names and the private ones; the same tuple while nothing changes."""
        private = self._private.names()
        try:
            upstream = await self._pages.project_names()
        except UpstreamError as e:
            if not private:
                raise
            log.warn("listing private projects only: {error}", error=str(e))
            upstream = ()
        merged = self._merged
        if merged is None or merged[0] is not upstream or merged[1] != private:
            names = tuple(sorted(set(upstream) | set(private))) if private else upstream
            merged = self._merged = (upstream, private, names)
        return merged[2]


class PrivateFiles:
    """The file cache, with private files served from the store and never fetched."""

    def __init__(self, files: Any, private: PrivateStore) -> None:
        self._files = files
        self._private = private

    def __getattr__(self, name: str) -> Any:
        return getattr(self._files, name)

    def cached(self, key: str) -> CachedFile | None:
        stored = self._private.by_key(key)
        if stored is not None:
            return CachedFile(stored.path, stored.size)
        return self._files.cached(key)

    async def fetch(self, key: str, entry: simple.FileEntry) -> Source:
        found = self.cached(key)
        if found is not None:
            return found
        if entry.url.startswith(PRIVATE_URL):
            raise UpstreamError(f"{entry.filename} is missing from the private store")
        return await self._files.fetch(key, entry)

    async def metadata(self, key: str, entry: simple.FileEntry) -> bytes | None:
        stored = self._private.by_key(key)
        if stored is not None:
            return stored.metadata
        return await self._files.metadata(key, entry)


# Receiving uploads -----------------------------------------------------------------------


class FormReceiver:
    """Parses a multipart/form-data body as it arrives: the ``content`` file goes straight
    to a temporary file in the store, the text fields (bounded) into memory."""

    def __init__(self, boundary: str, temporary: Path) -> None:
        self._parser = PushMultipartParser(boundary, max_header_count=16, max_segment_count=1000)
        self.path = temporary
        self.fields: dict[str, list[str]] = {}
        self.filename: str | None = None
        self.error: str | None = None
        self.claimed = False  # by the upload resource, which then cleans up
        self._segment: MultipartSegment | None = None
        self._file: io.BufferedWriter | None = None
        self._chunks: list[bytes] | None = None
        self._field_bytes = 0

    def feed(self, data: bytes) -> None:
        if self.error is not None:
            return
        try:
            for event in self._parser.parse(data):
                if isinstance(event, MultipartSegment):
                    self._start(event)
                elif event:
                    self._body(event)
                else:
                    self._end()
        except MultipartError as e:
            self._fail(f"malformed multipart/form-data body: {e}")
        except OSError as e:
            self._fail(f"cannot store the upload: {e.strerror}")

    def finish(self) -> None:
        """The body is complete: an unfinished form is an error."""
        if self.error is None:
            try:
                self._parser.close()
            except MultipartError as e:
                self._fail(f"incomplete multipart/form-data body: {e}")

    def discard(self) -> None:
        """Remove the temporary file (harmless once it has been moved into the store)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.path.unlink(missing_ok=True)

    def _start(self, segment: MultipartSegment) -> None:
        self._segment = segment
        if segment.filename is None:
            self._chunks = []
        elif segment.name == "content" and self._file is None and self.filename is None:
            self.filename = segment.filename
            self._file = open(self.path, "wb")
        else:
            self._chunks = None  # another file (a signature, attestations): not kept

    def _body(self, data: bytes) -> None:
        if self._file is not None:
            self._file.write(data)
        elif self._chunks is not None:
            self._field_bytes += len(data)
            if self._field_bytes > MAX_FORM_FIELDS:
                self._fail(f"the form's text fields are over {MAX_FORM_FIELDS} bytes")
                return
            self._chunks.append(data)

    def _end(self) -> None:
        segment, self._segment = self._segment, None
        if self._file is not None:
            self._file.close()
            self._file = None
        elif self._chunks is not None and segment is not None and segment.name:
            value = b"".join(self._chunks).decode(segment.charset or "utf-8", "replace")
            self.fields.setdefault(segment.name, []).append(value)
        self._chunks = None

    def _fail(self, reason: str) -> None:
        self.error = reason
        self.discard()

    def field(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0].strip() if values else None


class UploadRequest(server.Request):
    """A request whose body is never bigger than the upload limit, and whose form is
    parsed as it arrives (Twisted's own form parsing reads the whole body into memory)."""

    form: FormReceiver | None = None
    too_large = False
    account: str | None = None  # the user name, once a login was checked

    def __init__(self, channel: Any, *args: Any, max_body: int, temporary: Callable[[str], Path], **kwargs: Any) -> None:
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(channel, *args, **kwargs)
        self._max_body = max_body
        self._temporary = temporary
        self._received = 0
        self._linger: Any = None

    @classmethod
    def factory(cls, max_body: int, temporary: Callable[[str], Path]) -> Callable[..., "UploadRequest"]:
        return partial(cls, max_body=max_body, temporary=temporary)

    def render(self, resrc: Any) -> None:
        # Twisted answers methods it does not know with 501; for us they are a client's
        # mistake, and every path of ours takes GET, HEAD or POST alone.
        if self.method not in (b"GET", b"HEAD", b"POST"):
            method = self.method.decode("latin-1", "replace")[:20]
            resrc = error_page(405, f"method {method} not allowed", {"Allow": "GET, HEAD, POST"})
        super().render(resrc)

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self._max_body:
            self.content = io.BytesIO()
            self._refuse(length)
            return
        content_type = self.getHeader(b"content-type")
        if content_type is not None:
            kind, options = parse_options_header(content_type.decode("latin-1"))
            if kind == "multipart/form-data" and options.get("boundary"):
                try:
                    self.form = FormReceiver(options["boundary"], self._temporary("upload"))
                except MultipartError:
                    self.form = None
                else:
                    self.content = io.BytesIO()
                    self.notifyFinish().addBoth(self._discard)
                    return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.too_large:
            return
        self._received += len(data)
        if self._received > self._max_body:
            self._refuse(None)
        elif self.form is not None:
            self.form.feed(data)
        else:
            super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self.too_large:
            # Everything the client sent has been read: now it can read our answer.
            if self._linger is not None and self._linger.active():
                self._linger.cancel()
            self.loseConnection()
            return
        if self.form is not None:
            self.form.finish()
        super().requestReceived(command, path, version)

    def _refuse(self, length: int | None) -> None:
        """Answer 413 at once, before the body is read, and close the connection."""
        self.too_large = True
        if self.form is not None:
            self.form.discard()
            self.form = None
        elif self.content is not None:
            self.content.close()
            self.content = io.BytesIO()
        # Twisted would send "100 Continue" after this; the client must not send the body.
        self.requestHeaders.removeHeader(b"expect")
        reason = f"upload too large: the limit is {self._max_body} bytes"
        log.warn(
            "refused a request body of {length} bytes from {client}: over the limit of {limit}",
            length=length if length is not None else f"more than {self._max_body}",
            client=getattr(self.client, "host", "?"),
            limit=self._max_body,
        )
        body = f"413 {reason}\n".encode()
        self.channel.transport.write(
            b"HTTP/1.1 413 " + reason.encode("ascii") + b"\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % len(body) + body
        )
        call_later = getattr(self.channel, "callLater", None)
        if call_later is not None:
            self._linger = call_later(LINGER_SECONDS, self._stop_lingering)

    def _stop_lingering(self) -> None:
        self._linger = None
        self.loseConnection()

    def connectionLost(self, reason: Any) -> None:
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        super().connectionLost(reason)

    def _discard(self, result: object) -> None:
        if self.form is not None and not self.form.claimed:
            self.form.discard()


class Upload(Resource):
    """``POST /`` and ``POST /legacy/``: the upload API of twine, ``uv publish``, flit, poetry."""

    isLeaf = True

    def __init__(self, private: PrivateStore, stats: Stats) -> None:
        super().__init__()
        self._private = private
        self._stats = stats

    def render_GET(self, request: IRequest) -> bytes:
        # Also HEAD: Twisted answers HEAD with render_GET.
        reason = "this is the upload API: POST files here with twine upload or uv publish"
        return error_page(405, reason, {"Allow": "POST"}).render(request)

    def render_POST(self, request: IRequest) -> int | bytes:
        from .web import render_async

        form: FormReceiver | None = getattr(request, "form", None)
        if form is None:
            return bad_request("expected a multipart/form-data upload, as twine sends").render(request)
        form.claimed = True
        return render_async(request, self._upload(request, form))

    async def _upload(self, request: IRequest, form: FormReceiver) -> IResource | bytes:
        try:
            dist = await threads.deferToThread(check_upload, form)
            user = getattr(request, "account", None)
            stored = await threads.deferToThread(self._private.add, form.path, dist, uploaded_by=user)
        except Refused as e:
            log.warn(
                "upload of {filename} refused ({code}): {reason}",
                filename=form.filename or "?",
                code=e.code,
                reason=e.reason,
            )
            return error_page(e.code, e.reason)
        finally:
            form.discard()
        self._private.forget(stored.project)
        self._stats.incr("uploads")
        log.info(
            "uploaded {filename} ({size} bytes, sha256 {sha256}) to {project} by {user}",
            filename=stored.filename,
            size=stored.size,
            sha256=stored.sha256,
            project=stored.project,
            user=getattr(request, "account", None) or "anonymous",
        )
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return f"OK: {stored.filename} stored\n".encode()


_FILETYPES = {"bdist_wheel": (".whl",), "sdist": (".tar.gz", ".zip")}


def check_upload(form: FormReceiver) -> Distribution:
    """The upload form's own checks, then the ones every file gets (blocking: in a thread)."""
    if form.error is not None:
        raise Refused(form.error)
    action = form.field(":action")
    if action != "file_upload":
        raise Refused(f"unsupported :action {action!r}: only file_upload is" if action else "not an upload: no :action field")
    protocol = form.field("protocol_version")
    if protocol not in (None, "1"):
        raise Refused(f"unsupported protocol_version {protocol!r}")
    if form.filename is None or not form.path.exists():
        raise Refused("no file in the form's 'content' field")
    filename = form.filename
    parse_filename(filename)
    name, version = form.field("name"), form.field("version")
    if not name or not version:
        raise Refused("the form needs the fields 'name' and 'version'")
    filetype = form.field("filetype")
    if filetype is not None:
        suffixes = _FILETYPES.get(filetype)
        if suffixes is None:
            raise Refused(f"unsupported filetype {filetype!r}: only bdist_wheel and sdist are")
        if not filename.endswith(suffixes):
            raise Refused(f"filetype {filetype} does not fit the file name {filename!r}")
    digests = {algorithm: form.field(field) or "" for field, algorithm in UPLOAD_DIGESTS.items()}
    return check_distribution(
        form.path,
        filename,
        name=name,
        version=version,
        digests=digests,
        requires_python=form.field("requires_python"),
    )
