"""Logging in: htpasswd passwords or API tokens (user ``__token__``), and the Account each login is."""

from __future__ import annotations

from typing import Any, Callable

from twisted.cred import credentials, error as cred_error, portal
from twisted.cred.checkers import ICredentialsChecker
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from ..private import Account, Audit, Token, TokenRefused, TokenStore
from .groups import Groups
from .htpasswd import HtpasswdChecker, IAccount

log = Logger()

# The user name API tokens log in with, as on the public index.
TOKEN_USER = b"__token__"


class TokenLogin:
    """The avatar id of a token login: the token, and so its user and scope."""

    def __init__(self, token: Token) -> None:
        self.token = token


@implementer(ICredentialsChecker)
class TokenChecker:
    """``__token__`` and a token: good while the token is on disk, unexpired, and its user
    still in the htpasswd file. The token file is looked at (a ``stat``) on every login."""

    credentialInterfaces = (credentials.IUsernamePassword,)

    def __init__(
        self,
        tokens: TokenStore,
        users: HtpasswdChecker,
        clock: IReactorTime,
        to_thread: Callable[..., defer.Deferred],
        audit: Audit,
    ) -> None:
        self._tokens = tokens
        self._users = users
        self._clock = clock
        self._to_thread = to_thread
        self._audit = audit

    def requestAvatarId(self, creds: credentials.IUsernamePassword) -> defer.Deferred[TokenLogin]:
        now = self._clock.seconds()
        try:
            token = self._tokens.check(creds.password.decode("utf-8", "replace"), now)
            if not self._users.has_user(token.user):
                raise TokenRefused(f"the token's user {token.user!r} is no longer a user", token.id, token.user)
        except TokenRefused as e:
            refused = cred_error.UnauthorizedLogin(e.reason)
            noted = self._audit.record("token-refused", e.user or "__token__", token=e.token_id, reason=e.reason)
            return noted.addCallback(lambda _: defer.fail(refused))
        if self._tokens.needs_touch(token, now):
            self._to_thread(self._tokens.touch, token.id, now).addErrback(
                lambda f: log.failure("cannot note the use of token {id}", f, id=token.id)
            )
        return defer.succeed(TokenLogin(token))


@implementer(ICredentialsChecker)
class LoginChecker:
    """User ``__token__`` goes to the token checker, anyone else to the htpasswd file."""

    credentialInterfaces = (credentials.IUsernamePassword,)

    def __init__(self, passwords: ICredentialsChecker, tokens: ICredentialsChecker) -> None:
        self._passwords = passwords
        self._tokens = tokens

    def requestAvatarId(self, creds: credentials.IUsernamePassword) -> defer.Deferred[Any]:
        if creds.username == TOKEN_USER:
            return self._tokens.requestAvatarId(creds)
        return self._passwords.requestAvatarId(creds)


@implementer(portal.IRealm)
class AccountRealm:
    """Makes each login an Account: the user's groups (read now, so a changed group file
    counts at once), cut down by the token's scope for a token login."""

    def __init__(self, groups: Groups) -> None:
        self._groups = groups

    def account(self, user: str, token: Token | None = None) -> Account:
        admin, uploader = self._groups.is_admin(user), self._groups.may_upload(user)
        if token is None:
            return Account(user, admin=admin, uploader=uploader)
        return Account(
            user,
            # A scoped token is never an admin's master key: it uploads to its projects only.
            admin=admin and not token.projects and not token.read_only,
            uploader=uploader,
            read_only=token.read_only,
            projects=token.projects,
            token_id=token.id,
        )

    def requestAvatar(self, avatarId: Any, mind: object, *interfaces: Any) -> tuple[Any, Account, Callable[[], None]]:
        if IAccount not in interfaces:
            raise NotImplementedError("only IAccount")
        if isinstance(avatarId, TokenLogin):
            account = self.account(avatarId.token.user, avatarId.token)
        else:
            account = self.account(avatarId.decode("utf-8", "replace"))
        return IAccount, account, lambda: None


def build_login(
    users: HtpasswdChecker,
    groups: Groups,
    tokens: TokenStore,
    audit: Audit,
    clock: IReactorTime,
    to_thread: Callable[..., defer.Deferred],
) -> portal.Portal:
    """The portal every login goes through."""
    checker = LoginChecker(users, TokenChecker(tokens, users, clock, to_thread, audit))
    return portal.Portal(AccountRealm(groups), [checker])
