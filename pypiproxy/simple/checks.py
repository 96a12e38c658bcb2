"""What an upstream page may hold: entries that could hurt a client or us are dropped (pure).

An index page is data from outside (DESIGN.md, "Supply-chain guard"): its file names become
path segments of our URLs and text in our HTML and JSON, its project names become links, its
URLs are fetched by us. So a file name must be a wheel or sdist name (no ``/``, ``\\``, control
characters or markup), a file URL must be http or https with a good host and port, and a
listed project must have a PEP 508 name. The parsers stay permissive; this is the one place
that says what is let through, applied once where pages are fetched (upstream/index.py).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable
from urllib.parse import urlsplit

from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion

from .filenames import VALID_NAME
from .model import FileEntry, ProjectPage

# Longest project name we serve: far above any real one (the public index's longest is under
# 100), and short enough that ``pages/<name>.json`` is a valid file name on every filesystem.
MAX_NAME = 200
# A distribution file name: no path separators, controls, spaces, quotes or markup.
_SAFE_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!~-]*\Z")
# Source distributions as indexes list them, the legacy formats too (pip still installs them).
_SDIST = (".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz", ".tar")


def file_problem(entry: FileEntry) -> str | None:
    """Why an entry is dropped (a short reason, for counting), or None to keep it."""
    name = entry.filename
    if not isinstance(name, str) or not 0 < len(name) <= 255 or not _SAFE_FILENAME.match(name):
        return "bad file name"
    if name.endswith(".whl"):
        try:
            parse_wheel_filename(name)
        except (InvalidWheelFilename, InvalidVersion):
            return "bad file name"
    elif not (name.endswith(_SDIST) and "-" in name):
        return "not a wheel or sdist"
    try:
        parts = urlsplit(entry.url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return "bad URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "bad URL"
    if any(ord(c) < 32 or c == "\x7f" for c in entry.url):
        return "bad URL"
    return None


def checked_page(page: ProjectPage) -> tuple[ProjectPage, Counter[str]]:
    """The page without the entries that may not be served, and what was dropped, by reason."""
    dropped: Counter[str] = Counter()
    kept = []
    for entry in page.files:
        problem = file_problem(entry)
        if problem is None:
            kept.append(entry)
        else:
            dropped[problem] += 1
    if not dropped:
        return page, dropped
    return page.with_files(kept), dropped


def checked_names(names: Iterable[str]) -> tuple[tuple[str, ...], int]:
    """The PEP 508 names of a project list (of a sane length), and how many were dropped."""
    kept = []
    dropped = 0
    for name in names:
        if isinstance(name, str) and len(name) <= MAX_NAME and VALID_NAME.match(name):
            kept.append(name)
        else:
            dropped += 1
    return tuple(kept), dropped
