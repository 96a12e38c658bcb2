"""``pypiproxy warm``: resolve requirements on an index and fetch each chosen file once."""

from __future__ import annotations

import argparse
import hashlib
import re
import shlex
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any, TextIO, TypeVar
from urllib.parse import urlsplit

from packaging.markers import (
    InvalidMarker,
    Marker,
    UndefinedComparison,
    UndefinedEnvironmentName,
    default_environment,
)
from packaging.metadata import parse_email
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags, mac_platforms
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version
from twisted.internet import defer
from twisted.python.failure import Failure

from ...config import UpstreamIndex, parse_upstream, redact
from ...simple import FileEntry, ProjectPage, version_of
from ...simple.wheels import NoMetadata, wheel_metadata
from ...upstream import BadIndexPage, ProjectMissing, UpstreamClient, UpstreamError, UpstreamStatus, fetch_project
from ...simple.hashes import body_mismatch
from ..reactor import run_command

T = TypeVar("T")

DEFAULT_JOBS = 4
DEFAULT_TIMEOUT = 60.0
# A wheel read for its METADATA stays in memory up to this size, then spills to a temp file.
_SPOOL_MEMORY = 32 * 1024 * 1024

EPILOG = """\
requirements files
  Read as pip reads them: nested -r/--requirement and -c/--constraint (paths relative
  to the including file), comments, blank lines, backslash continuations, environment
  markers, extras, == pins and ranges, per-line --hash options.
  * Index options (-i/--index-url, --extra-index-url, -f/--find-links, --no-index,
    --trusted-host) and install options (--only-binary, --no-binary, --prefer-binary,
    --require-hashes, --use-feature; per line --config-settings, --global-option) are
    ignored with a note: the files come from --index, filtered by this command's options.
  * --pre in a file allows pre-releases, like --pre here.
  * Editable (-e), URL, path and VCS requirements are errors: warm fetches released
    files from an index, by project name.
  * --hash values are checked for form only; every file is checked against the sha256
    the index gives for it.

choosing versions and files
  Markers are evaluated for this interpreter, with --python-version replacing its Python
  version and each --platform its platform (sys_platform, platform_system,
  platform_machine, os_name); with several --platform a marker counts if it holds for
  any of them. Requires-Python is checked against --python-version (default: this
  interpreter). Each requirement gets the newest non-yanked version that has a file
  for the target; a yanked version only when pinned with == or === (PEP 592).
  Requirements of one project share a version where one fits them all; where none
  does (conflicting dependencies), each gets its own and all of them are fetched.
  Dependencies come from PEP 658 metadata (<file>.metadata), else from a wheel's
  METADATA; a release with only an sdist is warned about and its dependencies are not
  followed (that would need a build).
  All files of each chosen version are fetched: every platform and Python, or with
  --python-version / --platform / --only-binary just those an installer there would
  take (--platform manylinux_2_28_x86_64 also takes manylinux_2_17, manylinux2014 and
  linux_x86_64 wheels; macosx_14_0_arm64 older macOS and universal2 ones).

exit status
  0 everything fetched; 1 some files or requirements failed (listed at the end);
  2 bad usage, a bad requirements file, an unreachable index or an unknown project.
"""


# Errors ---------------------------------------------------------------------------------


class RequirementsError(ValueError):
    """A requirements file warm cannot follow; ``str()`` is the one line to show."""


class WarmError(Exception):
    """A failure that ends the run at once (exit status 2); ``str()`` is the one line to show."""


class TransferError(Exception):
    """One request failed; the message says why, without credentials."""


class MetadataError(ValueError):
    """A wheel whose METADATA cannot be read."""


# Requirements files (pure) ---------------------------------------------------------------


@dataclass(frozen=True)
class RequirementLine:
    """One requirement as written, and where (``file:line``), for messages."""

    requirement: Requirement
    origin: str
    hashes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Requirements:
    """What a set of requirements files asks for, with the notes about what was ignored."""

    requirements: tuple[RequirementLine, ...] = ()
    constraints: tuple[RequirementLine, ...] = ()
    notes: tuple[str, ...] = ()
    pre: bool = False


