"""Pages for people: landing, search, project pages with yank, tokens (twisted.web.template, no script)."""

from .landing import Landing
from .login import Login
from .page import html_error
from .project import Projects
from .search import Search
from .static import Static
from .tokens import Tokens

__all__ = ["Landing", "Login", "Projects", "Search", "Static", "Tokens", "html_error"]
