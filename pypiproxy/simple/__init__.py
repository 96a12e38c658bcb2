"""The Simple API (PEP 503, 691, 658, 700), pure: the model, its formats, names and hashes."""

from __future__ import annotations

from packaging.utils import canonicalize_name

from .filenames import (
    NORMALISED_NAME,
    VALID_NAME,
    BadFilename,
    is_distribution_name,
    parse_filename,
    version_of,
)
from .model import (
    API_VERSION,
    QUARANTINED,
    FileEntry,
    FileURL,
    IndexFormatError,
    ProjectPage,
    api_version_of,
    derive_versions,
)
from .negotiation import HTML_V1, JSON_V1, TEXT_HTML, accepts_gzip, negotiate, parse_qualities
from .pep503 import parse_project_html, parse_project_list_html, render_project_html
from .pep691 import (
    file_to_json,
    parse_project_json,
    parse_project_list_json,
    project_from_json,
    project_to_json,
    render_project_json,
)


__all__ = [
    "API_VERSION", "BadFilename", "FileEntry", "FileURL", "HTML_V1", "IndexFormatError", "JSON_V1",
    "NORMALISED_NAME", "ProjectPage", "QUARANTINED", "TEXT_HTML", "VALID_NAME", "accepts_gzip", "api_version_of",
    "derive_versions",
    "file_to_json", "is_distribution_name", "negotiate", "parse_filename", "parse_project",
    "parse_project_html", "parse_project_json", "parse_project_list", "parse_qualities",
    "project_from_json", "project_to_json", "render_project_html", "render_project_json",
    "version_of",
]


# What a parser may raise on a hostile page besides IndexFormatError: each is that error too,
# so that the caller serves its stale copy or a 502, never a 500.
_PARSER_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError, AssertionError)


def parse_project(body: bytes, content_type: str, page_url: str, name: str) -> ProjectPage:
    """Read a project page in whichever format the index answered with."""
    try:
        if "json" in content_type:
            return parse_project_json(body, page_url, name)
        return parse_project_html(body, page_url, name)
    except IndexFormatError:
        raise
    except _PARSER_ERRORS as e:
        raise IndexFormatError(f"not a project page: {type(e).__name__}: {e}") from e


def parse_project_list(body: bytes, content_type: str) -> tuple[str, ...]:
    """Read the root page (``/simple/``): the normalised names it lists."""
    try:
        names = parse_project_list_json(body) if "json" in content_type else parse_project_list_html(body)
        return tuple(dict.fromkeys(canonicalize_name(n) for n in names))
    except IndexFormatError:
        raise
    except _PARSER_ERRORS as e:  # a name that is not a string, among others
        raise IndexFormatError(f"not a project list: {type(e).__name__}: {e}") from e
