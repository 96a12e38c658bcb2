"""Names in the Simple API: project names (PEP 503/508) and distribution file names."""

from __future__ import annotations

import re

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

# Each pattern ends in \Z, never $: $ matches before a last newline too ("demo\n" was a name).
# PEP 508's name, as a client may spell it (any case, runs of . _ -).
VALID_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])\Z", re.IGNORECASE)
# A normalised (PEP 503) name.
NORMALISED_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?\Z")
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]*\Z")


class BadFilename(ValueError):
    """Not the name of a wheel or an sdist; the message says why."""


def parse_filename(filename: str) -> tuple[str, Version]:
    """The normalised project name and version a wheel or sdist file name carries."""
    if not _FILENAME.match(filename) or len(filename) > 255:
        raise BadFilename(f"not a valid wheel or sdist file name: {filename[:100]!r}")
    try:
        if filename.endswith(".whl"):
            name, version, _build, _tags = parse_wheel_filename(filename)
        else:
            name, version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion) as e:
        raise BadFilename(f"not a valid wheel or sdist file name: {filename!r} ({e})") from None
    if not NORMALISED_NAME.match(name):
        raise BadFilename(f"not a valid project name in the file name {filename!r}")
    return name, version


def is_distribution_name(filename: str) -> bool:
    try:
        parse_filename(filename)
    except BadFilename:
        return False
    return True


def version_of(filename: str) -> str | None:
    """The version a wheel or sdist filename carries, or ``None`` for other files."""
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except (InvalidWheelFilename, InvalidSdistFilename, ValueError):
        return None
