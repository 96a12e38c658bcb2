"""The server: ``twistd pypiproxy`` options into a Config, and makeService wiring it up."""

from .options import Options
from .service import build_site, makeService

__all__ = ["Options", "build_site", "makeService"]
