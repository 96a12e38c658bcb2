"""Who may connect and who is logged in: ``--allow-from``, htpasswd users through twisted.cred."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Sequence

import bcrypt
from twisted.cred import credentials, error as cred_error, portal
from twisted.cred.checkers import ICredentialsChecker
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python import logfile
from twisted.web import resource, server
from twisted.web.iweb import IRequest
from twisted.web.util import DeferredResource
from zope.interface import Interface, implementer

from .errors import error_page, forbidden

log = Logger()

REALM = "pypiproxy"
# A (user, password) that bcrypt has accepted is believed this long without asking it again:
# pip and uv send the same login with each of the many requests of one install.
VERIFIED_SECONDS = 300.0
VERIFIED_MAX = 4096
_BCRYPT = re.compile(r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$")
_KNOWN_SCHEMES = (
    ("$apr1$", "Apache MD5 ($apr1$)"),
    ("{SHA}", "SHA-1 ({SHA})"),
    ("$1$", "MD5-crypt ($1$)"),
    ("$5$", "SHA-256-crypt ($5$)"),
    ("$6$", "SHA-512-crypt ($6$)"),
)


class HtpasswdError(ValueError):
    """An htpasswd file we cannot use; the message names the file, the line and the user."""


def load_htpasswd(path: Path) -> dict[str, bytes]:
    """Users and their bcrypt hashes; any other kind of hash is refused, naming the line."""
    users: dict[str, bytes] = {}
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise HtpasswdError(f"--htpasswd: cannot read {str(path)!r}: {e}") from None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, colon, hashed = line.partition(":")
        where = f"--htpasswd {str(path)!r} line {number}"
        if not colon or not user:
            raise HtpasswdError(f"{where}: not 'user:hash'")
        if not _BCRYPT.match(hashed):
            kind = next((name for prefix, name in _KNOWN_SCHEMES if hashed.startswith(prefix)), None)
            kind = kind or ("crypt" if len(hashed) == 13 else "plain text or unknown")
            raise HtpasswdError(
                f"{where}: user {user!r} has a {kind} password hash; only bcrypt ($2y$/$2b$) is "
                "accepted (make one with: htpasswd -B FILE USER)"
            )
        users[user] = hashed.encode("ascii")
    return users


class IAccount(Interface):
    """The avatar of a login: only its name matters here."""


@implementer(portal.IRealm)
class Accounts:
    """A logged-in user is their name; what they may do is decided by the access policy."""

    def requestAvatar(self, avatarId: bytes, mind: object, *interfaces: Any) -> tuple[Any, str, Callable[[], None]]:
        if IAccount not in interfaces:
            raise NotImplementedError("only IAccount")
        return IAccount, avatarId.decode("utf-8", "replace"), lambda: None


@implementer(ICredentialsChecker)
class HtpasswdChecker:
    """Checks passwords against an htpasswd file, reread when it changes.

    bcrypt takes 100+ ms on purpose, so it runs in a thread, and a verified login is
    remembered for a few minutes under a keyed hash (never the password itself).
    """

    credentialInterfaces = (credentials.IUsernamePassword,)

    def __init__(
        self,
        path: Path,
        clock: Any,
        verify: Callable[[bytes, bytes], bool] = bcrypt.checkpw,
        to_thread: Callable[..., defer.Deferred] = threads.deferToThread,
    ) -> None:
        self._path = path
        self._clock = clock
        self._verify = verify
        self._to_thread = to_thread
        self._key = os.urandom(32)
        self._verified: OrderedDict[bytes, float] = OrderedDict()
        self._users = load_htpasswd(path)
        self._stamp = _stamp(path)

    def _current_users(self) -> dict[str, bytes]:
        stamp = _stamp(self._path)
        if stamp != self._stamp:
            try:
                self._users = load_htpasswd(self._path)
                log.info("reloaded {count} users from {path}", count=len(self._users), path=str(self._path))
            except HtpasswdError as e:
                log.error("keeping the old users: {error}", error=str(e))
            self._stamp = stamp
        return self._users

    def requestAvatarId(self, creds: credentials.IUsernamePassword) -> defer.Deferred[bytes]:
        return defer.ensureDeferred(self._check(creds.username, creds.password))

    async def _check(self, username: bytes, password: bytes) -> bytes:
        user = username.decode("utf-8", "replace")
        hashed = self._current_users().get(user)
        if hashed is None:
            raise cred_error.UnauthorizedLogin(f"no user {user!r}")
        # The stored hash is part of the key, so a changed password voids what was believed.
        key = hmac.new(self._key, username + b"\0" + password + b"\0" + hashed, hashlib.sha256).digest()
        now = self._clock.seconds()
        if self._verified.get(key, 0.0) > now:
            return username
        if not await self._to_thread(_bcrypt_matches, self._verify, password, hashed):
            raise cred_error.UnauthorizedLogin(f"wrong password for {user!r}")
        self._verified[key] = now + VERIFIED_SECONDS
        self._verified.move_to_end(key)
        while len(self._verified) > VERIFIED_MAX:
            self._verified.popitem(last=False)
        return username


def _bcrypt_matches(verify: Callable[[bytes, bytes], bool], password: bytes, hashed: bytes) -> bool:
    try:
        return verify(password, hashed)
    except ValueError:
        return False  # e.g. a password over bcrypt's 72 bytes: it cannot be this user's


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


def build_portal(htpasswd: Path, clock: Any) -> portal.Portal:
    return portal.Portal(Accounts(), [HtpasswdChecker(htpasswd, clock)])


class AccessPolicy:
    """Decides, for each request, whether it is served, refused, or needs a login first.

    ``--allow-from`` comes first, on every path. Then ``auth="all"`` asks every request
    except ``/+health`` for a login, ``auth="upload"`` only uploads (POST); without users,
    uploads are refused unless anonymous ones are allowed.
    """

    def __init__(
        self,
        networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
        login: portal.Portal | None = None,
        auth: str = "upload",
        allow_anonymous_upload: bool = False,
    ) -> None:
        self._networks = tuple(networks)
        self._portal = login
        self._auth = auth
        self._anonymous_upload = allow_anonymous_upload

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
        return _is_upload(request) and not self._anonymous_upload

    async def login(self, request: IRequest) -> resource.IResource | None:
        """None when the request's basic-auth login is good, else the 401 to answer with."""
        assert self._portal is not None
        user, password = request.getUser(), request.getPassword()
        if not user:
            return _unauthorized("login required")
        try:
            _interface, account, _logout = await self._portal.login(
                credentials.UsernamePassword(user, password), None, IAccount
            )
        except cred_error.UnauthorizedLogin:
            log.warn(
                "failed login for user {user!r} from {client} ({method} {path})",
                user=user.decode("utf-8", "replace"),
                client=_client_host(request),
                method=request.method.decode("latin-1"),
                path=request.path.decode("latin-1"),
            )
            return _unauthorized("wrong user name or password")
        if hasattr(request, "account"):
            request.account = account
        return None


