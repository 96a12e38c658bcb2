"""What can go wrong asking an upstream, as the status a client of ours is answered with."""

from __future__ import annotations


class UpstreamError(Exception):
    """The upstream could not be reached or failed; clients get a 502."""

    status = 502


class UpstreamTimeout(UpstreamError):
    """The upstream did not connect or answer in time; clients get a 504."""

    status = 504
