"""Who a request is and what it may do: htpasswd logins and API tokens through twisted.cred, and groups."""

from .groups import Groups, GroupsError, load_groups
from .htpasswd import (
    Accounts, HtpasswdChecker, HtpasswdError, IAccount, PasswordTooLong, build_portal, load_htpasswd,
)
from .login import TOKEN_USER, AccountRealm, LoginChecker, TokenChecker, build_login
from .throttle import LoginThrottle

__all__ = [
    "Accounts", "AccountRealm", "Groups", "GroupsError", "HtpasswdChecker", "HtpasswdError", "IAccount",
    "LoginChecker", "LoginThrottle", "PasswordTooLong", "TOKEN_USER", "TokenChecker", "build_login",
    "build_portal", "load_groups", "load_htpasswd",
]
