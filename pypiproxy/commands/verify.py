"""``pypiproxy verify``: check every cached file against the sha256 it is stored under."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Iterator

from ..cache import KEY
from ..simple.hashes import sha256_of


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", required=True, type=Path, help="the proxy's --cache-dir")
    parser.epilog = (
        "Each cached upstream file is hashed and compared with the sha256 it is stored under. "
        "A bad one is named on stdout and removed (with its metadata), so the next request "
        "fetches it again. Files cached from an index that gave no sha256 cannot be checked "
        "and are counted apart. Exit status: 0 all good, 1 some were bad, 2 bad usage."
    )


def cached_files(cache_dir: Path) -> Iterator[Path]:
    files = cache_dir / "files"
    for folder in sorted(files.iterdir()):
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if KEY.match(path.name):
                    yield path


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
            for victim in (path, path.with_name(path.name + ".metadata")):
                try:
                    os.unlink(victim)
                except FileNotFoundError:
                    pass
    print(
        f"verified {checked} files ({size} bytes): {len(bad)} corrupt and removed"
        + (f"; {unverifiable} without a sha256 not checked" if unverifiable else "")
    )
    return 1 if bad else 0
