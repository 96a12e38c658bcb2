"""Pages for people: the landing page, search and project pages (twisted.web.template, no script)."""

from .landing import Landing
from .page import html_error
from .project import Projects
from .search import Search
from .static import Static

__all__ = ["Landing", "Projects", "Search", "Static", "html_error"]