def _unauthorized(reason: str) -> resource.IResource:
    return error_page(401, reason, {"WWW-Authenticate": f'Basic realm="{REALM}"'})


def _is_upload(request: IRequest) -> bool:
    return request.method == b"POST"


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

    def __init__(self, root: resource.IResource, policy: AccessPolicy, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.policy = policy

    def _openLogFile(self, path: str) -> logfile.LogFile:  # the hook HTTPFactory offers
        return logfile.LogFile(
            os.path.basename(path),
            os.path.dirname(path),
            rotateLength=self.log_rotate_length,
            maxRotatedFiles=self.log_rotated_files,
        )

    def getResourceFor(self, request: IRequest) -> resource.IResource:
        request.site = self
        request.sitepath = list(request.prepath)
        refused = self.policy.refusal(request)
        if refused is not None:
            return refused
        if not self.policy.needs_login(request):
            return super().getResourceFor(request)
        checked = defer.ensureDeferred(self.policy.login(request))
        checked.addCallback(lambda refused: refused or server.Site.getResourceFor(self, request))
        return DeferredResource(checked)


def site_for(root: resource.IResource, config: Any, clock: Any, **kwargs: Any) -> GatedSite:
    """The site for a config's ``--allow-from``, ``--htpasswd``, ``--auth`` and uploads."""
    login = build_portal(config.htpasswd, clock) if config.htpasswd else None
    policy = AccessPolicy(config.allow_from, login, config.auth, config.allow_anonymous_upload)
    return GatedSite(root, policy, **kwargs)
