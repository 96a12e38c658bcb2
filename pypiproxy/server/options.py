"""The ``twistd pypiproxy`` options, validated into one frozen Config; errors are one line."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

from packaging.utils import canonicalize_name
from twisted.internet import endpoints
from twisted.python import usage

from ..auth import load_groups, load_htpasswd
from ..config import (
    DEFAULT_LISTEN, Config, parse_duration, parse_number, parse_size, parse_upstream, with_credentials_from,
)
from ..guard import RuleError, load, parse_allow, parse_block
from ..simple import VALID_NAME
from ..upstream import trust_root

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
        ["upstream-credentials", None, None, "netrc file with the upstreams' logins, matched by host."],
        ["upstream-timeout", None, "15", "Connect and read timeout towards upstreams, in seconds."],
        ["htpasswd", None, None, "Users, Apache htpasswd format with bcrypt hashes."],
        ["auth", None, "upload", "With --htpasswd, what needs a login: upload or all."],
        ["max-cache-size", None, None, "Evict least-recently-used upstream files above SIZE (500M, 20G)."],
        ["max-upload-size", None, "1G", "Largest accepted upload (K/M/G/T are powers of 1024)."],
        ["max-page-size", None, "64M", "Largest upstream index page accepted, compressed or decoded (SIZE)."],
        ["accel-redirect", None, None,
         "Behind nginx: answer cached files with X-Accel-Redirect: PREFIX/<path in the cache dir>."],
        ["access-log", None, None, "Write the access log (combined format) to FILE instead of the server log."],
        ["min-age", None, None, "Hold back upstream files uploaded less than DURATION ago (7d, 36h)."],
        ["block", None, None, "Never offer nor serve upstream files matching these requirements (a file)."],
        ["allow-only", None, None, "Serve only these upstream projects (a file of names)."],
        ["groups", None, None, "Who may do what (Apache AuthGroupFile: 'admin: alice', 'upload: bob carol')."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["upstream"] = []
        self["allow-from"] = []
        self["min-age-exempt"] = []
        self["private-namespace"] = []

    def opt_listen(self, endpoint: str) -> None:
        """Twisted server endpoint string; repeatable [default: tcp:3141:interface=127.0.0.1]."""
        self["listen"].append(endpoint)

    def opt_upstream(self, url: str) -> None:
        """A Simple API root URL; repeatable, in priority order."""
        self["upstream"].append(url)

    def opt_allow_from(self, cidr: str) -> None:
        """Only serve these networks (CIDR); repeatable [default: everyone]."""
        self["allow-from"].append(cidr)

    def opt_min_age_exempt(self, name: str) -> None:
        """A project --min-age does not hold back; repeatable."""
        if not VALID_NAME.match(name):
            raise ValueError(f"--min-age-exempt: not a project name: {name!r}")
        self["min-age-exempt"].append(canonicalize_name(name))
    def opt_private_namespace(self, name: str) -> None:
        """NAME and every NAME-* project are private-only, never asked upstream; repeatable."""
        if not VALID_NAME.match(name):
            raise ValueError(f"--private-namespace: not a project name: {name!r}")
        self["private-namespace"].append(canonicalize_name(name))

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
        if self["upstream-credentials"]:
            credentials = _readable_file("--upstream-credentials", self["upstream-credentials"])
            upstreams = with_credentials_from(credentials, upstreams, "--upstream-credentials")
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
            load_htpasswd(htpasswd)  # a hash we cannot check is an error now, naming its line
        elif self["auth"] == "all":
            raise ValueError("--auth all needs --htpasswd FILE (the users who may log in)")
        groups = self["groups"] and _readable_file("--groups", self["groups"])
        if groups:
            load_groups(groups)  # a malformed line is an error now, naming it
        upstream_ca = self["upstream-ca"] and _readable_file("--upstream-ca", self["upstream-ca"])
        if upstream_ca:
            trust_root(upstream_ca)  # a file without a PEM certificate is an error now
        min_age = self["min-age"]
        if self["min-age-exempt"] and not min_age:
            raise ValueError("--min-age-exempt needs --min-age DURATION (what it exempts from)")
        block = self["block"] and _rules_file("--block", self["block"], parse_block)
        allow_only = self["allow-only"] and _rules_file("--allow-only", self["allow-only"], parse_allow)
        max_page_size = parse_size(self["max-page-size"], "--max-page-size")
        if max_page_size < 1024:
            raise ValueError(f"--max-page-size: too small to hold an index page: {self['max-page-size']!r}")
        accel = self["accel-redirect"]
        if accel is not None and (not accel.startswith("/") or any(c in accel for c in "?#\r\n ")):
            raise ValueError(f"--accel-redirect: not a URL path prefix: {accel!r} (try /_pypiproxy_cache)")
        return Config(
            listen=listen,
            upstreams=() if no_upstream else upstreams,
            cache_dir=Path(self["cache-dir"]),
            index_ttl=parse_number(self["index-ttl"], "--index-ttl", zero=True),
            offline=offline,
            upstream_ca=upstream_ca,
            upstream_timeout=parse_number(self["upstream-timeout"], "--upstream-timeout"),
            htpasswd=htpasswd,
            auth=self["auth"],
            allow_anonymous_upload=self["allow-anonymous-upload"],
            allow_from=tuple(allow_from),
            max_cache_size=parse_size(max_cache) if max_cache else None,
            max_upload_size=parse_size(self["max-upload-size"], "--max-upload-size"),
            max_page_size=max_page_size,
            accel_redirect=accel.rstrip("/") if accel else None,
            access_log=_access_log(self["access-log"]),
            min_age=parse_duration(min_age, "--min-age") if min_age else None,
            min_age_exempt=tuple(self["min-age-exempt"]),
            block=block or None,
            allow_only=allow_only or None,
            groups=groups or None,
            private_namespaces=tuple(self["private-namespace"]),
        )


def _rules_file(option: str, value: str, parse) -> Path:  # type: ignore[no-untyped-def]
    """The path, once its rules parse (a bad line is an error now, naming the line)."""
    path = _readable_file(option, value)
    try:
        load(path, parse)
    except RuleError as e:
        raise ValueError(f"{option}: {e}") from None
    return path


def _access_log(value: str | None) -> Path | None:
    """``-`` is standard output; a file must open for appending now."""
    if value is None or value == "-":
        return Path(value) if value else None
    return _readable_file("--access-log", value, mode="a")


def _check_endpoint(description: str) -> None:
    """Build (not listen on) the endpoint, so a typo or a missing key file fails now."""
    try:
        # Parsing needs no reactor of its own: it is only kept by the endpoint built.
        endpoints.serverFromString(None, description)
    except Exception as e:  # the endpoint parsers raise anything from KeyError to SSL errors
        raise ValueError(f"--listen: bad endpoint {description!r}: {e}") from None
