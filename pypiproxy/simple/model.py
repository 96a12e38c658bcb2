"""The Simple API's model: a project's page and its files, as one index lists them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Mapping

from .filenames import version_of

# The api-version of the pages we render (PEP 629, PEP 700).
API_VERSION = "1.1"

# What a renderer needs to know about each file's URL: given an entry, where clients fetch it.
FileURL = Callable[["FileEntry"], str]


class IndexFormatError(ValueError):
    """The upstream's page is not a Simple API page we can read."""


@dataclass(frozen=True)
class FileEntry:
    """One distribution file, as the index describes it.

    Optional keys follow PEP 691: ``None`` means the index said nothing, so nothing is
    rendered for it. ``url`` is absolute (the upstream's), never with a hash fragment.
    """

    filename: str
    url: str
    hashes: Mapping[str, str] = field(default_factory=dict)
    requires_python: str | None = None
    is_yanked: bool = False
    yanked_reason: str | None = None  # only when yanked; None: no reason given
    has_metadata: bool = False  # PEP 658/714: ``<url>.metadata`` exists
    metadata_hashes: Mapping[str, str] = field(default_factory=dict)  # of that metadata
    gpg_sig: bool | None = None
    size: int | None = None
    upload_time: str | None = None

    @property
    def sha256(self) -> str | None:
        return self.hashes.get("sha256")

    @property
    def version(self) -> str | None:
        return version_of(self.filename)


@dataclass(frozen=True)
class ProjectPage:
    """A project's files, as one index lists them."""

    name: str
    files: tuple[FileEntry, ...] = ()
    versions: tuple[str, ...] | None = None  # PEP 700; None: derive them from the files

    def find(self, filename: str) -> FileEntry | None:
        for entry in self.files:
            if entry.filename == filename:
                return entry
        return None

    def all_versions(self) -> tuple[str, ...]:
        return self.versions if self.versions is not None else derive_versions(self.files)

    def with_files(self, files: Iterable[FileEntry]) -> "ProjectPage":
        return replace(self, files=tuple(files))


def derive_versions(files: Iterable[FileEntry]) -> tuple[str, ...]:
    """PEP 700 ``versions``, from the files' names, where an index did not send them."""
    seen: dict[str, None] = {}
    for entry in files:
        version = entry.version
        if version is not None:
            seen[version] = None
    return tuple(seen)


def split_hash(fragment: str) -> dict[str, str]:
    """``sha256=abc…`` (a URL fragment, a metadata attribute) as ``{"sha256": "abc…"}``."""
    name, sep, value = fragment.partition("=")
    if sep and name and value:
        return {name.lower(): value.lower()}
    return {}
