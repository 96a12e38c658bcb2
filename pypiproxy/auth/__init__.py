"""Who a request is and what it may do: htpasswd logins through twisted.cred."""

from .htpasswd import Accounts, HtpasswdChecker, HtpasswdError, IAccount, build_portal, load_htpasswd

__all__ = ["Accounts", "HtpasswdChecker", "HtpasswdError", "IAccount", "build_portal", "load_htpasswd"]
