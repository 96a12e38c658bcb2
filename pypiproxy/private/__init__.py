"""The private packages: checking them, storing them, who may upload them, and the tier that serves them first."""

from .audit import Audit
from .ownership import Claims, Owners
from .rules import Account, Forbidden, UploadRules, Unavailable, in_namespace, upstream_serves
from .state import StateError, StateFile
from .store import PRIVATE_URL, NoSuchRelease, PrivateStore, StoredFile
from .team import Team
from .tier import PrivateFiles, PrivatePages
from .tokens import NoSuchToken, Token, TokenRefused, TokenStore
from .validation import (
    MAX_METADATA,
    AlreadyExists,
    Distribution,
    Refused,
    check_distribution,
)

__all__ = [
    "MAX_METADATA", "PRIVATE_URL", "Account", "AlreadyExists", "Audit", "Claims", "Distribution", "Forbidden",
    "NoSuchRelease", "NoSuchToken", "Owners", "PrivateFiles", "PrivatePages", "PrivateStore", "Refused",
    "StateError", "StateFile", "StoredFile", "Team", "Token", "TokenRefused", "TokenStore", "Unavailable",
    "UploadRules", "check_distribution", "in_namespace", "upstream_serves",
]
