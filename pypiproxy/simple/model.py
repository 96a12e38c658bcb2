"""The Simple API's model: a project's page and its files, as one index lists them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping

from .filenames import version_of

# The api-version of the pages we render: PEP 700's keys (1.1), PEP 740's provenance (1.3)
# and PEP 792's project status (1.4). A JSON page says no more than its upstream did.
API_VERSION = "1.4"
# What every page we render carries at least (``versions``, ``size``, ``upload-time``).
MIN_API_VERSION = "1.1"

# PEP 792's statuses; anything else an index says is kept, and means "active" to us.
QUARANTINED = "quarantined"

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
    provenance: str | None = None  # PEP 740: the URL of the file's provenance, as given
    # Keys an index added that we do not know, kept as given (never "_"-prefixed ones).
    extra: Mapping[str, Any] = field(default_factory=dict)

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
    status: str | None = None  # PEP 792 project status; None: the index said none (active)
    status_reason: str | None = None
    api_version: str | None = None  # what the index said its page is; None: ours
    extra: Mapping[str, Any] = field(default_factory=dict)  # unknown project keys, as given

    @property
    def quarantined(self) -> bool:
        return self.status == QUARANTINED

    def find(self, filename: str) -> FileEntry | None:
        for entry in self.files:
            if entry.filename == filename:
                return entry
        return None

    def all_versions(self) -> tuple[str, ...]:
        return self.versions if self.versions is not None else derive_versions(self.files)

    def with_files(self, files: Iterable[FileEntry]) -> "ProjectPage":
        return replace(self, files=tuple(files))


def api_version_of(page: ProjectPage) -> str:
    """The api-version a JSON page says: its index's, within what we render (PEP 629)."""
    if page.api_version is None:
        return API_VERSION
    said = _version_tuple(page.api_version) or _version_tuple(MIN_API_VERSION)
    lowest = min(said, _version_tuple(API_VERSION))
    return "%d.%d" % max(lowest, _version_tuple(MIN_API_VERSION))


def _version_tuple(text: object) -> tuple[int, int] | None:
    major, _, minor = str(text).strip().partition(".")
    if not (major.isdigit() and minor.isdigit()):
        return None
    return int(major), int(minor)


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
