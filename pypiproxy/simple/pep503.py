"""PEP 503 HTML: project pages read and rendered; the project list read (listing.py streams it out)."""

from __future__ import annotations

import html
from urllib.parse import urldefrag, urljoin

from packaging.utils import canonicalize_name

from .anchors import scan_anchors
from .model import API_VERSION, FileEntry, FileURL, ProjectPage, split_hash


def _metadata_attr(value: str | None) -> tuple[bool, dict[str, str]]:
    """PEP 714: ``true`` or ``<hashname>=<hexdigest>``; absent or ``false`` means none."""
    if value is None or value.strip().lower() == "false":
        return False, {}
    return True, split_hash(value.strip())


def parse_project_html(body: bytes, page_url: str, name: str) -> ProjectPage:
    """Read a PEP 503 project page; relative URLs are resolved against ``page_url``."""
    anchors, scanner = scan_anchors(body)
    base = urljoin(page_url, scanner.base) if scanner.base else page_url
    files = []
    for attrs, text in anchors:
        href = attrs.get("href")
        if not href:
            continue
        url, fragment = urldefrag(urljoin(base, href))
        yanked = "data-yanked" in attrs
        has_metadata, metadata_hashes = _metadata_attr(
            attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
        )
        gpg = attrs.get("data-gpg-sig")
        files.append(
            FileEntry(
                filename=text or url.rsplit("/", 1)[-1],
                url=url,
                hashes=split_hash(fragment),
                requires_python=attrs.get("data-requires-python") or None,
                is_yanked=yanked,
                yanked_reason=(attrs["data-yanked"] or None) if yanked else None,
                has_metadata=has_metadata,
                metadata_hashes=metadata_hashes,
                gpg_sig=None if gpg is None else gpg.lower() == "true",
                provenance=attrs.get("data-provenance") or None,
            )
        )
    meta = scanner.meta
    return ProjectPage(
        name=canonicalize_name(name),
        files=tuple(files),
        status=meta.get("pypi:project-status") or None,
        status_reason=meta.get("pypi:project-status-reason") or None,
        # PEP 629: a page that says nothing is 1.0.
        api_version=meta.get("pypi:repository-version") or "1.0",
    )


def parse_project_list_html(body: bytes) -> list[str]:
    return [text for _attrs, text in scan_anchors(body)[0] if text]


def render_project_html(page: ProjectPage, file_url: FileURL) -> bytes:
    name = canonicalize_name(page.name)
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
        *_status_meta(page),
        f"    <title>Links for {html.escape(name)}</title>",
        "  </head>",
        "  <body>",
        f"    <h1>Links for {html.escape(name)}</h1>",
    ]
    for entry in page.files:
        href = file_url(entry)
        if entry.sha256:
            href += f"#sha256={entry.sha256}"
        elif entry.hashes:
            algorithm, digest = next(iter(entry.hashes.items()))
            href += f"#{algorithm}={digest}"
        attrs = [f'href="{html.escape(href)}"']
        if entry.requires_python is not None:
            attrs.append(f'data-requires-python="{html.escape(entry.requires_python)}"')
        if entry.is_yanked:
            attrs.append(f'data-yanked="{html.escape(entry.yanked_reason or "")}"')
        if entry.has_metadata:
            value = "true"
            if entry.metadata_hashes:
                algorithm, digest = next(iter(entry.metadata_hashes.items()))
                value = f"{algorithm}={digest}"
            attrs.append(f'data-core-metadata="{html.escape(value)}"')
            attrs.append(f'data-dist-info-metadata="{html.escape(value)}"')
        if entry.gpg_sig is not None:
            attrs.append(f'data-gpg-sig="{"true" if entry.gpg_sig else "false"}"')
        if entry.provenance is not None:
            attrs.append(f'data-provenance="{html.escape(entry.provenance)}"')
        lines.append(f"    <a {' '.join(attrs)}>{html.escape(entry.filename)}</a><br>")
    lines += ["  </body>", "</html>", ""]
    return "\n".join(lines).encode()


def _status_meta(page: ProjectPage) -> list[str]:
    """PEP 792's meta tags, where the index gave a status."""
    if page.status is None:
        return []
    lines = [f'    <meta name="pypi:project-status" content="{html.escape(page.status)}">']
    if page.status_reason is not None:
        lines.append(f'    <meta name="pypi:project-status-reason" content="{html.escape(page.status_reason)}">')
    return lines
