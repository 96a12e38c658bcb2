"""``pypiproxy verify``: check every cached file against the sha256 it is stored under, and its metadata."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Iterator

from ..cache import KEY
from ..cache.store import METADATA
from ..simple.hashes import new_hash, sha256_of
from ..simple.wheels import MAX_METADATA, NoMetadata, wheel_metadata


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", required=True, type=Path, help="the proxy's --cache-dir")
    parser.epilog = (
        "Each cached upstream file is hashed and compared with the sha256 it is stored under. "
        "A bad one is named on stdout and removed (with its metadata), so the next request "
        "fetches it again. Each .metadata file is checked too: an upstream's against the hash "
        "it is stored under, a wheel's own against the wheel; a bad or orphaned one is named "
        "and removed. Files cached from an index that gave no sha256 cannot be checked "
        "and are counted apart. Exit status: 0 all good, 1 some were bad, 2 bad usage."
    )


def cached_files(cache_dir: Path) -> Iterator[Path]:
    files = cache_dir / "files"
    for folder in sorted(files.iterdir()):
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if KEY.match(path.name):
                    yield path


def metadata_files(cache_dir: Path) -> Iterator[Path]:
    for folder in sorted((cache_dir / "files").iterdir()):
        if folder.is_dir():
            yield from sorted(folder.glob("*.metadata"))


def _remove(*paths: Path) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def metadata_problem(path: Path) -> str | None:
    """Why a ``.metadata`` file beside the cached files is not to be trusted, or None.

    Raises LookupError for one that cannot be checked (an upstream's announced without a hash)."""
    match = METADATA.match(path.name)
    if match is None:
        return "not a metadata file of this version (left by an older one)"
    data = path.read_bytes()
    if match["wheel"]:
        wheel = path.with_name(match["key"])
        if not wheel.exists():
            return "its wheel is no longer cached"
        try:
            expected = wheel_metadata(wheel, max_size=MAX_METADATA)
        except NoMetadata as e:
            return f"its wheel gives none: {e}"
        return None if expected == data else "differs from its wheel's METADATA"
    if match["url"]:
        raise LookupError("announced without a hash")
    try:
        digest = new_hash(match["algorithm"])
    except ValueError:
        raise LookupError(f"unknown hash {match['algorithm']}") from None
    digest.update(data)
    actual = digest.hexdigest()
    return None if actual == match["digest"] else f"{match['algorithm']} {actual}"


def run(args: argparse.Namespace) -> int:
    cache_dir: Path = args.cache_dir
    if not (cache_dir / "files").is_dir():
        print(f"pypiproxy verify: error: {str(cache_dir)!r} is not a pypiproxy cache directory "
              "(it has no files/ folder)", file=sys.stderr)
        return 2
    checked = unverifiable = 0
    size = 0
    bad: list[Path] = []
    for path in cached_files(cache_dir):
        if path.name.startswith("u"):
            unverifiable += 1
            continue
        try:
            actual = sha256_of(path)
            size += path.stat().st_size
        except OSError as e:
            actual = f"unreadable ({e.strerror})"
        checked += 1
        if actual != path.name:
            bad.append(path)
            print(f"corrupt: {path} (sha256 {actual})", flush=True)
            _remove(path, *path.parent.glob(f"{path.name}.*metadata"))
    metadata_checked = metadata_unverifiable = 0
    for path in metadata_files(cache_dir):
        try:
            problem = metadata_problem(path)
        except LookupError:
            metadata_unverifiable += 1
            continue
        except OSError as e:
            problem = f"unreadable ({e.strerror})"
        metadata_checked += 1
        if problem is not None:
            bad.append(path)
            print(f"bad metadata: {path} ({problem})", flush=True)
            _remove(path)
    unchecked = unverifiable + metadata_unverifiable
    print(
        f"verified {checked} files ({size} bytes) and {metadata_checked} metadata files: "
        f"{len(bad)} bad and removed"
        + (f"; {unchecked} without a hash not checked" if unchecked else "")
    )
    return 1 if bad else 0
