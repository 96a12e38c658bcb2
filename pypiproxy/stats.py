"""Counters behind ``/+stats`` (JSON) and ``/+metrics`` (Prometheus text)."""

from __future__ import annotations

import json
from collections import Counter

# Every counter there is, with what it counts; all start at zero so a scraper sees them all.
COUNTERS = {
    "requests": "HTTP requests received",
    "page_requests": "index page requests (/simple/...)",
    "file_requests": "file and metadata requests",
    "cache_hits": "files served from the cache",
    "cache_misses": "files that had to be fetched from an upstream",
    "files_cached": "upstream files downloaded, verified and stored",
    "download_joins": "requests that joined a download already in progress",
    "range_passthroughs": "cold range requests answered straight from the upstream",
    "bytes_served": "file bytes sent to clients",
    "accel_redirects": "cached files handed to nginx to send (--accel-redirect)",
    "bytes_fetched": "file bytes received from upstreams",
    "upstream_page_fetches": "index pages requested from upstreams",
    "upstream_page_not_modified": "upstream revalidations answered 304",
    "upstream_errors": "upstream requests that failed (refused, timeout, 5xx, bad data)",
    "stale_pages_served": "cached index pages served because the upstream failed",
    "stale_while_revalidate": "expired index pages answered at once while one background request revalidated them",
    "upstream_pauses": "times a download stopped reading its upstream for the disk to catch up",
    "hash_mismatches": "downloads refused because their hash did not match the index",
    "uploads": "files uploaded to the private store",
    "evictions": "cached files evicted to stay under --max-cache-size",
    "held_files": "file and metadata requests answered 404 because --min-age holds the file back",
    "blocked_files": "file and metadata requests answered 403 because a --block rule matches",
    "refused_files": "file and metadata requests refused because the project is quarantined (PEP 792)",
    "refused_projects": "page and file requests for an upstream project not in the --allow-only list",
}


class Stats:
    """A named set of monotonic counters."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter({name: 0 for name in COUNTERS})

    def incr(self, name: str, amount: int = 1) -> None:
        self._counts[name] += amount

    def __getitem__(self, name: str) -> int:
        return self._counts[name]

    def as_json(self) -> bytes:
        return json.dumps(dict(self._counts), indent=1, sort_keys=True).encode() + b"\n"

    def as_prometheus(self) -> bytes:
        lines = []
        for name, value in sorted(self._counts.items()):
            metric = f"pypiproxy_{name}_total"
            lines.append(f"# HELP {metric} {COUNTERS.get(name, name)}")
            lines.append(f"# TYPE {metric} counter")
            lines.append(f"{metric} {value}")
        return ("\n".join(lines) + "\n").encode()
