"""htpasswd users (bcrypt only), checked through twisted.cred; the file is reread when it changes."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import bcrypt
from twisted.cred import credentials, error as cred_error, portal
from twisted.cred.checkers import ICredentialsChecker
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import Interface, implementer

log = Logger()

# A (user, password) that bcrypt has accepted is believed this long without asking it again:
# pip and uv send the same login with each of the many requests of one install.
VERIFIED_SECONDS = 300.0
VERIFIED_MAX = 4096
MAX_PASSWORD = 72  # bytes: all bcrypt reads
_BCRYPT = re.compile(r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}\Z")
_KNOWN_SCHEMES = (
    ("$apr1$", "Apache MD5 ($apr1$)"),
    ("{SHA}", "SHA-1 ({SHA})"),
    ("$1$", "MD5-crypt ($1$)"),
    ("$5$", "SHA-256-crypt ($5$)"),
    ("$6$", "SHA-512-crypt ($6$)"),
)


class PasswordTooLong(cred_error.UnauthorizedLogin):
    """Over bcrypt's 72 bytes: refused rather than silently cut."""


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

    bcrypt takes 100+ ms on purpose, so it runs in a thread (of a pool of its own: see
    server/service.py), and a verified login is remembered for a few minutes under a keyed
    hash (never the password itself). Unknown users cost a bcrypt too.
    """

    credentialInterfaces = (credentials.IUsernamePassword,)

    def __init__(
        self,
        path: Path,
        clock: IReactorTime,
        to_thread: Callable[..., defer.Deferred],
        verify: Callable[[bytes, bytes], bool] = bcrypt.checkpw,
    ) -> None:
        self._path = path
        self._clock = clock
        self._verify = verify
        self._to_thread = to_thread
        self._key = os.urandom(32)
        self._verified: OrderedDict[bytes, float] = OrderedDict()
        self._users = load_htpasswd(path)
        self._stamp = _stamp(path)
        self._dummy_hash: bytes | None = None

    def _against_dummy(self, password: bytes) -> bool:  # in a thread
        """Check a password against a hash no password matches, of the users' highest cost."""
        cost = max((h[4:6] for h in self._users.values()), default=b"12")
        dummy = self._dummy_hash
        if dummy is None or dummy[4:6] != cost:
            dummy = self._dummy_hash = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(int(cost)))
        return _bcrypt_matches(self._verify, password, dummy)

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

    def has_user(self, user: str) -> bool:
        """Whether the file (as it is now) has this user: a token's user must still be one."""
        return user in self._current_users()

    def requestAvatarId(self, creds: credentials.IUsernamePassword) -> defer.Deferred[bytes]:
        return defer.ensureDeferred(self._check(creds.username, creds.password))

    async def _check(self, username: bytes, password: bytes) -> bytes:
        user = username.decode("utf-8", "replace")
        if len(password) > MAX_PASSWORD:
            # bcrypt reads 72 bytes and (4.x) ignores the rest: a longer one would be
            # accepted for any text that starts the same. Whoever sends it knows its length.
            raise PasswordTooLong(f"passwords over {MAX_PASSWORD} bytes are refused")
        hashed = self._current_users().get(user)
        if hashed is None:
            # As slow as a wrong password, so that timing tells no one which users exist.
            await self._to_thread(self._against_dummy, password)
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


def build_portal(htpasswd: Path, clock: IReactorTime, to_thread: Callable[..., defer.Deferred]) -> portal.Portal:
    return portal.Portal(Accounts(), [HtpasswdChecker(htpasswd, clock, to_thread)])
