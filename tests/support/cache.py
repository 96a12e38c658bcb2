"""What a cache directory holds, as the tests look at it: stored files, temporaries, file URLs."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urljoin

from pypiproxy.private import PrivateStore, check_distribution

from .builders import Built
from .waiting import wait_until

__all__ = ["add_private", "cached_files", "file_path", "no_temporaries_left", "temporaries"]

JSON = "application/vnd.pypi.simple.v1+json"


def cached_files(cache_dir: Path) -> dict[str, bytes]:
    """Every file in the content-addressed store by name: the files (named by their sha256)
    and the ``<sha256>.*.metadata`` files beside them."""
    return {path.name: path.read_bytes() for path in (cache_dir / "files").glob("*/*") if path.is_file()}


def temporaries(cache_dir: Path) -> list[Path]:
    """The temporary files of every process that uses the directory (downloads, uploads)."""
    return sorted(path for path in (cache_dir / "tmp").glob("*/*"))


async def no_temporaries_left(cache_dir: Path) -> None:
    """Wait until no temporary is left: pages and extracted METADATA are written behind the
    answers, so one may still be on its way for a moment; a leftover fails after the bound."""
    await wait_until(lambda: temporaries(cache_dir) == [],
                     what=lambda: f"the temporaries to go: {temporaries(cache_dir)}")


async def file_path(proxy, project: str, filename: str) -> str:
    """The proxy's URL path for one file, read from its JSON page."""
    _, body = await proxy.get(f"simple/{project}/", {"Accept": JSON})
    for f in json.loads(body)["files"]:
        if f["filename"] == filename:
            return urljoin(f"http://p/simple/{project}/", f["url"]).removeprefix("http://p/")
    raise KeyError(filename)


def add_private(cache_dir: Path, built: Built) -> None:
    """Put a file into a cache directory's private store, as an upload would (before a server starts)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    store = PrivateStore(cache_dir / "private", lambda name: cache_dir / f"{name}.tmp")
    path = cache_dir / built.filename
    path.write_bytes(built.data)
    store.add(path, check_distribution(path, built.filename))
