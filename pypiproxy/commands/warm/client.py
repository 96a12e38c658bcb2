"""The index as warm reads it: pages, PEP 658 metadata and files, checked, a few at a time."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from packaging.utils import canonicalize_name
from twisted.internet import defer

from ...config import UpstreamIndex, redact
from ...simple import FileEntry, ProjectPage
from ...simple.hashes import body_mismatch, known, mismatch
from ...simple.wheels import MAX_METADATA
from ...upstream import (
    BadIndexPage, ProjectMissing, UpstreamClient, UpstreamError, UpstreamStatus, fetch_project, read_at_most,
)

# A wheel read for its METADATA stays in memory up to this size, then spills to a temp file.
_SPOOL_MEMORY = 32 * 1024 * 1024


class WarmError(Exception):
    """A failure that ends the run at once (exit status 2); ``str()`` is the one line to show."""


class TransferError(Exception):
    """One request failed; the message says why, without credentials."""


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
                if response.code != 200:
                    await _read(response)
                    raise TransferError(f"HTTP {response.code}")
                body = await read_at_most(response, MAX_METADATA, "it")
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
        expected = expected_hash(entry)
        digests = known(expected)
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY) if keep else None
        size = 0

        def sink(data: bytes) -> None:
            nonlocal size
            size += len(data)
            for digest in digests.values():
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
            wrong = mismatch(expected, {name: digest.hexdigest() for name, digest in digests.items()})
            if wrong is not None:
                raise TransferError(wrong)
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


def expected_hash(entry: FileEntry) -> dict[str, str]:
    """The one digest a file is checked against: the index's sha256, else the first of its
    hashes that hashlib computes; empty when there is none (the file is unverified)."""
    if entry.sha256:
        return {"sha256": entry.sha256}
    for algorithm, value in entry.hashes.items():
        if algorithm in hashlib.algorithms_available:
            return {algorithm: value}
    return {}
