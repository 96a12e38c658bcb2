"""The resource tree, one module per part of the URL space, and the site's request policy."""

from .components import Components
from .request import SiteRequest
from .root import Root
from .upload import Upload

__all__ = ["Components", "Root", "SiteRequest", "Upload"]
