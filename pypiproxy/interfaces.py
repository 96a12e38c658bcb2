"""The seams between the layers, declared as Twisted declares its own (``twisted.web.iweb``)."""

from __future__ import annotations

from typing import Callable

from twisted.internet import defer
from zope.interface import Attribute, Interface

# How blocking work is run beside the reactor: ``threads.deferToThread``, or inline in tests.
# Every layer takes one as a parameter; the service passes the same one down.
ToThread = Callable[..., defer.Deferred]


class ISourceObserver(Interface):
    """Told when a file source has more bytes, or has ended (well or badly)."""

    def progress() -> None:
        """The source's ``available()`` grew, or it finished or failed."""


class IFileSource(Interface):
    """What a file producer reads: a file on disk and how much of it may be sent.

    A cached file is all there at once; a download in progress grows, and tells its
    observers as it does. Either is read the same way.
    """

    path = Attribute("The file on disk (a download's temporary, until it is committed).")
    length = Attribute("The whole file's size, or None while it is not known.")
    written = Attribute("How many bytes are on disk and may be read from there.")

    def open():  # type: ignore[no-untyped-def]
        """The file, opened for reading in binary mode."""

    def available() -> int:
        """How many bytes, from the start, readers may have now."""

    def recent(offset: int, end: int) -> bytes | None:
        """Bytes from ``offset`` (up to ``end``) still held in memory, or None."""

    def finished() -> bool:
        """All of it is there and verified."""

    def failed() -> bool:
        """It will never be complete: readers must abort."""

    def subscribe(observer: ISourceObserver) -> None:
        """Tell ``observer`` of each change until it unsubscribes."""

    def unsubscribe(observer: ISourceObserver) -> None:
        """Stop telling ``observer``."""


class IProjectPages(Interface):
    """Where project pages come from: the page cache, or the private tier in front of it."""

    def fresh(name: str):  # type: ignore[no-untyped-def]
        """The CachedPage if it may be served now without asking anyone (no Deferred), or None."""

    def project(name: str):  # type: ignore[no-untyped-def]
        """A coroutine: the CachedPage of a normalised name (fetched or revalidated if due);
        raises ProjectNotFound or UpstreamError."""

    def cached(name: str):  # type: ignore[no-untyped-def]
        """A coroutine: what is held for a project however old, without asking anyone, or None."""

    def private_names() -> tuple[str, ...]:
        """The names served from the private store alone, sorted (none for a plain cache)."""

    def held_names():  # type: ignore[no-untyped-def]
        """A coroutine: the names whose upstream pages are held on disk, without asking anyone."""


class IFiles(Interface):
    """Where files and their PEP 658 metadata come from: the file cache, or the private tier."""

    metadata_generation = Attribute("Bumped whenever metadata appears or goes that pages announce.")

    def cached(key: str) -> IFileSource | None:
        """The complete file under ``key``, or None."""

    def fetch(key: str, entry):  # type: ignore[no-untyped-def]
        """A coroutine: an IFileSource of the file, cached or being downloaded."""

    def download(key: str, entry):  # type: ignore[no-untyped-def]
        """The one download of a file (started now or joined); raises NotCached offline."""

    def upstream_range(entry, spec: str):  # type: ignore[no-untyped-def]
        """A coroutine: a byte range straight from the upstream, or None if it has no ranges."""

    def metadata(key: str, entry):  # type: ignore[no-untyped-def]
        """A coroutine: the file's PEP 658 metadata, or None when there is none."""

    def metadata_at_hand(key: str):  # type: ignore[no-untyped-def]
        """A coroutine: the file's core metadata if we hold it (stored, or inside the cached
        wheel), else None; never asks an upstream, never starts a download."""

    def local_metadata(key: str) -> str | None:
        """The sha256 of metadata we hold for a cached wheel its index offered none for."""
