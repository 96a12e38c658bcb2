"""What a wheel says about itself: its METADATA, read for PEP 658 and for dependencies."""

from __future__ import annotations

import os
import zipfile
from typing import IO

from packaging.utils import canonicalize_name


class NoMetadata(ValueError):
    """Not a wheel whose METADATA can be read; the message says why."""


def wheel_metadata(
    wheel: str | os.PathLike[str] | IO[bytes], name: str | None = None, max_size: int | None = None
) -> bytes:
    """The wheel's top-level ``*.dist-info/METADATA``: the only one, or, where a wheel has
    several, the one of project ``name``."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            found = sorted(
                (i for i in archive.infolist()
                 if i.filename.count("/") == 1 and i.filename.endswith(".dist-info/METADATA")),
                key=lambda i: i.filename,
            )
            if name is not None and len(found) > 1:
                wanted = canonicalize_name(name)
                found = [
                    i for i in found
                    if canonicalize_name(i.filename.split("/")[0].rsplit("-", 1)[0]) == wanted
                ] or found[:1]
            if len(found) != 1:
                raise NoMetadata("no single .dist-info/METADATA" if found else "no .dist-info/METADATA")
            if max_size is not None and found[0].file_size > max_size:
                raise NoMetadata("its METADATA is too large")
            return archive.read(found[0])
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, KeyError, EOFError) as e:
        raise NoMetadata(f"not a readable wheel ({e})") from None
