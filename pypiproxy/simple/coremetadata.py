"""What a distribution's core metadata (METADATA, PKG-INFO) says, for pages people read."""

from __future__ import annotations

from dataclasses import dataclass

from packaging.metadata import parse_email

# Longer than this is cut: a page is no place for a megabyte of README.
MAX_DESCRIPTION = 200_000


@dataclass(frozen=True)
class CoreMetadata:
    """The fields a project page shows; every one as the package wrote it (untrusted text)."""

    summary: str | None = None
    requires_dist: tuple[str, ...] = ()
    requires_python: str | None = None
    project_urls: tuple[tuple[str, str], ...] = ()
    description: str | None = None
    description_content_type: str | None = None
    license: str | None = None
    author: str | None = None


def read_core_metadata(data: bytes) -> CoreMetadata:
    """The fields of a METADATA file; what cannot be read is left out, never an error."""
    raw, _unparsed = parse_email(data)
    urls = list(raw.get("project_urls", {}).items())
    if raw.get("home_page"):
        urls.insert(0, ("Homepage", raw["home_page"]))
    description = raw.get("description")
    if description is not None and len(description) > MAX_DESCRIPTION:
        description = description[:MAX_DESCRIPTION] + "\n\n[… cut here: the description is longer]"
    return CoreMetadata(
        summary=raw.get("summary"),
        requires_dist=tuple(raw.get("requires_dist", ())),
        requires_python=raw.get("requires_python"),
        project_urls=tuple(urls),
        description=description,
        description_content_type=raw.get("description_content_type"),
        license=raw.get("license_expression") or _first_line(raw.get("license")),
        author=raw.get("author") or raw.get("author_email"),
    )


def _first_line(text: str | None) -> str | None:
    """A License field sometimes holds the whole licence text; its first line names it."""
    if not text:
        return None
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:200] or None
