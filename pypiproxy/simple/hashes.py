"""Hashes as indexes name them: of files and bodies, and checks against what an index says."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterable, Mapping

CHUNK = 1024 * 1024


def new_hash(algorithm: str) -> Any:
    """A hashlib object for an index's algorithm name (the upload API's ``blake2_256`` too);
    ValueError for one we do not know."""
    if algorithm == "blake2_256":
        return hashlib.blake2b(digest_size=32)
    return hashlib.new(algorithm)


def known(hashes: Mapping[str, str]) -> dict[str, Any]:
    """Fresh hash objects for those of ``hashes`` we can compute."""
    objects = {}
    for algorithm in hashes:
        try:
            objects[algorithm] = new_hash(algorithm)
        except ValueError:
            pass  # an algorithm we do not know is one we cannot check
    return objects


def file_digests(path: Path, algorithms: Iterable[str] = ("sha256",)) -> tuple[dict[str, str], int]:
    """The file's digests in the algorithms we know (blocking: run it in a thread), and its size."""
    hashes = known(dict.fromkeys(algorithms, ""))
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            size += len(chunk)
            for h in hashes.values():
                h.update(chunk)
    return {name: h.hexdigest() for name, h in hashes.items()}, size


def sha256_of(path: Path) -> str:
    return file_digests(path)[0]["sha256"]


def mismatch(expected: Mapping[str, str], actual: Mapping[str, str]) -> str | None:
    """Why ``actual`` digests are not the ``expected`` ones (for the algorithms both have),
    or None when they agree."""
    for algorithm, digest in expected.items():
        if algorithm in actual and actual[algorithm] != digest.lower():
            return f"{algorithm} mismatch: the index says {digest}, got {actual[algorithm]}"
    return None


def body_mismatch(expected: Mapping[str, str], body: bytes) -> str | None:
    """``mismatch`` for a body held in memory."""
    hashes = known(expected)
    for h in hashes.values():
        h.update(body)
    return mismatch(expected, {name: h.hexdigest() for name, h in hashes.items()})
