"""The frozen Config and the values it holds; parsing them from text, with one-line errors."""

from __future__ import annotations

import ipaddress
import netrc
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable
from urllib.parse import unquote, urlsplit, urlunsplit

DEFAULT_LISTEN = "tcp:3141:interface=127.0.0.1"
# The largest index page read from an upstream, compressed or decoded (--max-page-size).
DEFAULT_MAX_PAGE_SIZE = 64 * 1024**2


@dataclass(frozen=True)
class UpstreamIndex:
    """One upstream Simple API root; its credentials are kept apart from its URL."""

    url: str  # without credentials, always ending in "/"
    username: str | None = None
    password: str | None = None

    @property
    def origin(self) -> tuple[str, str, int]:
        """(scheme, host, port): where this index's credentials may be sent."""
        return origin_of(self.url)

    def __repr__(self) -> str:
        # Keep the secret out of tracebacks and logs.
        return f"UpstreamIndex({self.url!r})"


def origin_of(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL; a URL with a bad port has the scheme's default."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return (parts.scheme, (parts.hostname or "").lower(), port or (443 if parts.scheme == "https" else 80))


def parse_upstream(value: str, option: str = "--upstream") -> UpstreamIndex:
    """Split ``https://user:pass@host/simple/`` into a clean URL and credentials."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{option} must be an http or https URL, not {redact(value)!r}")
    try:
        parts.port
    except ValueError:
        raise ValueError(f"{option} has a bad port: {redact(value)!r}") from None
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if parts.port:
        netloc += f":{parts.port}"
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    url = urlunsplit((parts.scheme, netloc, path, parts.query, ""))
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return UpstreamIndex(url=url, username=username, password=password)


def with_credentials_from(path: Path, upstreams: Iterable[UpstreamIndex], option: str) -> tuple[UpstreamIndex, ...]:
    """The upstreams, each without credentials in its URL given those a netrc file has for
    its host (as pip reads netrc: by host name, else the file's ``default`` entry), so that
    passwords stand neither in ``ps`` nor in unit files."""
    try:
        entries = netrc.netrc(str(path))
    except (OSError, netrc.NetrcParseError) as e:
        detail = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ValueError(f"{option}: cannot read {str(path)!r}: {detail}") from None
    found = []
    for upstream in upstreams:
        login = entries.authenticators(upstream.origin[1]) if upstream.username is None else None
        if login is not None and login[0]:
            upstream = replace(upstream, username=login[0], password=login[2] or None)
        found.append(upstream)
    return tuple(found)


_CREDENTIALS = re.compile(r"(://)[^/@\s]+@")


def redact(text: str) -> str:
    """Text (a URL, or a line holding URLs) without the credentials a URL in it may carry."""
    return _CREDENTIALS.sub(r"\1***@", text)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)


def parse_size(value: str, option: str = "--max-cache-size") -> int:
    """``500M``, ``20G``: K/M/G/T are powers of 1024."""
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"{option}: not a size: {value!r} (try 500M or 20G)")
    number, unit = match.groups()
    return int(float(number) * 1024 ** " KMGT".index(unit.upper() or " "))


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: str, option: str) -> float:
    """``7d``, ``36h``, ``90m``, ``30s`` or plain seconds, as seconds (above zero)."""
    match = _DURATION.match(value)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"{option}: not a duration: {value!r} (try 7d or 36h)")
    number, unit = match.groups()
    return float(number) * _SECONDS[unit.lower()]


def format_duration(seconds: float) -> str:
    """A duration as people write it back: ``7d``, ``36h``, ``90s``."""
    for unit in ("d", "h", "m"):
        if seconds >= _SECONDS[unit] and seconds % _SECONDS[unit] == 0:
            return f"{int(seconds // _SECONDS[unit])}{unit}"
    return f"{seconds:g}s"


def parse_number(value: str, option: str, *, zero: bool = False, kind: type = float) -> float:
    """A finite number above zero (or zero too, with ``zero``), of ``kind`` (float or int)."""
    try:
        number = kind(value)
    except ValueError:
        raise ValueError(f"{option}: not a number: {value!r}") from None
    if not (0 <= number if zero else 0 < number) or not number < float("inf"):
        what = "zero or more" if zero else "a positive number"
        raise ValueError(f"{option}: must be {what}, not {value!r}")
    return number


@dataclass(frozen=True)
class Config:
    """Everything the server is told; built once from the options, passed down."""

    listen: tuple[str, ...]
    upstreams: tuple[UpstreamIndex, ...]
    cache_dir: Path
    index_ttl: float = 600.0
    offline: bool = False
    upstream_ca: Path | None = None
    upstream_timeout: float = 15.0
    htpasswd: Path | None = None
    auth: str = "upload"
    allow_anonymous_upload: bool = False
    allow_from: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    max_cache_size: int | None = None
    max_upload_size: int = 1024**3
    access_log: Path | None = None
    # The supply-chain guard (pypiproxy.guard): each empty/None means that rule is off.
    min_age: float | None = None
    min_age_exempt: tuple[str, ...] = ()  # normalised project names
    block: Path | None = None
    allow_only: Path | None = None
    groups: Path | None = None
    private_namespaces: tuple[str, ...] = ()
    max_page_size: int = DEFAULT_MAX_PAGE_SIZE
    accel_redirect: str | None = None  # behind nginx: X-Accel-Redirect prefix for cached files
