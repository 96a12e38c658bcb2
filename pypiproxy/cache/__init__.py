"""The caches of what upstreams serve: files (one download each), PEP 658 metadata, pages."""

from .download import Download, HashMismatch
from .eviction import LRUBudget
from .files import CachedFile, FileCache, NotCached
from .metadata import MetadataCache
from .names import ListForm, ProjectList, ProjectListCache
from .pages import CachedPage, FileWithheld, PageCache, ProjectNotFound, Withheld
from .rendered import RenderedPage, Representation, render_page
from .store import KEY, FileStore, cache_key

__all__ = [
    "KEY", "CachedFile", "CachedPage", "ListForm", "ProjectList", "ProjectListCache", "Download", "FileCache", "FileStore", "FileWithheld", "HashMismatch",
    "LRUBudget", "MetadataCache", "NotCached", "PageCache", "ProjectNotFound", "RenderedPage", "Representation", "Withheld",
    "cache_key", "render_page",
]
