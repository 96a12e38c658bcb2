"""PEP 658 metadata in the cache: the upstream's, fetched once and checked, and cached wheels' own.

Metadata is tied to its file: an upstream's is kept per (file key, announced hash) and checked
against the hash the page that offers it announced, every time it is served; metadata we
announce ourselves comes only from the cached wheel, whose bytes were checked against its key.
So a page of one project can never make another project's file announce other metadata.
"""

from __future__ import annotations

import hashlib

from twisted.logger import Logger

from ..simple import FileEntry
from ..simple.hashes import body_mismatch
from ..simple.wheels import MAX_METADATA, MetadataTooLarge, NoMetadata, wheel_metadata
from ..stats import Stats
from ..upstream import UpstreamClient, UpstreamError, read_at_most
from .download import HashMismatch, ToThread
from .store import FileStore

log = Logger()


class MetadataCache:
    """``files/ab/<key>.metadata`` beside each file, and what pages may announce of it."""

    def __init__(self, store: FileStore, stats: Stats, to_thread: ToThread) -> None:
        self._store = store
        self._stats = stats
        self._to_thread = to_thread
        # sha256 of the METADATA we hold for wheels whose index offers none
        self._local: dict[str, str] = {}
        # Bumped whenever such metadata appears or goes, so pages announcing it are rendered anew.
        self.generation = 0

    def stored(self, key: str) -> bytes | None:
        """The METADATA extracted from the cached wheel ``key``, if any (small: read on the reactor)."""
        try:
            return self._store.metadata_path(key).read_bytes()
        except OSError:
            return None

    def upstream_stored(self, key: str, entry: FileEntry) -> bytes | None:
        """The upstream's metadata we hold for this entry, if it has the hash the entry announces."""
        try:
            data = self._store.upstream_metadata_path(key, entry.metadata_hashes, entry.url).read_bytes()
        except OSError:
            return None
        if body_mismatch(entry.metadata_hashes, data) is not None:
            return None  # damaged on disk: fetched again, and replaced
        return data

    def local(self, key: str) -> str | None:
        """The sha256 of the METADATA we can serve for a cached wheel, if any."""
        known = self._local.get(key)
        if known is None:
            # Not remembered when absent: another process sharing the cache directory may
            # extract it later, and pages rendered anew (at the latest after the TTL) show it.
            data = self.stored(key)
            if data is None:
                return None
            known = self._local[key] = hashlib.sha256(data).hexdigest()
        return known

    def forget(self, key: str) -> None:
        """The file is gone (evicted): stop announcing its metadata."""
        if self._local.pop(key, None) is not None:
            self.generation += 1

    async def extract(self, key: str) -> bytes | None:
        """Copy a cached wheel's METADATA beside it, for PEP 658 clients; None if it has none."""
        data = await self._to_thread(self._extract, key)
        if data is not None:
            self._local[key] = hashlib.sha256(data).hexdigest()
            self.generation += 1
        return data

    def read_wheel(self, key: str) -> bytes | None:  # in a thread
        """A cached file's METADATA if it is a readable wheel, else None; nothing is kept."""
        try:
            return wheel_metadata(self._store.path(key))
        except NoMetadata:
            return None

    def _extract(self, key: str) -> bytes | None:  # in a thread
        try:
            data = wheel_metadata(self._store.path(key), max_size=MAX_METADATA)
        except MetadataTooLarge as e:
            log.warn("not offering the METADATA of {key}: {error}", key=key, error=str(e))
            return None
        except NoMetadata:
            return None
        self._store.write(self._store.metadata_path(key), data)
        return data

    async def fetch(self, key: str, entry: FileEntry, client: UpstreamClient) -> bytes | None:
        """The upstream's ``<file URL>.metadata``, checked against the page's hash, and kept."""
        response = await client.get(entry.url + ".metadata")
        if response.code == 404:
            response.abort()
            return None
        if response.code != 200:
            response.abort()
            raise UpstreamError(f"upstream answered {response.code} for {entry.filename}.metadata")
        data = await read_at_most(response, MAX_METADATA, f"{entry.filename}.metadata")
        wrong = body_mismatch(entry.metadata_hashes, data)
        if wrong is not None:
            self._stats.incr("hash_mismatches")
            raise HashMismatch(f"{entry.filename}.metadata: {wrong}")
        path = self._store.upstream_metadata_path(key, entry.metadata_hashes, entry.url)
        try:
            await self._to_thread(self._store.write, path, data)
        except OSError as e:
            log.warn("could not cache {path}: {error}", path=str(path), error=str(e))
        return data
