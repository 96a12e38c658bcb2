"""The private tier's shared state in a cache directory, for the server and the console commands alike."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .audit import Audit
from .ownership import Claims, Owners
from .tokens import TokenStore


@dataclass(frozen=True)
class Team:
    """``<cache-dir>/team/``: tokens, owners, claims and the audit log."""

    tokens: TokenStore
    owners: Owners
    claims: Claims
    audit: Audit

    @classmethod
    def open(cls, cache_dir: Path, run: Callable[..., Any] | None = None) -> "Team":
        """The state of a cache directory; ``run`` runs the audit log's writes (a server's threads)."""
        folder = cache_dir / "team"
        return cls(
            tokens=TokenStore(folder / "tokens.json"),
            owners=Owners(folder / "owners.json"),
            claims=Claims(folder / "claims.json"),
            audit=Audit(folder / "audit.log", run),
        )
