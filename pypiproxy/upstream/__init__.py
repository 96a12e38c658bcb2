"""The one upstream client (pool, TLS, credentials, timeouts) and the index pages it fetches."""

from .bodies import BodyTooLarge, read_at_most
from .client import UpstreamClient, UpstreamError, UpstreamResponse, UpstreamTimeout
from .guard import ConnectGuard, DowngradeRefused, InternalAddressRefused, address_class
from .endpoints import READ_SIZE, trust_root
from .index import BadIndexPage, FetchedPage, ProjectMissing, UpstreamStatus, fetch_project, fetch_project_list

__all__ = [
    "BadIndexPage", "BodyTooLarge", "ConnectGuard", "DowngradeRefused", "InternalAddressRefused", "FetchedPage", "ProjectMissing", "READ_SIZE", "UpstreamClient", "UpstreamError",
    "UpstreamResponse", "UpstreamStatus", "UpstreamTimeout", "fetch_project", "fetch_project_list",
    "address_class", "read_at_most", "trust_root",
]
