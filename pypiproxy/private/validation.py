"""Checking a wheel or sdist before it enters the private store: shared by uploads and imports."""

from __future__ import annotations

import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from packaging.metadata import parse_email
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..simple import BadFilename, parse_filename
from ..simple.hashes import file_digests
from ..simple.wheels import MAX_METADATA, MetadataTooLarge, NoMetadata, wheel_metadata

# A wheel's METADATA or an sdist's PKG-INFO larger than MAX_METADATA (1 MiB) is not metadata
# but an attack (it would be held, and served, for every page of the project): refused.


class Refused(Exception):
    """A file that may not enter the private store; ``reason`` is what the client is told."""

    code = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AlreadyExists(Refused):
    """Files are never overwritten: a second upload of a name is a conflict."""

    code = 409


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
    try:
        project, file_version = parse_filename(filename)
    except BadFilename as e:
        raise Refused(str(e)) from None
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
    actual, size = file_digests(path, set(wanted) | {"sha256"})
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




def _version_or_none(value: str) -> Version | None:
    try:
        return Version(value)
    except InvalidVersion:
        return None


def _wheel_metadata(path: Path, filename: str) -> bytes:
    try:
        return wheel_metadata(path, max_size=MAX_METADATA)
    except MetadataTooLarge:
        raise Refused(f"{filename}: its METADATA is over {MAX_METADATA} bytes") from None
    except NoMetadata as e:
        raise Refused(f"{filename} is not a valid wheel: {e}") from None


def _sdist_metadata(path: Path, filename: str) -> bytes | None:
    """The sdist's top-level PKG-INFO; ``None`` for the old sdists that lack one."""
    try:
        if filename.endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if _is_top_pkg_info(info.filename):
                        with archive.open(info) as member:
                            return _capped(member.read(MAX_METADATA + 1), filename)
            return None
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                if _is_top_pkg_info(member.name) and member.isfile():
                    extracted = archive.extractfile(member)
                    return _capped(extracted.read(MAX_METADATA + 1), filename) if extracted is not None else None
        return None
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        kind = "zip" if filename.endswith(".zip") else "gzipped tar"
        raise Refused(f"{filename} is not a valid sdist ({kind}): {e}") from None


def _capped(data: bytes, filename: str) -> bytes:
    if len(data) > MAX_METADATA:
        raise Refused(f"{filename}: its PKG-INFO is over {MAX_METADATA} bytes")
    return data


def _is_top_pkg_info(member: str) -> bool:
    parts = member.strip("/").split("/")
    return len(parts) == 2 and parts[1] == "PKG-INFO"
