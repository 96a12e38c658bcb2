"""The private packages: checking them, storing them, and the tier that serves them first."""

from .store import PRIVATE_URL, PrivateStore, StoredFile
from .tier import PrivateFiles, PrivatePages
from .validation import (
    MAX_METADATA,
    AlreadyExists,
    Distribution,
    Refused,
    check_distribution,
)

__all__ = [
    "MAX_METADATA", "PRIVATE_URL", "AlreadyExists", "Distribution", "PrivateFiles",
    "PrivatePages", "PrivateStore", "Refused", "StoredFile", "check_distribution",
]
