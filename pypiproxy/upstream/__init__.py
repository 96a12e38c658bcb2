"""The one upstream client (pool, TLS, credentials, timeouts) and the index pages it fetches."""

from .client import UpstreamClient, UpstreamError, UpstreamResponse, UpstreamTimeout
from .endpoints import READ_SIZE, trust_root
from .index import BadIndexPage, FetchedPage, ProjectMissing, UpstreamStatus, fetch_project, fetch_project_list

__all__ = [
    "BadIndexPage", "FetchedPage", "ProjectMissing", "READ_SIZE", "UpstreamClient", "UpstreamError",
    "UpstreamResponse", "UpstreamStatus", "UpstreamTimeout", "fetch_project", "fetch_project_list",
    "trust_root",
]