# pip's comment rule: "#" at the start of a line or after whitespace.
_COMMENT = re.compile(r"(^|\s+)#.*$")
# Include options, and whether what they include are constraints.
_INCLUDES = MappingProxyType(
    {"-r": False, "--requirement": False, "-c": True, "--constraint": True}
)
_EDITABLE = frozenset({"-e", "--editable"})
_IGNORED_WITH_VALUE = frozenset(
    {
        "-i",
        "--index-url",
        "--extra-index-url",
        "-f",
        "--find-links",
        "--trusted-host",
        "--only-binary",
        "--no-binary",
        "--use-feature",
    }
)
_IGNORED_FLAGS = frozenset({"--no-index", "--prefer-binary", "--require-hashes"})
_SHORT_WITH_VALUE = frozenset({"-r", "-c", "-e", "-i", "-f"})
_LINE_OPTIONS_IGNORED = frozenset(
    {"--config-settings", "-C", "--global-option", "--install-option"}
)
_LOCATION_SUFFIXES = (".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tar")


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Lines as pip sees them: continuations joined, comments and blanks dropped.

    Each comes with the number of its first physical line, which is what a user looks for.
    """
    pending: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.endswith("\\") and not _COMMENT.match(line):
            if not pending:
                start = number
            pending.append(line[:-1])
            continue
        if pending:
            pending.append(line)
            line, number, pending = "".join(pending), start, []
        line = _COMMENT.sub("", line).strip()
        if line:
            yield number, line
    if pending:
        line = _COMMENT.sub("", "".join(pending)).strip()
        if line:
            yield start, line


def parse_requirement(text: str, origin: str) -> RequirementLine:
    """One requirement line (``name[extras] spec ; marker --hash=...``)."""
    # pip's split: the first word that starts with "-" begins the per-line options.
    words = text.split(" ")
    cut = next((i for i, word in enumerate(words) if word.startswith("-")), len(words))
    spec_text, option_text = " ".join(words[:cut]).strip(), " ".join(words[cut:])
    hashes = tuple(_line_options(option_text, origin, text))
    try:
        requirement = Requirement(spec_text)
    except InvalidRequirement as e:
        if _looks_like_location(spec_text):
            raise RequirementsError(
                f"{origin}: URLs, paths and VCS links are not supported, name a project "
                f"instead: {redact(text)}"
            ) from None
        reason = str(e).splitlines()[0] if str(e) else "not a requirement"
        raise RequirementsError(
            f"{origin}: invalid requirement: {redact(text)} ({reason})"
        ) from None
    if requirement.url:
        raise RequirementsError(
            f"{origin}: direct URL requirements are not supported, warm fetches from the "
            f"index: {redact(text)}"
        )
    return RequirementLine(requirement, origin, hashes)


def _looks_like_location(text: str) -> bool:
    return (
        "://" in text
        or "/" in text
        or "\\" in text
        or text.startswith((".", "~", "file:"))
        or text.lower().endswith(_LOCATION_SUFFIXES)
    )


def _split(text: str, origin: str, line: str) -> list[str]:
    """Shell-like words of a requirements line; unbalanced quotes name the line."""
    try:
        return shlex.split(text)
    except ValueError as e:
        raise RequirementsError(f"{origin}: {e}: {redact(line)}") from None


def _line_options(option_text: str, origin: str, line: str) -> Iterator[str]:
    """The ``--hash`` values of a requirement line; other per-line options are refused."""
    tokens = _split(option_text, origin, line)
    index = 0
    while index < len(tokens):
        name, _, value = tokens[index].partition("=")
        index += 1
        if name in ("--hash", *_LINE_OPTIONS_IGNORED) and not value:
            if index >= len(tokens):
                raise RequirementsError(f"{origin}: option {name} needs a value: {redact(line)}")
            value, index = tokens[index], index + 1
        if name == "--hash":
            algorithm, _, digest = value.partition(":")
            if algorithm not in hashlib.algorithms_guaranteed or not re.fullmatch(
                r"[0-9a-fA-F]+", digest
            ):
                raise RequirementsError(
                    f"{origin}: --hash must be ALGORITHM:HEXDIGEST, not {value!r}: {redact(line)}"
                )
            yield f"{algorithm}:{digest.lower()}"
        elif name not in _LINE_OPTIONS_IGNORED:
            raise RequirementsError(
                f"{origin}: unsupported option {name} on a requirement line: {redact(line)}"
            )


class _FileReader:
    """Walks a tree of requirements files; includes are read where they appear."""

    def __init__(self) -> None:
        self.requirements: list[RequirementLine] = []
        self.constraints: list[RequirementLine] = []
        self.notes: list[str] = []
        self.pre = False
        self._reading: list[Path] = []

    def read(self, path: Path, constraint: bool, included_from: str | None = None) -> None:
        try:
            real = path.resolve()
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            reason = getattr(e, "strerror", None) or str(e)
            where = f"{included_from}: " if included_from else ""
            raise RequirementsError(
                f"{where}cannot read requirements file {str(path)!r}: {reason}"
            ) from None
        if real in self._reading:
            raise RequirementsError(f"{included_from}: {str(path)!r} includes itself")
        self._reading.append(real)
        try:
            for number, line in logical_lines(text):
                origin = f"{path}:{number}"
                if line.startswith("-"):
                    self._options(line, origin, path, constraint)
                else:
                    parsed = parse_requirement(line, origin)
                    (self.constraints if constraint else self.requirements).append(parsed)
        finally:
            self._reading.pop()

    def _options(self, line: str, origin: str, path: Path, constraint: bool) -> None:
        tokens = _split(line, origin, line)
        index = 0
        while index < len(tokens):
            token = tokens[index]
            index += 1
            name, value = token, None
            if token.startswith("--") and "=" in token:
                name, value = token.split("=", 1)
            elif not token.startswith("--") and len(token) > 2 and token[:2] in _SHORT_WITH_VALUE:
                name, value = token[:2], token[2:]
            takes_value = name in _INCLUDES or name in _EDITABLE or name in _IGNORED_WITH_VALUE
            if takes_value and value is None:
                if index >= len(tokens):
                    raise RequirementsError(f"{origin}: option {name} needs a value: {redact(line)}")
                value, index = tokens[index], index + 1
            if name in _EDITABLE:
                raise RequirementsError(
                    f"{origin}: editable requirements are not supported, warm fetches released "
                    f"files from the index: {redact(line)}"
                )
            if name in _INCLUDES:
                assert value is not None
                if "://" in value:
                    raise RequirementsError(
                        f"{origin}: including a file from a URL is not supported: {redact(line)}"
                    )
                included = Path(value).expanduser()
                if not included.is_absolute():
                    included = path.parent / included
                self.read(included, constraint or _INCLUDES[name], origin)
            elif name == "--pre":
                self.pre = True
            elif name in _IGNORED_WITH_VALUE or name in _IGNORED_FLAGS:
                self.notes.append(f"{origin}: ignoring {name} (warm fetches from --index)")
            else:
                raise RequirementsError(f"{origin}: unknown option {name}: {redact(line)}")


def parse_requirements(files: Sequence[Path | str] = (), lines: Sequence[str] = ()) -> Requirements:
    """Read requirements files (and requirements given on the command line)."""
    reader = _FileReader()
    for path in files:
        reader.read(Path(path), constraint=False)
    for text in lines:
        reader.requirements.append(parse_requirement(text.strip(), "command line"))
    return Requirements(
        tuple(reader.requirements), tuple(reader.constraints), tuple(reader.notes), reader.pre
    )


# The target: which installs to warm for (pure) -------------------------------------------

# The old manylinux names and the glibc 2.x minor version each stands for (PEP 600).
_LEGACY_MANYLINUX = MappingProxyType({"manylinux1": 5, "manylinux2010": 12, "manylinux2014": 17})
_LINUX = re.compile(
    r"(?:manylinux_(\d+)_(\d+)|(manylinux1|manylinux2010|manylinux2014)"
    r"|musllinux_(\d+)_(\d+)|linux)_(.+)"
)
_MACOS = re.compile(r"macosx_(\d+)_(\d+)_(.+)")
_WINDOWS_MACHINE = MappingProxyType(
    {"win32": "x86", "win_amd64": "AMD64", "win_arm64": "ARM64", "win_ia64": "IA64"}
)


def normalize_platform(tag: str) -> str:
    """``macosx-14.0-arm64`` and ``macosx_14_0_arm64`` name the same platform tag."""
    return tag.strip().lower().replace("-", "_").replace(".", "_")


def compatible_platforms(tag: str) -> tuple[str, ...]:
    """The platform tags an installer on ``tag`` accepts: older manylinux, musllinux, macOS too."""
    linux = _LINUX.fullmatch(tag)
    if linux:
        major, minor, legacy, musl_major, musl_minor, arch = linux.groups()
        if musl_major is not None:
            return tuple(
                f"musllinux_{musl_major}_{m}_{arch}" for m in range(int(musl_minor), -1, -1)
            ) + (f"linux_{arch}",)
        if major is None and legacy is None:
            return (tag,)
        glibc = (int(major), int(minor)) if major is not None else (2, _LEGACY_MANYLINUX[legacy])
        tags = [f"manylinux_{glibc[0]}_{m}_{arch}" for m in range(glibc[1], -1, -1)]
        tags += [f"{name}_{arch}" for name, m in _LEGACY_MANYLINUX.items() if (2, m) <= glibc]
        return (*tags, f"linux_{arch}")
    mac = _MACOS.fullmatch(tag)
    if mac:
        return tuple(mac_platforms((int(mac.group(1)), int(mac.group(2))), mac.group(3)))
    return (tag,)


def platform_environments(tag: str) -> tuple[dict[str, str], ...]:
    """The marker variables a platform tag settles (nothing for tags we cannot read)."""
    linux = _LINUX.fullmatch(tag)
    if linux:
        return (
            {
                "sys_platform": "linux",
                "platform_system": "Linux",
                "os_name": "posix",
                "platform_machine": linux.group(6),
            },
        )
    mac = _MACOS.fullmatch(tag)
    if mac:
        arch = mac.group(3)
        machines = {"universal2": ("arm64", "x86_64"), "arm64": ("arm64",)}.get(arch, ("x86_64",))
        return tuple(
            {
                "sys_platform": "darwin",
                "platform_system": "Darwin",
                "os_name": "posix",
                "platform_machine": m,
            }
            for m in machines
        )
    if tag in _WINDOWS_MACHINE:
        return (
            {
                "sys_platform": "win32",
                "platform_system": "Windows",
                "os_name": "nt",
                "platform_machine": _WINDOWS_MACHINE[tag],
            },
        )
    return ({},)


@dataclass(frozen=True)
class Target:
    """The installs to warm for. Unset fields mean "any": no file is filtered out for them."""

    python_version: str | None = None
    platforms: tuple[str, ...] = ()
    only_binary: bool = False

    @cached_property
    def python(self) -> Version:
        """The Python that Requires-Python is checked against."""
        return Version(self.python_version or "{}.{}.{}".format(*sys.version_info[:3]))

    @cached_property
    def _python_pairs(self) -> frozenset[tuple[str, str]] | None:
        if self.python_version is None:
            return None
        version = (self.python.major, self.python.minor)
        interpreter = f"cp{version[0]}{version[1]}"
        tags: list[Tag] = [*cpython_tags(version, platforms=["any"])]
        tags += compatible_tags(version, interpreter, platforms=["any"])
        return frozenset((tag.interpreter, tag.abi) for tag in tags)

    @cached_property
    def _platform_tags(self) -> frozenset[str] | None:
        if not self.platforms:
            return None
        return frozenset(t for tag in self.platforms for t in compatible_platforms(tag)) | {"any"}

    def environments(self) -> tuple[dict[str, str], ...]:
        """Marker environments to evaluate against; a marker counts if it holds in any."""
        base: dict[str, str] = {key: str(value) for key, value in default_environment().items()}
        base["extra"] = ""
        if self.python_version is not None:
            release = self.python.release
            base["python_version"] = f"{release[0]}.{release[1]}"
            base["python_full_version"] = (
                self.python_version if len(release) > 2 else f"{release[0]}.{release[1]}.0"
            )
        if not self.platforms:
            return (base,)
        seen: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
        for tag in self.platforms:
            for overrides in platform_environments(tag):
                environment = {**base, **overrides}
                seen.setdefault(tuple(sorted(environment.items())), environment)
        return tuple(seen.values())

    def accepts_tag(self, tag: Tag) -> bool:
        pairs, platforms = self._python_pairs, self._platform_tags
        return (pairs is None or (tag.interpreter, tag.abi) in pairs) and (
            platforms is None or tag.platform in platforms
        )

    def accepts_filename(self, filename: str) -> bool:
        """Would an installer on the target take this file (by its name)?"""
        if filename.endswith(".whl"):
            try:
                tags = parse_wheel_filename(filename)[3]
            except InvalidWheelFilename:
                return False
            return any(self.accepts_tag(tag) for tag in tags)
        return not self.only_binary

    def accepts_python(self, requires_python: str | None) -> bool:
        if not requires_python:
            return True
        try:
            return SpecifierSet(requires_python).contains(self.python, prereleases=True)
        except InvalidSpecifier:
            return True  # pip ignores what it cannot read; so do we

    def describe(self) -> str:
        parts = [f"Python {self.python}"]
        parts += self.platforms
        if self.only_binary:
            parts.append("wheels only")
        return ", ".join(parts)


def marker_holds(
    marker: Marker, environments: Sequence[Mapping[str, str]], extras: Iterable[str] = ("",)
) -> bool:
    """True if the marker holds for any environment with any of the extras.

    Raises packaging's marker errors for markers that cannot be evaluated.
    """
    extras = tuple(extras)
    return any(marker.evaluate({**env, "extra": extra}) for env in environments for extra in extras)


_MARKER_ERRORS = (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName)


# Choosing versions and files (pure) ------------------------------------------------------


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
            except _MARKER_ERRORS as e:
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
        except _MARKER_ERRORS as e:
            problems.append(f"cannot evaluate marker of {str(requirement)!r}: {e}")
    return chosen, problems


# The run's results -----------------------------------------------------------------------


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


# Talking to the index --------------------------------------------------------------------


class ProjectNotFound(Exception):
    """The index has no page for a project (404)."""


@dataclass(frozen=True)
class Fetched:
    """A downloaded file: its size, what the proxy said of its cache, and (if kept) its bytes."""

    size: int
    cache: str | None
    body: IO[bytes] | None = None


class IndexClient:
    """The index as warm needs it: pages, metadata and files, at most ``jobs`` at a time.

    The HTTP (one pool, credentials for the index's host only, timeouts) is the proxy's
    own upstream client, so both talk to indexes the same way.
    """

    def __init__(
        self,
        reactor: Any,
        index: UpstreamIndex,
        *,
        jobs: int,
        timeout: float,
        ca_file: Path | None = None,
    ) -> None:
        self.url = index.url
        self._http = UpstreamClient(reactor, [index], timeout, ca_file)
        self._limit = defer.DeferredSemaphore(jobs)

    async def project(self, name: str) -> ProjectPage:
        """The project's page; raises ProjectNotFound, or WarmError for an index that fails."""
        url = f"{self.url}{canonicalize_name(name)}/"
        async with self._limit:
            try:
                fetched = await fetch_project(self._http, self.url, canonicalize_name(name))
            except ProjectMissing:
                raise ProjectNotFound(name) from None
            except UpstreamStatus as e:
                if e.code in (401, 403):
                    raise WarmError(
                        f"the index refused access ({e.code}) to {redact(url)}: check the credentials in --index"
                    ) from None
                raise WarmError(f"the index answered {e.code} for {redact(url)}") from None
            except BadIndexPage as e:
                raise WarmError(str(e)) from None
            except UpstreamError as e:
                raise WarmError(f"cannot reach the index: {e}") from None
        assert fetched.page is not None  # asked without validators
        return fetched.page

    async def metadata(self, entry: FileEntry) -> bytes:
        """A file's PEP 658 metadata, checked against the hash the page gives for it."""
        async with self._limit:
            try:
                response = await self._http.get(entry.url + ".metadata")
                body = await _read(response)
            except UpstreamError as e:
                raise TransferError(str(e)) from None
        if response.code != 200:
            raise TransferError(f"HTTP {response.code}")
        wrong = body_mismatch(entry.metadata_hashes, body)
        if wrong is not None:
            raise TransferError(wrong)
        return body

    async def download(
        self,
        entry: FileEntry,
        *,
        keep: bool = False,
        progress: Callable[[int], None] = lambda n: None,
    ) -> Fetched:
        """Read a whole file and check its hash; its bytes are dropped unless ``keep``."""
        algorithm, expected = _expected_hash(entry)
        digest = hashlib.new(algorithm) if algorithm else None
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY) if keep else None
        size = 0

        def sink(data: bytes) -> None:
            nonlocal size
            size += len(data)
            if digest is not None:
                digest.update(data)
            if spool is not None:
                spool.write(data)
            progress(len(data))

        try:
            async with self._limit:
                try:
                    response = await self._http.get(entry.url)
                    if response.code != 200:
                        await _read(response)
                        raise TransferError(f"HTTP {response.code}")
                    await _stream(response, sink)
                except UpstreamError as e:
                    raise TransferError(str(e)) from None
            if digest is not None and digest.hexdigest() != expected:
                raise TransferError(
                    f"{algorithm} mismatch: the index says {expected}, got {digest.hexdigest()}"
                )
        except BaseException:
            if spool is not None:
                spool.close()
            raise
        cache = (response.header("X-Cache") or "").strip().split(" ")[0].upper() or None
        if spool is not None:
            spool.seek(0)
        return Fetched(size, cache, spool)

    async def close(self) -> None:
        await self._http.close()


