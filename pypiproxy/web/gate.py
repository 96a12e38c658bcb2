"""The site gate: ``--allow-from``, then the login and the right to upload, before any resource runs
(for a request with a body, when its headers arrive: see web/request.py)."""

from __future__ import annotations

import ipaddress
import math
import os
import sys
from typing import Any, Callable, Sequence

from twisted.cred import credentials, error as cred_error, portal
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python import logfile
from twisted.web import resource, server
from twisted.web.iweb import IRequest
from twisted.web.util import DeferredResource

from ..auth import TOKEN_USER, Groups, HtpasswdChecker, IAccount, LoginThrottle, PasswordTooLong, build_login
from ..config import Config
from ..private import Audit, Team
from .accesslog import BufferedLines, combined_line, to_server_log
from .errors import error_page, forbidden

log = Logger()

REALM = "pypiproxy"


class AccessPolicy:
    """Decides, for each request, whether it is served, refused, or needs a login first.

    ``--allow-from`` comes first, on every path. Then ``auth="all"`` asks every request
    except ``/+health`` for a login, ``auth="upload"`` only uploads (POST) and ``/+tokens``;
    without users, uploads are refused unless anonymous ones are allowed. A login that may
    not upload (not in a group that may, or a read-only token) is refused an upload at once.
    """

    def __init__(
        self,
        networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
        login: portal.Portal | None = None,
        auth: str = "upload",
        allow_anonymous_upload: bool = False,
        audit: Audit | None = None,
        throttle: LoginThrottle | None = None,
    ) -> None:
        self._networks = tuple(networks)
        self._portal = login
        self._auth = auth
        self._anonymous_upload = allow_anonymous_upload
        self._audit = audit
        self._throttle = throttle  # repeated failures from one address answer 429 for a while

    async def decide(self, request: IRequest) -> resource.IResource | None:
        """The refusal to answer with (403, 401), or None when the request may go on."""
        refused = self.refusal(request)
        if refused is None and self.needs_login(request):
            refused = await self.login(request)
        return refused

    def refusal(self, request: IRequest) -> resource.IResource | None:
        """A refusal that needs no login check, or None."""
        if self._networks and not _allowed(request, self._networks):
            return forbidden("your address may not use this server")
        if _is_upload(request) and self._portal is None and not self._anonymous_upload:
            return forbidden(
                "uploads are disabled: this server has no users (--htpasswd) "
                "and does not allow anonymous uploads"
            )
        return None

    def needs_login(self, request: IRequest) -> bool:
        if self._portal is None:
            return False
        if self._auth == "all":
            return request.path != b"/+health"
        if request.path == b"/+tokens" or request.path.startswith(b"/+tokens/"):
            return True  # each user's own tokens
        if request.path == b"/+login":
            return True  # the pages' "log in": the browser's own prompt
        if request.getHeader(b"authorization") is not None and _is_page_for_people(request):
            # A browser that logged in sends its login along: the pages show that user's
            # actions (yank, tokens), so it is checked, and a wrong one asked for again.
            return True
        return _is_upload(request) and not self._anonymous_upload

    async def login(self, request: IRequest) -> resource.IResource | None:
        """None when the request's basic-auth login is good, else the 401 to answer with."""
        assert self._portal is not None
        user, password = request.getUser(), request.getPassword()
        if not user:
            return _unauthorized("login required")
        client, name = _client_host(request), user.decode("utf-8", "replace")
        wait = self._throttle.retry_after(client, name) if self._throttle else None
        if wait is not None:
            log.warn("too many failed logins for user {user!r} from {client}: 429 for {seconds:.0f}s",
                     user=name, client=client, seconds=wait)
            return error_page(429, "too many failed logins; try again later", {"Retry-After": str(math.ceil(wait))})
        try:
            _interface, account, _logout = await self._portal.login(
                credentials.UsernamePassword(user, password), None, IAccount
            )
        except cred_error.UnauthorizedLogin as e:
            if self._throttle is not None:
                self._throttle.failed(client, name)
            log.warn(
                "failed login for user {user!r} from {client} ({method} {path})",
                user=name,
                client=client,
                method=request.method.decode("latin-1"),
                path=request.path.decode("latin-1"),
            )
            # A token's refusal says why (revoked, expired): it gives nothing away to a guesser;
            # so does a password over bcrypt's 72 bytes.
            if user == TOKEN_USER or isinstance(e, PasswordTooLong):
                return _unauthorized(str(e))
            return _unauthorized("wrong user name or password")
        if self._throttle is not None:
            self._throttle.succeeded(client, name)
        if hasattr(request, "account"):
            request.account = account
        refusal = account.upload_refusal() if is_upload_path(request) else None
        if refusal is not None:
            if self._audit is not None:
                await self._audit.record("upload-refused", str(account), reason=refusal, client=_client_host(request))
            return forbidden(refusal)
        return None


