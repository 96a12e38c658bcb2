"""The ``twistd pypiproxy`` options, validated into one frozen config; errors are one line."""

from __future__ import annotations

import ipaddress
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from twisted.python import usage

DEFAULT_LISTEN = "tcp:3141:interface=127.0.0.1"


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
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return (parts.scheme, (parts.hostname or "").lower(), port)


def parse_upstream(value: str) -> UpstreamIndex:
    """Split ``https://user:pass@host/simple/`` into a clean URL and credentials."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--upstream must be an http or https URL, not {redact(value)!r}")
    try:
        parts.port
    except ValueError:
        raise ValueError(f"--upstream has a bad port: {redact(value)!r}") from None
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if parts.port:
        netloc += f":{parts.port}"
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    url = urlunsplit((parts.scheme, netloc, path, parts.query, ""))
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return UpstreamIndex(url=url, username=username, password=password)


def redact(url: str) -> str:
    return re.sub(r"//[^/@]*@", "//***@", url)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)


def parse_size(value: str, option: str = "--max-cache-size") -> int:
    """``500M``, ``20G``: K/M/G/T are powers of 1024."""
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"{option}: not a size: {value!r} (try 500M or 20G)")
    number, unit = match.groups()
    return int(float(number) * 1024 ** " KMGT".index(unit.upper() or " "))


def _positive_number(option: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{option}: not a number: {value!r}") from None
    if not number > 0 or number != number or number == float("inf"):
        raise ValueError(f"{option}: must be a positive number, not {value!r}")
    return number


def _readable_file(option: str, value: str, mode: str = "rb") -> Path:
    """The path, once we know it opens (for reading, or in ``mode``)."""
    path = Path(value)
    try:
        with path.open(mode):
            pass
    except OSError as e:
        verb = "read" if "r" in mode else "write"
        raise ValueError(f"{option}: cannot {verb} {value!r}: {e.strerror}") from None
    return path


@dataclass(frozen=True)
class Config:
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


class Options(usage.Options):
    """``twistd pypiproxy`` options; see ``--help``."""

    synopsis = "[options]"
    longdesc = (
        "A caching proxy and private index for Python packages (PEP 503/691 Simple API). "
        "Example: twistd -n pypiproxy --upstream https://index.example/simple/"
    )
    optFlags = [
        ["offline", None, "Never contact an upstream; serve what is cached."],
        ["no-upstream", None, "Run without upstreams (a private index only)."],
        ["allow-anonymous-upload", None, "Let anyone upload (only sensible on loopback)."],
    ]
    optParameters = [
        ["cache-dir", None, "./pypiproxy-data", "Where cached files, pages and private packages live."],
        ["index-ttl", None, "600", "Seconds a cached index page is served without asking upstream."],
        ["upstream-ca", None, None, "PEM bundle to verify upstream TLS with, instead of the system's."],
        ["upstream-timeout", None, "15", "Connect and read timeout towards upstreams, in seconds."],
        ["htpasswd", None, None, "Users, Apache htpasswd format with bcrypt hashes."],
        ["auth", None, "upload", "With --htpasswd, what needs a login: upload or all."],
        ["max-cache-size", None, None, "Evict least-recently-used upstream files above SIZE (500M, 20G)."],
        ["max-upload-size", None, "1G", "Largest accepted upload (K/M/G/T are powers of 1024)."],
        ["access-log", None, None, "Write the access log (combined format) to FILE instead of the server log."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["upstream"] = []
        self["allow-from"] = []

    def opt_listen(self, endpoint: str) -> None:
        """Twisted server endpoint string; repeatable [default: tcp:3141:interface=127.0.0.1]."""
        self["listen"].append(endpoint)

    def opt_upstream(self, url: str) -> None:
        """A Simple API root URL; repeatable, in priority order."""
        self["upstream"].append(url)

    def opt_allow_from(self, cidr: str) -> None:
        """Only serve these networks (CIDR); repeatable [default: everyone]."""
        self["allow-from"].append(cidr)

    def parseOptions(self, options: list[str] | None = None) -> None:
        # twistd answers a usage error with the whole help text on stdout; we promise one
        # line on stderr that names the bad value, and a non-zero exit.
        try:
            super().parseOptions(options)
        except (usage.UsageError, ValueError) as e:
            sys.stderr.write(f"pypiproxy: error: {e}\n")
            sys.stderr.flush()
            raise SystemExit(2)

    def postOptions(self) -> None:
        self.config = self._validate()

    def _validate(self) -> Config:
        if self["auth"] not in ("upload", "all"):
            raise ValueError(f"--auth must be 'upload' or 'all', not {self['auth']!r}")
        offline, no_upstream = self["offline"], self["no-upstream"]
        upstreams = tuple(parse_upstream(u) for u in self["upstream"])
        if not upstreams and not (offline or no_upstream):
            raise ValueError("--upstream URL is required (or --offline, or --no-upstream)")
        if no_upstream and upstreams:
            raise ValueError("--no-upstream and --upstream contradict each other")
        listen = tuple(self["listen"]) or (DEFAULT_LISTEN,)
        for description in listen:
            _check_endpoint(description)
        allow_from = []
        for cidr in self["allow-from"]:
            try:
                allow_from.append(ipaddress.ip_network(cidr, strict=False))
            except ValueError:
                raise ValueError(f"--allow-from: not a network: {cidr!r}") from None
        max_cache = self["max-cache-size"]
        htpasswd = self["htpasswd"] and _readable_file("--htpasswd", self["htpasswd"])
        if htpasswd:
            from .auth import load_htpasswd

            load_htpasswd(htpasswd)  # a hash we cannot check is an error now, naming its line
        elif self["auth"] == "all":
            raise ValueError("--auth all needs --htpasswd FILE (the users who may log in)")
        upstream_ca = self["upstream-ca"] and _readable_file("--upstream-ca", self["upstream-ca"])
        if upstream_ca:
            from .upstream import _trust_root

            _trust_root(upstream_ca)  # a file without a PEM certificate is an error now
        return Config(
            listen=listen,
            upstreams=() if no_upstream else upstreams,
            cache_dir=Path(self["cache-dir"]),
            index_ttl=_non_negative(self["index-ttl"]),
            offline=offline,
            upstream_ca=upstream_ca,
            upstream_timeout=_positive_number("--upstream-timeout", self["upstream-timeout"]),
            htpasswd=htpasswd,
            auth=self["auth"],
            allow_anonymous_upload=self["allow-anonymous-upload"],
            allow_from=tuple(allow_from),
            max_cache_size=parse_size(max_cache) if max_cache else None,
            max_upload_size=parse_size(self["max-upload-size"], "--max-upload-size"),
            access_log=self["access-log"] and _readable_file("--access-log", self["access-log"], mode="a"),
        )


def _non_negative(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"--index-ttl: not a number: {value!r}") from None
    if not 0 <= number < float("inf"):
        raise ValueError(f"--index-ttl: must be zero or more seconds, not {value!r}")
    return number


def _check_endpoint(description: str) -> None:
    """Build (not listen on) the endpoint, so a typo or a missing key file fails now."""
    from twisted.internet import endpoints, reactor

    try:
        endpoints.serverFromString(reactor, description)
    except Exception as e:  # the endpoint parsers raise anything from KeyError to SSL errors
        raise ValueError(f"--listen: bad endpoint {description!r}: {e}") from None
