"""What a wheel says about itself: its METADATA, read for PEP 658 and for dependencies."""

from __future__ import annotations

import os
import zipfile
from typing import IO

from packaging.utils import canonicalize_name

# The most METADATA we read, from a wheel or an upstream's ``.metadata``: real ones are a few
# KiB (the largest seen hold long READMEs, well under this); a small zip can inflate to GBs.
MAX_METADATA = 1024 * 1024
_CHUNK = 64 * 1024


class NoMetadata(ValueError):
    """Not a wheel whose METADATA can be read; the message says why."""


class MetadataTooLarge(NoMetadata):
    """The METADATA is over the cap: refused, not read."""


def wheel_metadata(
    wheel: str | os.PathLike[str] | IO[bytes], name: str | None = None, max_size: int = MAX_METADATA
) -> bytes:
    """The wheel's top-level ``*.dist-info/METADATA``: the only one, or, where a wheel has
    several, the one of project ``name``. Read streamed, and refused past ``max_size``
    whatever the zip's directory claims (a zip bomb lies there)."""
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
            if found[0].file_size > max_size:
                raise MetadataTooLarge(f"its METADATA is over {max_size} bytes")
            chunks: list[bytes] = []
            read = 0
            with archive.open(found[0]) as member:
                while chunk := member.read(_CHUNK):
                    read += len(chunk)
                    if read > max_size:
                        raise MetadataTooLarge(f"its METADATA is over {max_size} bytes")
                    chunks.append(chunk)
            return b"".join(chunks)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, KeyError, EOFError, ValueError) as e:
        if isinstance(e, NoMetadata):
            raise
        raise NoMetadata(f"not a readable wheel ({e})") from None