async def _stream(response: Any, sink: Callable[[bytes], None]) -> None:
    try:
        await response.stream(sink)
    except defer.CancelledError:
        response.abort()  # stop the transfer too, not just our waiting for it
        raise


async def _read(response: Any) -> bytes:
    chunks: list[bytes] = []
    await _stream(response, chunks.append)
    return b"".join(chunks)


def _expected_hash(entry: FileEntry) -> tuple[str | None, str | None]:
    if entry.sha256:
        return "sha256", entry.sha256
    for algorithm, value in entry.hashes.items():
        if algorithm in hashlib.algorithms_available:
            return algorithm, value
    return None, None


async def _gather(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """Run all, wait for all; then raise the first failure in order (deterministic messages)."""
    deferreds = [defer.Deferred.fromCoroutine(_awaiting(a)) for a in awaitables]
    results = await defer.DeferredList(deferreds, consumeErrors=True)
    for ok, value in results:
        if not ok:
            assert isinstance(value, Failure)
            value.raiseException()
    return [value for _, value in results]


async def _awaiting(awaitable: Awaitable[T]) -> T:
    return await awaitable


# Progress and messages -------------------------------------------------------------------


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


# The run ---------------------------------------------------------------------------------


@dataclass(eq=False)
class _Release:
    selection: Selection
    plan: tuple[str, FileEntry] | None
    extras: set[str] = field(default_factory=set)
    requires: tuple[Requirement, ...] | None = None
    looked_up: bool = False


class Warmer:
    """One run. Resolution goes in waves (pages, then choices, then metadata), so its
    choices do not depend on the network's timing; file downloads start as soon as a
    version is chosen and run alongside."""

    def __init__(
        self,
        client: IndexClient,
        target: Target,
        reporter: Reporter,
        *,
        follow_deps: bool = True,
        pre: bool = False,
        constraints: Mapping[str, SpecifierSet] | None = None,
    ) -> None:
        self._client = client
        self._target = target
        self._reporter = reporter
        self._follow_deps = follow_deps
        self._pre = pre
        self._constraints = dict(constraints or {})
        self._environments = target.environments()
        self._pages: dict[str, ProjectPage] = {}
        self._releases: dict[str, dict[Version, _Release]] = {}
        self._downloads: set[defer.Deferred[Any]] = set()
        self._seen_urls: set[str] = set()
        self.report = Report()

    async def run(self, needs: Sequence[Need]) -> Report:
        try:
            wave = list(needs)
            while wave:
                await self._load_pages(wave)
                todo = self._choose(wave)
                wave = await self._follow(todo) if self._follow_deps else []
            await _gather(list(self._downloads))
        except BaseException:
            for download in list(self._downloads):
                download.cancel()
            await defer.DeferredList(list(self._downloads), consumeErrors=True)
            raise
        return self.report

    async def _load_pages(self, wave: Sequence[Need]) -> None:
        origins: dict[str, str] = {}
        for need in wave:
            if need.name not in self._pages:
                origins.setdefault(need.name, need.origin)
        pages = await _gather(self._page(name, origin) for name, origin in origins.items())
        self._pages.update(zip(origins, pages, strict=True))

    async def _page(self, name: str, origin: str) -> ProjectPage:
        try:
            return await self._client.project(name)
        except ProjectNotFound:
            # Before any page was found, a wrong --index is as likely as a wrong name.
            hint = "" if self._pages else f" (is {self._client.url} a Simple API root?)"
            raise WarmError(
                f"unknown project {name!r}: the index has no page for it (404){hint}; "
                f"required by {origin}"
            ) from None

    def _choose(self, wave: Sequence[Need]) -> list[tuple[_Release, frozenset[str]]]:
        todo: dict[int, tuple[_Release, set[str]]] = {}
        for need in wave:
            specifier = need.specifier & self._constraints.get(need.name, SpecifierSet())
            releases = self._releases.setdefault(need.name, {})
            fitting = [v for v in releases if specifier.contains(v, prereleases=True)]
            if fitting:
                release = releases[max(fitting)]
                extras = set(need.extras) - release.extras
            else:
                page = self._pages[need.name]
                selection = select(page, specifier, self._target, self._pre)
                if selection is None:
                    wanted = f"{need.name}{specifier}" if str(specifier) else need.name
                    reason = why_nothing_fits(page, specifier, self._target)
                    self._fail(f"{wanted} (required by {need.origin}): {reason}")
                    continue
                plan = plan_metadata(page, selection) if self._follow_deps else None
                release = releases[selection.version] = _Release(selection, plan)
                self._start(release, need)
                extras = {""} | set(need.extras)
            release.extras |= extras
            if extras:
                todo.setdefault(id(release), (release, set()))[1].update(extras)
        return [(release, frozenset(extras)) for release, extras in todo.values()]

    def _start(self, release: _Release, need: Need) -> None:
        selection = release.selection
        self.report.releases.append(selection.label)
        if selection.yanked is not None:
            reason = f" ({selection.yanked})" if selection.yanked else ""
            self._reporter.warn(
                f"{selection.label} is yanked{reason}; fetching it because {need.origin} pins it"
            )
        fallback = release.plan[1] if release.plan and release.plan[0] == "wheel" else None
        for entry in selection.files:
            if entry is not fallback:  # that one is fetched when its METADATA is wanted
                self._fetch(entry)

    def _fetch(self, entry: FileEntry, keep: bool = False) -> defer.Deferred[IO[bytes] | None]:
        if entry.url in self._seen_urls:
            return defer.succeed(None)
        self._seen_urls.add(entry.url)
        self._reporter.queued()
        download = defer.Deferred.fromCoroutine(self._download(entry, keep))
        self._downloads.add(download)

        def forget(result: object) -> object:
            self._downloads.discard(download)
            return result

        return download.addBoth(forget)

    async def _download(self, entry: FileEntry, keep: bool) -> IO[bytes] | None:
        try:
            fetched = await self._client.download(
                entry, keep=keep, progress=self._reporter.received
            )
        except TransferError as e:
            self._fail(f"{entry.filename}: {e}")
            return None
        finally:
            self._reporter.finished()
        self.report.files += 1
        self.report.bytes += fetched.size
        self.report.hits += fetched.cache == "HIT"
        self.report.misses += fetched.cache == "MISS"
        self.report.unverified += _expected_hash(entry)[0] is None
        return fetched.body

    async def _follow(self, todo: Sequence[tuple[_Release, frozenset[str]]]) -> list[Need]:
        await _gather(self._look_up(release) for release, _ in todo if not release.looked_up)
        wave = []
        for release, extras in todo:
            if release.requires is None:
                continue
            label = release.selection.label
            chosen, problems = dependencies(release.requires, extras, self._environments)
            for problem in problems:
                self._reporter.warn(f"{label}: {problem}")
            for requirement in chosen:
                if requirement.url:
                    self._reporter.warn(
                        f"{label} wants {requirement.name} from a URL: not followed"
                    )
                    continue
                wave.append(
                    Need(
                        canonicalize_name(requirement.name),
                        requirement.specifier,
                        frozenset(canonicalize_name(e) for e in requirement.extras),
                        label,
                    )
                )
        return wave

    async def _look_up(self, release: _Release) -> None:
        """Learn a release's dependencies, the cheapest way its files allow."""
        release.looked_up = True
        label = release.selection.label
        if release.plan is None:
            self._sdist_only(label)
            return
        kind, entry = release.plan
        if kind == "metadata":
            try:
                data = await self._client.metadata(entry)
            except TransferError as e:
                self._fail(f"{entry.filename}.metadata: {e} (dependencies of {label} not followed)")
                return
        else:
            body = await self._fetch(entry, keep=True)
            if body is None:
                return  # the failed download is already listed
            with body:
                try:
                    data = metadata_from_wheel(body, release.selection.name)
                except MetadataError as e:
                    self._fail(f"{entry.filename}: {e} (dependencies of {label} not followed)")
                    return
        requires, invalid = read_requires_dist(data, sdist=not entry.filename.endswith(".whl"))
        for text in invalid:
            self._reporter.warn(f"{label}: ignoring invalid Requires-Dist {text!r}")
        if requires is None:
            self._sdist_only(label)
        release.requires = requires

    def _sdist_only(self, label: str) -> None:
        self.report.sdist_only.append(label)
        self._reporter.warn(
            f"{label} has only an sdist here: its dependencies are not followed "
            "(that needs a build)"
        )

    def _fail(self, message: str) -> None:
        self.report.failures.append(message)


# Command line ----------------------------------------------------------------------------


def _index_url(value: str) -> UpstreamIndex:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"must be an http or https URL, not {redact(value)!r}")
    try:
        return parse_upstream(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).replace("--upstream", "--index")) from None


