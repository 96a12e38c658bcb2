"""PEP 691 JSON: project pages and the project list, read from upstreams and rendered."""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping
from urllib.parse import urldefrag, urljoin

from packaging.utils import canonicalize_name

from .model import API_VERSION, FileEntry, FileURL, IndexFormatError, ProjectPage, api_version_of, split_hash

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


def _metadata(value: object) -> tuple[bool, dict[str, str]]:
    if isinstance(value, Mapping):
        return True, {str(k).lower(): str(v).lower() for k, v in value.items()}
    return bool(value), {}


def parse_project_json(body: bytes, page_url: str, name: str) -> ProjectPage:
    """Read a PEP 691 project page; relative URLs are resolved against ``page_url``."""
    try:
        return project_from_json(json.loads(body), page_url, name)
    except ValueError as e:
        raise IndexFormatError(f"not a PEP 691 project page: {e}") from e


def project_from_json(data: Any, page_url: str, name: str) -> ProjectPage:
    """The model of a decoded PEP 691 project object."""
    try:
        files = []
        for item in data["files"]:
            url, fragment = urldefrag(urljoin(page_url, item["url"]))
            hashes = {k.lower(): str(v).lower() for k, v in (item.get("hashes") or {}).items()}
            has_metadata, metadata_hashes = _metadata(
                item.get("core-metadata", item.get("dist-info-metadata", False))
            )
            yanked = item.get("yanked") or False
            size = item.get("size")
            files.append(
                FileEntry(
                    filename=item["filename"],
                    url=url,
                    hashes=hashes or split_hash(fragment),
                    requires_python=item.get("requires-python") or None,
                    is_yanked=bool(yanked),
                    yanked_reason=yanked if isinstance(yanked, str) else None,
                    has_metadata=has_metadata,
                    metadata_hashes=metadata_hashes,
                    gpg_sig=item.get("gpg-sig"),
                    size=size if isinstance(size, int) else None,
                    upload_time=item.get("upload-time"),
                    provenance=_text(item.get("provenance")),
                    extra=_unknown(item, _FILE_KEYS),
                )
            )
        versions = data.get("versions")
        status = data.get("project-status")
        if not isinstance(status, Mapping):
            status = {}
        return ProjectPage(
            name=canonicalize_name(data.get("name") or name),
            files=tuple(files),
            versions=tuple(versions) if isinstance(versions, list) else None,
            status=_text(status.get("status")),
            status_reason=_text(status.get("reason")),
            api_version=_text((data.get("meta") or {}).get("api-version")) or "1.0",
            extra=_unknown(data, _PROJECT_KEYS),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise IndexFormatError(f"not a PEP 691 project page: {e}") from e


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def parse_project_list_json(body: bytes) -> list[str]:
    try:
        return [p["name"] for p in json.loads(body)["projects"]]
    except (ValueError, KeyError, TypeError) as e:
        raise IndexFormatError(f"not a PEP 691 project list: {e}") from e


def render_project_json(page: ProjectPage, file_url: FileURL) -> bytes:
    return json.dumps(project_to_json(page, file_url), separators=(",", ":")).encode()


def render_project_list_json(names: Iterable[str]) -> bytes:
    return json.dumps(
        {"meta": {"api-version": API_VERSION}, "projects": [{"name": n} for n in names]},
        separators=(",", ":"),
    ).encode()
