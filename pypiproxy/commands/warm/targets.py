"""The installs to warm for: platform tags, the marker environments they settle, the Target: pure."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType

from packaging.markers import (
    InvalidMarker,
    Marker,
    UndefinedComparison,
    UndefinedEnvironmentName,
    default_environment,
)
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags, mac_platforms
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import Version

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

    Raises one of ``MARKER_ERRORS`` for a marker that cannot be evaluated.
    """
    extras = tuple(extras)
    return any(marker.evaluate({**env, "extra": extra}) for env in environments for extra in extras)


# What packaging raises for a marker it cannot read or evaluate.
MARKER_ERRORS = (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName)