def _python_version(value: str) -> str:
    if not re.fullmatch(r"3\.\d+(\.\d+)?", value.strip()):
        raise argparse.ArgumentTypeError(f"expected a version like 3.12, not {value!r}")
    return value.strip()


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(value: str) -> Any:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
        if not 0 < number < float("inf"):
            raise argparse.ArgumentTypeError(f"must be more than zero, not {value!r}")
        return number

    return parse


def configure(parser: argparse.ArgumentParser) -> None:
    """Add warm's options to its subcommand parser."""
    parser.description = (
        "Fill a proxy's cache ahead of time: resolve requirements against the index and\n"
        "fetch every file of each chosen version through it (checked, then discarded)."
    )
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "requirements",
        nargs="*",
        metavar="REQUIREMENT",
        help="a requirement such as 'flask>=3' (in addition to -r files)",
    )
    parser.add_argument(
        "-r",
        "--requirement",
        dest="files",
        action="append",
        default=[],
        metavar="FILE",
        help="a requirements file; repeatable",
    )
    parser.add_argument(
        "--index",
        required=True,
        type=_index_url,
        metavar="URL",
        help="the Simple API root to warm, e.g. http://host:3141/simple/; "
        "http://user:pass@host/simple/ for basic auth",
    )
    parser.add_argument(
        "--index-ca",
        type=Path,
        metavar="FILE",
        help="PEM bundle to verify the index's TLS with, instead of the system's",
    )
    parser.add_argument(
        "--no-deps", action="store_true", help="fetch only what is named, not dependencies"
    )
    parser.add_argument(
        "--python-version",
        type=_python_version,
        metavar="X.Y",
        help="the Python to warm for (markers, Requires-Python, wheel tags) "
        "[default: this interpreter's for markers and Requires-Python, any for wheels]",
    )
    parser.add_argument(
        "--platform",
        dest="platforms",
        action="append",
        default=[],
        metavar="TAG",
        type=normalize_platform,
        help="a platform tag to warm for (manylinux_2_28_x86_64, macosx_14_0_arm64, "
        "win_amd64); repeatable [default: all]",
    )
    parser.add_argument("--only-binary", action="store_true", help="skip sdists")
    parser.add_argument("--pre", action="store_true", help="allow pre-releases")
    parser.add_argument(
        "-j",
        "--jobs",
        type=_positive(int),
        default=DEFAULT_JOBS,
        metavar="N",
        help=f"requests at a time [default: {DEFAULT_JOBS}]",
    )
    parser.add_argument(
        "--timeout",
        type=_positive(float),
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="per request: to connect, to answer, and between bytes "
        f"[default: {DEFAULT_TIMEOUT:g}]",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no notes")


async def execute(reactor: Any, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """The whole command, given a running reactor: returns the exit status."""
    prog = "pypiproxy warm"
    if not args.files and not args.requirements:
        err.write(f"{prog}: error: nothing to warm: give -r FILE or a requirement\n")
        return 2
    target = Target(args.python_version, tuple(args.platforms), args.only_binary)
    try:
        requirements = parse_requirements(args.files, args.requirements)
        environments = target.environments()
        needs = top_level_needs(requirements.requirements, environments)
        constraints = constraint_specifiers(requirements.constraints, environments)
    except RequirementsError as e:
        err.write(f"{prog}: error: {e}\n")
        return 2
    reporter = Reporter(err, quiet=args.quiet, progress=err.isatty())
    for note in requirements.notes:
        reporter.note(note)
    client = IndexClient(
        reactor, args.index, jobs=args.jobs, timeout=args.timeout, ca_file=args.index_ca
    )
    warmer = Warmer(
        client,
        target,
        reporter,
        follow_deps=not args.no_deps,
        pre=args.pre or requirements.pre,
        constraints=constraints,
    )
    try:
        report = await warmer.run(needs)
    except WarmError as e:
        fatal: WarmError | None = e
    else:
        fatal = None
    finally:
        reporter.stop()  # before anything else is written to the terminal
        await client.close()
    if fatal is not None:
        err.write(f"{prog}: error: {fatal}\n")
        return 2
    for line in summary_lines(report):
        out.write(line + "\n")
    if report.failures:
        err.write(f"{prog}: error: {len(report.failures)} failed:\n")
        for failure in report.failures:
            err.write(f"  {failure}\n")
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the command in its own reactor; returns the exit status."""
    return run_command("pypiproxy warm", lambda reactor: execute(reactor, args, sys.stdout, sys.stderr))
