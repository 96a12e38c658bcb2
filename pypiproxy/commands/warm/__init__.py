"""``pypiproxy warm``: fill a proxy's cache from requirements files ahead of time."""

from .warmer import configure, run

__all__ = ["configure", "run"]
