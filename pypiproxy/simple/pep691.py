"""PEP 691 JSON: project pages read and rendered; the project list read (listing.py streams it out)."""

from __future__ import annotations

import json
from typing import Any, Mapping
from urllib.parse import urldefrag, urljoin

from packaging.utils import canonicalize_name

from .model import FileEntry, FileURL, IndexFormatError, ProjectPage, api_version_of, split_hash

# The keys we read into the model; any other key an index adds is kept as it gave it.
_FILE_KEYS = frozenset({
    "filename", "url", "hashes", "requires-python", "yanked", "core-metadata", "dist-info-metadata",
    "gpg-sig", "size", "upload-time", "provenance",
})
_PROJECT_KEYS = frozenset({"meta", "name", "versions", "files", "project-status"})


def _unknown(item: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    """An index's own additions (PEP 708's ``tracks``, say), without ``_``-prefixed private ones."""
    return {k: v for k, v in item.items() if k not in known and not str(k).startswith("_")}


def file_to_json(entry: FileEntry, url: str) -> dict[str, Any]:
    """The PEP 691 file object, with ``url`` as given."""
    out: dict[str, Any] = {"filename": entry.filename, "url": url, "hashes": dict(entry.hashes)}
    if entry.requires_python is not None:
        out["requires-python"] = entry.requires_python
    if entry.is_yanked:
        out["yanked"] = entry.yanked_reason or True
    if entry.has_metadata:
        # PEP 714: not the old "dist-info-metadata" key, on which pip 22.3-23.0 (Debian
        # 12's pip among them) crashes when it holds hashes.
        out["core-metadata"] = dict(entry.metadata_hashes) or True
    if entry.gpg_sig is not None:
        out["gpg-sig"] = entry.gpg_sig
    if entry.size is not None:
        out["size"] = entry.size
    if entry.upload_time is not None:
        out["upload-time"] = entry.upload_time
    if entry.provenance is not None:
        out["provenance"] = entry.provenance
    for key, value in entry.extra.items():
        out.setdefault(key, value)
    return out


def project_to_json(page: ProjectPage, file_url: FileURL | None = None) -> dict[str, Any]:
    """The PEP 691 project object; file URLs as ``file_url`` says, else the entries' own."""
    out: dict[str, Any] = {
        "meta": {"api-version": api_version_of(page)},
        "name": canonicalize_name(page.name),
        "versions": list(page.all_versions()),
        "files": [file_to_json(entry, file_url(entry) if file_url else entry.url) for entry in page.files],
    }
    if page.status is not None:
        status: dict[str, str] = {"status": page.status}
        if page.status_reason is not None:
            status["reason"] = page.status_reason
        out["project-status"] = status
    for key, value in page.extra.items():
        out.setdefault(key, value)
    return out


def _hashes(value: object) -> dict[str, str]:
    """A hash mapping of strings, lower-cased; anything else an index sent counts as none."""
    if not isinstance(value, Mapping):
        return {}
    return {k.lower(): v.lower() for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def _metadata(value: object) -> tuple[bool, dict[str, str]]:
    if isinstance(value, Mapping):
        return True, _hashes(value)
    return bool(value), {}


def _text(value: object) -> str | None:
    """An optional string field: a value of another type is taken as absent."""
    return value if isinstance(value, str) and value else None


def _loads(body: bytes) -> Any:
    """JSON, with what a hostile body can raise besides ValueError (nesting deep enough to
    exhaust the stack) turned into a ValueError too."""
    try:
        return json.loads(body)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def parse_project_json(body: bytes, page_url: str, name: str) -> ProjectPage:
    """Read a PEP 691 project page; relative URLs are resolved against ``page_url``."""
    try:
        return project_from_json(_loads(body), page_url, name)
    except ValueError as e:
        raise IndexFormatError(f"not a PEP 691 project page: {e}") from e


def project_from_json(data: Any, page_url: str, name: str) -> ProjectPage:
    """The model of a decoded PEP 691 project object; each field's type is checked as it is
    read, since a page is data from outside (a wrong type must not reach a renderer)."""
    try:
        if not isinstance(data, Mapping) or not isinstance(data.get("files"), list):
            raise IndexFormatError("not a PEP 691 project page: no list of files")
        files = []
        for item in data["files"]:
            if not isinstance(item, Mapping):
                raise IndexFormatError("not a PEP 691 project page: a file is not an object")
            filename, href = item.get("filename"), item.get("url")
            if not isinstance(filename, str) or not isinstance(href, str):
                raise IndexFormatError("not a PEP 691 project page: a file without a name or URL")
            url, fragment = urldefrag(urljoin(page_url, href))
            has_metadata, metadata_hashes = _metadata(
                item.get("core-metadata", item.get("dist-info-metadata", False))
            )
            yanked = item.get("yanked", False)
            size = item.get("size")
            gpg_sig = item.get("gpg-sig")
            files.append(
                FileEntry(
                    filename=filename,
                    url=url,
                    hashes=_hashes(item.get("hashes")) or split_hash(fragment),
                    requires_python=_text(item.get("requires-python")),
                    is_yanked=yanked is True or (isinstance(yanked, str) and bool(yanked)),
                    yanked_reason=yanked if isinstance(yanked, str) and yanked else None,
                    has_metadata=has_metadata,
                    metadata_hashes=metadata_hashes,
                    gpg_sig=gpg_sig if isinstance(gpg_sig, bool) else None,
                    size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
                    upload_time=_text(item.get("upload-time")),
                    provenance=_text(item.get("provenance")),
                    extra=_unknown(item, _FILE_KEYS),
                )
            )
        versions = data.get("versions")
        listed = _text(data.get("name"))
        status = data.get("project-status")
        if not isinstance(status, Mapping):
            status = {}
        return ProjectPage(
            name=canonicalize_name(listed or name),
            files=tuple(files),
            versions=tuple(v for v in versions if isinstance(v, str)) if isinstance(versions, list) else None,
            status=_text(status.get("status")),
            status_reason=_text(status.get("reason")),
            api_version=_text((data.get("meta") or {}).get("api-version")) or "1.0",
            extra=_unknown(data, _PROJECT_KEYS),
        )
    except IndexFormatError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise IndexFormatError(f"not a PEP 691 project page: {e}") from e


def parse_project_list_json(body: bytes) -> list[str]:
    try:
        projects = _loads(body)["projects"]
        return [p["name"] for p in projects if isinstance(p, Mapping) and isinstance(p.get("name"), str)]
    except (ValueError, KeyError, TypeError) as e:
        raise IndexFormatError(f"not a PEP 691 project list: {e}") from e


def render_project_json(page: ProjectPage, file_url: FileURL) -> bytes:
    return json.dumps(project_to_json(page, file_url), separators=(",", ":")).encode()
