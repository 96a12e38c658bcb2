"""Who may do what: htpasswd logins through twisted.cred, and the gate in front of the site."""

from .gate import AccessPolicy, GatedSite, site_for
from .htpasswd import HtpasswdChecker, HtpasswdError, load_htpasswd

__all__ = ["AccessPolicy", "GatedSite", "HtpasswdChecker", "HtpasswdError", "load_htpasswd", "site_for"]
