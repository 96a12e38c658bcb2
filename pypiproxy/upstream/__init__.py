"""The one upstream client (pool, TLS, credentials, timeouts) and the index pages it fetches."""

from .bodies import BodyTooLarge, read_at_most
from .client import UpstreamClient, UpstreamError, UpstreamResponse, UpstreamTimeout
from .endpoints import READ_SIZE, trust_root
from .index import BadIndexPage, FetchedPage, ProjectMissing, UpstreamStatus, fetch_project, fetch_project_list

__all__ = [
    "BadIndexPage", "BodyTooLarge", "FetchedPage", "ProjectMissing", "READ_SIZE", "UpstreamClient", "UpstreamError",
    "UpstreamResponse", "UpstreamStatus", "UpstreamTimeout", "fetch_project", "fetch_project_list",
    "read_at_most", "trust_root",
]
