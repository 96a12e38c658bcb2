"""The resource tree, one module per part of the URL space; the site, its gate and request policy."""

from .components import Components, TeamActions
from .gate import AccessPolicy, GatedSite, site_for
from .request import SiteRequest
from .root import Root
from .tokens import TokenService, TokensPage
from .upload import Upload

__all__ = [
    "AccessPolicy", "Components", "GatedSite", "Root", "SiteRequest", "TeamActions", "TokenService", "TokensPage", "Upload",
    "site_for",
]
