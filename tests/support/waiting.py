"""Waiting for what the reactor, a thread or another process brings about: one bounded poll."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["block_until", "wait_until"]

Describe = str | Callable[[], str]


async def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02,
    what: Describe = "the condition",
) -> None:
    """Let the reactor run until ``predicate()`` is true; bounded, so a bug fails instead of
    hanging. ``what`` (or what it returns, asked only then) names the wait in the failure."""
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError(_timed_out(timeout, what))
        await deferLater(reactor, interval, lambda: None)


def block_until(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.05,
    what: Describe = "the condition",
) -> None:
    """wait_until's twin for code that must not use the reactor: a thread, or a test with no
    reactor running (waiting for a subprocess to come up)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(_timed_out(timeout, what))
        time.sleep(interval)


def _timed_out(timeout: float, what: Describe) -> str:
    return f"timed out after {timeout:g}s waiting for {what() if callable(what) else what}"
