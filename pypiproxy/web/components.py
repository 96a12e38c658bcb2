"""What the resources answer from: built once by the service, passed down the tree."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from twisted.internet.interfaces import IReactorTime

from .. import simple
from ..cache import ProjectListCache, cache_key
from ..interfaces import IFiles, IProjectPages, ToThread
from ..private import Audit, PrivateStore, UploadRules
from ..stats import Stats
from .negotiation import Negotiations
from .tokens import TokenService


@dataclass(frozen=True)
class TeamActions:
    """What the pages change things through: yank in the store (for those the rules let
    manage a project), each user's tokens, and the audit trail."""

    store: PrivateStore
    rules: UploadRules
    audit: Audit
    tokens: TokenService
    logins: bool  # the server has users (--htpasswd): there is a login to ask for


@dataclass(frozen=True)
class Components:
    """What the resources answer from; built once by the service."""

    pages: IProjectPages
    project_list: ProjectListCache  # the upstreams' names and the private ones, on disk
    files: IFiles
    stats: Stats
    ttl: float
    clock: IReactorTime
    to_thread: ToThread
    # What the landing page tells people: the upstreams (never with credentials), how many
    # files the cache holds and their bytes (blocking: run in a thread), the guard's rules.
    upstreams: tuple[str, ...] = ()
    census: Callable[[], tuple[int, int]] | None = None
    guard_rules: Callable[[], tuple[str, ...]] = field(default=lambda: ())
    team: TeamActions | None = None
    cache_dir: Path | None = None
    # Behind nginx: complete files are answered with "X-Accel-Redirect: <this>/<path in cache_dir>".
    accel_redirect: str | None = None
    negotiations: Negotiations = field(default_factory=Negotiations)

    @property
    def logins(self) -> bool:
        """The server has users: the pages offer to log in."""
        return self.team is not None and self.team.logins

    def announce_local_metadata(self, entry: simple.FileEntry) -> simple.FileEntry:
        """A cached wheel's METADATA is offered (PEP 658) even where the upstream had none,
        so every tier below resolves without opening wheels."""
        if entry.has_metadata or not entry.filename.endswith(".whl"):
            return entry
        digest = self.files.local_metadata(cache_key(entry))
        return replace(entry, has_metadata=True, metadata_hashes={"sha256": digest}) if digest else entry
