"""API tokens: made once and shown once, kept only as a sha256, checked in constant time, revoked at once."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from packaging.utils import canonicalize_name

from .state import StateFile

# Recognisable in a config file, a log someone pasted or a secret scanner's rules.
PREFIX = "pypx-"
_TOKEN = re.compile(r"^pypx-([0-9a-f]{12})-([A-Za-z0-9_-]{43})\Z")
# last_used is written at most this often per token: a token used by every request of an
# install must not turn each request into a write.
TOUCH_SECONDS = 60.0


class TokenRefused(Exception):
    """A token that may not log in; ``token_id`` is set when the token names a known id."""

    def __init__(self, reason: str, token_id: str | None = None, user: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.token_id = token_id
        self.user = user


class NoSuchToken(KeyError):
    """No token has that id (or none of the user's has)."""


@dataclass(frozen=True)
class Token:
    """What is known of a token; never the secret itself."""

    id: str
    user: str
    projects: tuple[str, ...]  # empty: every project the user may upload to
    read_only: bool
    created: float
    expires: float | None
    last_used: float | None
    description: str

    @property
    def scope(self) -> str:
        where = ", ".join(self.projects) if self.projects else "all projects"
        return f"read-only, {where}" if self.read_only else f"upload: {where}"

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user": self.user,
            "projects": list(self.projects),
            "read_only": self.read_only,
            "created": _iso(self.created),
            "expires": _iso(self.expires),
            "last_used": _iso(self.last_used),
            "description": self.description,
        }


class TokenStore:
    """``team/tokens.json``: id -> the token's record and the sha256 of its secret.

    A fast hash is right here: the secrets are 256 bits of randomness, so nothing can be
    guessed from the hash, and a login must not cost a bcrypt. The file is read again
    whenever it changes, so a revoke in any process counts for the next request everywhere.
    Writes block (run them in a thread in a server).
    """

    def __init__(self, path: Path) -> None:
        # Hashes of random secrets give nothing away, but who has which scope is no one else's business.
        self._state = StateFile(path, mode=0o600)
        self._touched: dict[str, float] = {}

    def create(
        self,
        user: str,
        now: float,
        projects: Iterable[str] = (),
        read_only: bool = False,
        lifetime: float | None = None,
        description: str = "",
    ) -> tuple[Token, str]:
        """A new token and its secret, which is not kept and so can never be shown again."""
        if not user or ":" in user:
            raise ValueError(f"not a user name: {user!r}")
        token_id = secrets.token_hex(6)
        secret = f"{PREFIX}{token_id}-{secrets.token_urlsafe(32)}"
        record = {
            "user": user,
            "sha256": _digest(secret),
            "projects": sorted({canonicalize_name(p) for p in projects}),
            "read_only": bool(read_only),
            "created": now,
            "expires": now + lifetime if lifetime is not None else None,
            "last_used": None,
            "description": description,
        }

        def add(data: dict[str, Any]) -> None:
            data.setdefault("tokens", {})[token_id] = record

        self._state.update(add)
        return _token(token_id, record), secret

    def tokens(self, user: str | None = None) -> list[Token]:
        """Every token (or one user's), oldest first."""
        found = [_token(i, r) for i, r in self._state.read().get("tokens", {}).items()]
        return sorted((t for t in found if user is None or t.user == user), key=lambda t: (t.created, t.id))

    def revoke(self, token_id: str, user: str | None = None) -> Token:
        """Remove a token (only one of ``user``'s, when given); raises NoSuchToken."""

        def remove(data: dict[str, Any]) -> Token:
            tokens = data.get("tokens", {})
            record = tokens.get(token_id)
            if record is None or (user is not None and record["user"] != user):
                raise NoSuchToken(token_id)
            del tokens[token_id]
            return _token(token_id, record)

        return self._state.update(remove)

    def check(self, secret: str, now: float) -> Token:
        """The token this secret is, if it may log in now; raises TokenRefused."""
        match = _TOKEN.match(secret)
        if match is None:
            raise TokenRefused("not a pypiproxy API token")
        token_id = match.group(1)
        record = self._state.read().get("tokens", {}).get(token_id)
        # compare_digest: the time taken says nothing of how much of the hash matched.
        if record is None or not hmac.compare_digest(_digest(secret), str(record.get("sha256", ""))):
            raise TokenRefused("unknown or revoked token", token_id)
        token = _token(token_id, record)
        if token.expired(now):
            raise TokenRefused(f"token expired at {_iso(token.expires)}", token_id, token.user)
        return token

    def needs_touch(self, token: Token, now: float) -> bool:
        """Whether ``touch`` would write (so a server runs it in a thread only then)."""
        last = max(token.last_used or 0.0, self._touched.get(token.id, 0.0))
        return now - last >= TOUCH_SECONDS

    def touch(self, token_id: str, now: float) -> None:
        """Note that the token was used (blocking); a token revoked meanwhile stays revoked."""
        self._touched[token_id] = now

        def note(data: dict[str, Any]) -> None:
            record = data.get("tokens", {}).get(token_id)
            if record is not None:
                record["last_used"] = now

        self._state.update(note)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _token(token_id: str, record: dict[str, Any]) -> Token:
    return Token(
        id=token_id,
        user=record["user"],
        projects=tuple(record.get("projects") or ()),
        read_only=bool(record.get("read_only")),
        created=float(record["created"]),
        expires=record.get("expires"),
        last_used=record.get("last_used"),
        description=record.get("description") or "",
    )


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
