"""Slowing down password guessing: repeated failed logins from one address answer 429 for a while."""

from __future__ import annotations

from collections import OrderedDict, deque

from twisted.internet.interfaces import IReactorTime

# Failed logins allowed within WINDOW seconds: from one client address for one user name,
# and from one client address for all names (a client trying many names). A person mistyping
# stays far below; a guesser gets a few dozen tries an hour instead of thousands a minute.
PER_USER = 5
PER_ADDRESS = 20
WINDOW = 60.0
# Keys remembered at most (the oldest go first), so a flood of addresses cannot grow memory.
MAX_KEYS = 10_000


class LoginThrottle:
    """Counts failed logins per (address, user) and per address, within a sliding window."""

    def __init__(
        self, clock: IReactorTime, per_user: int = PER_USER, per_address: int = PER_ADDRESS, window: float = WINDOW
    ) -> None:
        self._clock = clock
        self._limits = {"user": per_user, "address": per_address}
        self._window = window
        self._failures: OrderedDict[tuple[str, ...], deque[float]] = OrderedDict()

    def _keys(self, address: str, user: str) -> list[tuple[tuple[str, ...], int]]:
        return [(("user", address, user), self._limits["user"]), (("address", address), self._limits["address"])]

    def retry_after(self, address: str, user: str) -> float | None:
        """Seconds before this client may try this user again; None: it may now."""
        now = self._clock.seconds()
        wait = 0.0
        for key, limit in self._keys(address, user):
            times = self._failures.get(key)
            if times is None:
                continue
            while times and times[0] <= now - self._window:
                times.popleft()
            if len(times) >= limit:
                wait = max(wait, times[-limit] + self._window - now)
        return wait if wait > 0 else None

    def failed(self, address: str, user: str) -> None:
        now = self._clock.seconds()
        for key, limit in self._keys(address, user):
            times = self._failures.setdefault(key, deque(maxlen=limit))
            times.append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > MAX_KEYS:
            self._failures.popitem(last=False)

    def succeeded(self, address: str, user: str) -> None:
        """A good login forgets that user's failures from that address (typos)."""
        self._failures.pop(("user", address, user), None)