def _unauthorized(reason: str) -> resource.IResource:
    return error_page(401, reason, {"WWW-Authenticate": f'Basic realm="{REALM}"'})


def _is_page_for_people(request: IRequest) -> bool:
    return request.path in (b"/", b"/+search") or request.path.startswith(b"/project/")


def _is_upload(request: IRequest) -> bool:
    return request.method == b"POST"


def is_upload_path(request: IRequest) -> bool:
    """``POST /`` and ``POST /legacy/``: the upload API."""
    return request.method == b"POST" and request.path in (b"/", b"/legacy", b"/legacy/")


def _client_host(request: IRequest) -> str:
    address = request.getClientAddress()
    return getattr(address, "host", "") or str(address)


def _allowed(request: IRequest, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        address = ipaddress.ip_address(_client_host(request))
    except ValueError:
        return False  # not an IP connection (a UNIX socket): only listed networks may come
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


class GatedSite(server.Site):
    """A Site that applies the access policy before the resource tree sees a request."""

    # Twisted's Site rotates its access log every 1 MB and keeps every file: a busy server
    # would make thousands a day. Ours: 100 MB files, the newest 10 kept.
    log_rotate_length = 100_000_000
    log_rotated_files = 10

    def __init__(self, root: resource.IResource, policy: AccessPolicy, clock: IReactorTime, **kwargs: Any) -> None:
        # "--access-log -": standard output (Twisted would take "-" for a file name).
        self._to_stdout = kwargs.get("logPath") == "-"
        if self._to_stdout:
            kwargs["logPath"] = None
        kwargs.setdefault("logFormatter", combined_line)
        super().__init__(root, **kwargs)
        self.policy = policy
        self._clock = clock

    def _openLogFile(self, path: str) -> BufferedLines:  # the hook HTTPFactory offers
        rotated = logfile.LogFile(
            os.path.basename(path),
            os.path.dirname(path),
            rotateLength=self.log_rotate_length,
            maxRotatedFiles=self.log_rotated_files,
        )
        def write(lines: list[str]) -> None:
            for line in lines:  # a line at a time: LogFile rotates between writes
                rotated.write(line)

        return BufferedLines(write, self._clock, close=rotated.close)

    def startFactory(self) -> None:
        super().startFactory()
        if self.logPath is None:
            # Twisted's default sends each line to the server's log as an event of its own.
            self._logFile = BufferedLines(_write_stdout if self._to_stdout else to_server_log, self._clock)

    def stopFactory(self) -> None:
        if self._logFile is not None and self.logPath is None:
            self._logFile.close()  # ours: written out now, before Twisted forgets it
            self._logFile = None
        super().stopFactory()

    def getResourceFor(self, request: IRequest) -> resource.IResource:
        request.site = self
        request.sitepath = list(request.prepath)
        if getattr(request, "gate_passed", False):
            return super().getResourceFor(request)  # decided when its headers arrived
        refused = self.policy.refusal(request)
        if refused is not None:
            return refused
        if not self.policy.needs_login(request):
            return self._target(request)
        checked = defer.ensureDeferred(self.policy.login(request))
        checked.addCallback(lambda refused: refused or self._target(request))
        return DeferredResource(checked)

    def _target(self, request: IRequest) -> resource.IResource:
        if request.path == b"*":  # "OPTIONS *", once it passed the gate
            return _ServerOptions()
        return server.Site.getResourceFor(self, request)


class _ServerOptions(resource.Resource):
    """``OPTIONS *``: what the server as a whole answers (RFC 9110: an empty 200)."""

    isLeaf = True

    def render_OPTIONS(self, request: IRequest) -> bytes:
        request.setHeader(b"allow", b"GET, HEAD, POST")
        request.setHeader(b"content-length", b"0")
        return b""


def _write_stdout(lines: list[str]) -> None:
    # The process's own standard output (systemd's journal), not twistd's stand-in for it.
    sys.__stdout__.write("".join(lines))
    sys.__stdout__.flush()


def site_for(
    root: resource.IResource,
    config: Config,
    clock: IReactorTime,
    to_thread: Callable[..., defer.Deferred],
    team: Team | None = None,
    password_thread: Callable[..., defer.Deferred] | None = None,
    **kwargs: Any,
) -> GatedSite:
    """The site for a config's ``--allow-from``, ``--htpasswd``, ``--groups``, ``--auth`` and uploads;
    bcrypt runs through ``password_thread`` (a pool of its own), else ``to_thread``."""
    team = team or Team.open(config.cache_dir)
    login = None
    if config.htpasswd:
        users = HtpasswdChecker(config.htpasswd, clock, password_thread or to_thread)
        login = build_login(users, Groups(config.groups), team.tokens, team.audit, clock, to_thread)
    policy = AccessPolicy(
        config.allow_from, login, config.auth, config.allow_anonymous_upload, team.audit,
        LoginThrottle(clock) if login else None,
    )
    return GatedSite(root, policy, clock, **kwargs)
