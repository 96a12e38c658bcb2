"""Who owns each private project, and which names an admin claimed from the upstreams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .state import StateFile


class Owners:
    """``team/owners.json``: project -> its owners' user names (read again when it changes)."""

    def __init__(self, path: Path) -> None:
        self._state = StateFile(path)

    def of(self, project: str) -> tuple[str, ...]:
        return tuple(self._state.read().get("projects", {}).get(project, ()))

    def all(self) -> dict[str, tuple[str, ...]]:
        return {name: tuple(users) for name, users in sorted(self._state.read().get("projects", {}).items())}

    def add(self, project: str, user: str) -> bool:
        """Make ``user`` an owner (blocking); False when they already were."""

        def add(data: dict[str, Any]) -> bool:
            users = data.setdefault("projects", {}).setdefault(project, [])
            if user in users:
                return False
            users.append(user)
            return True

        return self._state.update(add)

    def adopt(self, project: str, user: str) -> tuple[str, ...]:
        """The first uploader of a name becomes its owner; the owners afterwards (blocking)."""

        def adopt(data: dict[str, Any]) -> tuple[str, ...]:
            users = data.setdefault("projects", {}).setdefault(project, [])
            if not users:
                users.append(user)
            return tuple(users)

        return self._state.update(adopt)

    def remove(self, project: str, user: str) -> bool:
        """Take ``user``'s ownership away (blocking); False when they were not an owner."""

        def remove(data: dict[str, Any]) -> bool:
            users = data.get("projects", {}).get(project, [])
            if user not in users:
                return False
            users.remove(user)
            return True

        return self._state.update(remove)


class Claims:
    """``team/claims.json``: names a private project may take although an upstream serves them."""

    def __init__(self, path: Path) -> None:
        self._state = StateFile(path)

    def claimed(self, project: str) -> bool:
        return project in self._state.read().get("claims", {})

    def all(self) -> dict[str, dict[str, Any]]:
        return dict(sorted(self._state.read().get("claims", {}).items()))

    def claim(self, project: str, by: str, now: float) -> bool:
        """Record the claim (blocking); False when the name was claimed already."""

        def claim(data: dict[str, Any]) -> bool:
            claims = data.setdefault("claims", {})
            if project in claims:
                return False
            claims[project] = {"by": by, "at": now}
            return True

        return self._state.update(claim)
