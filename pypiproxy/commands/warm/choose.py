"""Choosing versions and files for a target, where to read dependencies, which apply: pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from packaging.metadata import parse_email
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ...simple import FileEntry, ProjectPage, version_of
from ...simple.wheels import NoMetadata, wheel_metadata
from .reqfile import RequirementLine, RequirementsError
from .targets import MARKER_ERRORS, Target, marker_holds


class MetadataError(ValueError):
    """A wheel whose METADATA cannot be read."""


@dataclass(frozen=True)
class Need:
    """A project wanted within a specifier, with extras, and by whom (for messages)."""

    name: str
    specifier: SpecifierSet
    extras: frozenset[str]
    origin: str


@dataclass(frozen=True)
class Selection:
    """The version a requirement resolves to, and the files of it to fetch."""

    name: str
    version: Version
    files: tuple[FileEntry, ...]
    yanked: str | None = None  # the reason, when a pin chose yanked files ("" for none given)

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


def top_level_needs(
    lines: Iterable[RequirementLine], environments: Sequence[Mapping[str, str]]
) -> list[Need]:
    """Requirements whose markers hold, one per project (lines for one project are merged)."""
    merged: dict[str, Need] = {}
    for line in lines:
        requirement = line.requirement
        if requirement.marker is not None:
            try:
                if not marker_holds(requirement.marker, environments):
                    continue
            except MARKER_ERRORS as e:
                raise RequirementsError(
                    f"{line.origin}: cannot evaluate marker {str(requirement.marker)!r}: {e}"
                ) from None
        name = canonicalize_name(requirement.name)
        extras = frozenset(canonicalize_name(e) for e in requirement.extras)
        if name in merged:
            first = merged[name]
            merged[name] = Need(
                name, first.specifier & requirement.specifier, first.extras | extras, first.origin
            )
        else:
            merged[name] = Need(name, requirement.specifier, extras, line.origin)
    return list(merged.values())


def constraint_specifiers(
    lines: Iterable[RequirementLine], environments: Sequence[Mapping[str, str]]
) -> dict[str, SpecifierSet]:
    """What constraints files allow, per project (they limit versions, never add projects)."""
    return {need.name: need.specifier for need in top_level_needs(lines, environments)}


def is_pinned(specifier: SpecifierSet) -> bool:
    """Pinned as PEP 592 means it: ``==`` (not a wildcard) or ``===``; then yanked files count."""
    return any(
        s.operator == "===" or (s.operator == "==" and not s.version.endswith(".*"))
        for s in specifier
    )


def _version(entry: FileEntry) -> Version | None:
    text = version_of(entry.filename)
    try:
        return Version(text) if text is not None else None
    except InvalidVersion:
        return None


def select(
    page: ProjectPage, specifier: SpecifierSet, target: Target, pre: bool = False
) -> Selection | None:
    """The newest version that fits and has a file for the target, with those files."""
    pinned = is_pinned(specifier)
    candidates: dict[Version, list[FileEntry]] = {}
    for entry in page.files:
        version = _version(entry)
        if version is None or (entry.is_yanked and not pinned):
            continue
        if target.accepts_filename(entry.filename) and target.accepts_python(entry.requires_python):
            candidates.setdefault(version, []).append(entry)
    fitting = list(specifier.filter(candidates, prereleases=True if pre else None))
    if not fitting:
        return None
    best = max(fitting)
    files = tuple(candidates[best])
    yanked = None
    if all(f.is_yanked for f in files):
        yanked = next((f.yanked_reason for f in files if f.yanked_reason), "")
    return Selection(page.name, best, files, yanked)


def why_nothing_fits(page: ProjectPage, specifier: SpecifierSet, target: Target) -> str:
    """Why ``select`` found nothing, in words a user can act on."""
    versions = {v for v in map(_version, page.files) if v is not None}
    if not versions:
        return "the index lists no files for it"
    wanted = f" matches {specifier}" if str(specifier) else ""
    if not any(True for _ in specifier.filter(versions, prereleases=True)):
        return f"no version{wanted}"
    return f"no version{wanted} has a non-yanked file for {target.describe()}"


def plan_metadata(page: ProjectPage, selection: Selection) -> tuple[str, FileEntry] | None:
    """Where to read a release's dependencies: ``("metadata", file)`` (its PEP 658 file) or
    ``("wheel", file)`` (read METADATA from that wheel, which is fetched anyway); ``None``
    when only an sdist without usable metadata is there."""
    wheels = [f for f in selection.files if f.filename.endswith(".whl")]
    for entry in wheels:
        if entry.has_metadata:
            return ("metadata", entry)
    for entry in page.files:  # a wheel for another platform still tells the dependencies
        if (
            entry.filename.endswith(".whl")
            and entry.has_metadata
            and _version(entry) == selection.version
        ):
            return ("metadata", entry)
    if wheels:
        return ("wheel", min(wheels, key=lambda f: (f.size is None, f.size or 0)))
    for entry in selection.files:  # an sdist's PKG-INFO, if Metadata 2.2 makes it static
        if entry.has_metadata:
            return ("metadata", entry)
    return None


def read_requires_dist(
    metadata: bytes, *, sdist: bool = False
) -> tuple[tuple[Requirement, ...] | None, tuple[str, ...]]:
    """``(requirements, invalid lines)`` from core metadata.

    ``None`` for the requirements when the metadata does not settle them: an sdist's
    before Metadata 2.2, or one that marks Requires-Dist as dynamic.
    """
    raw, _ = parse_email(metadata)
    if sdist:
        try:
            too_old = Version(raw.get("metadata_version", "1.0")) < Version("2.2")
        except InvalidVersion:
            too_old = True
        dynamic = {d.lower() for d in raw.get("dynamic", [])}
        if too_old or "requires-dist" in dynamic:
            return None, ()
    requirements, invalid = [], []
    for text in raw.get("requires_dist", []):
        try:
            requirements.append(Requirement(text))
        except InvalidRequirement:
            invalid.append(text)
    return tuple(requirements), tuple(invalid)


def metadata_from_wheel(wheel: IO[bytes], name: str | None = None) -> bytes:
    """The METADATA file inside a wheel (the ``.dist-info`` of ``name`` if there are several)."""
    try:
        return wheel_metadata(wheel, name)
    except NoMetadata as e:
        raise MetadataError(str(e)) from None


def dependencies(
    requirements: Iterable[Requirement],
    extras: Iterable[str],
    environments: Sequence[Mapping[str, str]],
) -> tuple[list[Requirement], list[str]]:
    """The dependencies that apply for these extras (``""`` for the release itself) on the
    target, and warnings about markers that could not be evaluated."""
    extras = frozenset(extras)
    chosen, problems = [], []
    for requirement in requirements:
        if requirement.marker is None:
            if "" in extras:
                chosen.append(requirement)
            continue
        try:
            if marker_holds(requirement.marker, environments, sorted(extras)):
                chosen.append(requirement)
        except MARKER_ERRORS as e:
            problems.append(f"cannot evaluate marker of {str(requirement)!r}: {e}")
    return chosen, problems
