"""The Simple API index model, its parsers (PEP 503 HTML, PEP 691 JSON) and renderers: pure, no I/O."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urldefrag, urljoin

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
API_VERSION = "1.1"

# What a renderer needs to know about each file's URL: given an entry, where clients fetch it.
FileURL = Callable[["FileEntry"], str]


@dataclass(frozen=True)
class FileEntry:
    """One distribution file, as the index describes it.

    Optional keys follow PEP 691: ``None`` means the index said nothing, so nothing is
    rendered for it. ``url`` is absolute (the upstream's), never with a hash fragment.
    """

    filename: str
    url: str
    hashes: Mapping[str, str] = field(default_factory=dict)
    requires_python: str | None = None
    yanked: bool | str = False
    core_metadata: bool | Mapping[str, str] = False
    gpg_sig: bool | None = None
    size: int | None = None
    upload_time: str | None = None

    @property
    def sha256(self) -> str | None:
        return self.hashes.get("sha256")

    def to_json(self, url: str) -> dict[str, Any]:
        """The PEP 691 file object, with ``url`` as given."""
        out: dict[str, Any] = {
            "filename": self.filename,
            "url": url,
            "hashes": dict(self.hashes),
        }
        if self.requires_python is not None:
            out["requires-python"] = self.requires_python
        if self.yanked:
            out["yanked"] = self.yanked
        if self.core_metadata:
            metadata = (
                dict(self.core_metadata) if isinstance(self.core_metadata, Mapping) else True
            )
            # PEP 714: not the old "dist-info-metadata" key, on which pip 22.3-23.0 (Debian
            # 12's pip among them) crashes when it holds hashes.
            out["core-metadata"] = metadata
        if self.gpg_sig is not None:
            out["gpg-sig"] = self.gpg_sig
        if self.size is not None:
            out["size"] = self.size
        if self.upload_time is not None:
            out["upload-time"] = self.upload_time
        return out


@dataclass(frozen=True)
class ProjectPage:
    """A project's files, as one index lists them."""

    name: str
    files: tuple[FileEntry, ...] = ()
    versions: tuple[str, ...] | None = None

    def find(self, filename: str) -> FileEntry | None:
        for entry in self.files:
            if entry.filename == filename:
                return entry
        return None

    def to_json(self, file_url: FileURL | None = None) -> dict[str, Any]:
        """The PEP 691 project object (api-version 1.1)."""
        versions = self.versions if self.versions is not None else derive_versions(self.files)
        return {
            "meta": {"api-version": API_VERSION},
            "name": canonicalize_name(self.name),
            "versions": list(versions),
            "files": [
                entry.to_json(file_url(entry) if file_url else entry.url)
                for entry in self.files
            ],
        }


class IndexFormatError(ValueError):
    """The upstream's page is not a Simple API page we can read."""


def derive_versions(files: Iterable[FileEntry]) -> tuple[str, ...]:
    """PEP 700 ``versions``, from the files' names, where an index did not send them."""
    seen: dict[str, None] = {}
    for entry in files:
        version = version_of(entry.filename)
        if version is not None:
            seen[version] = None
    return tuple(seen)


def version_of(filename: str) -> str | None:
    """The version a wheel or sdist filename carries, or ``None`` for other files."""
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except (InvalidWheelFilename, InvalidSdistFilename, ValueError):
        return None


def _split_hash(fragment: str) -> dict[str, str]:
    name, sep, value = fragment.partition("=")
    if sep and name and value:
        return {name.lower(): value.lower()}
    return {}


def _metadata_attr(value: str | None) -> bool | dict[str, str]:
    """PEP 714: ``true`` or ``<hashname>=<hexdigest>``; absent or ``false`` means none."""
    if value is None or value.strip().lower() == "false":
        return False
    return _split_hash(value.strip()) or True


# Parsing -------------------------------------------------------------------------------


class _AnchorCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self.base: str | None = None
        self._open: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")
        elif tag == "a":
            self._open = dict(attrs)
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.anchors.append((self._open, "".join(self._text).strip()))
            self._open = None


def parse_project_html(body: bytes, page_url: str, name: str) -> ProjectPage:
    """Read a PEP 503 project page; relative URLs are resolved against ``page_url``."""
    collector = _AnchorCollector()
    collector.feed(body.decode("utf-8", "replace"))
    collector.close()
    base = urljoin(page_url, collector.base) if collector.base else page_url
    files = []
    for attrs, text in collector.anchors:
        href = attrs.get("href")
        if not href:
            continue
        url, fragment = urldefrag(urljoin(base, href))
        filename = text or url.rsplit("/", 1)[-1]
        yanked: bool | str = False
        if "data-yanked" in attrs:
            yanked = attrs["data-yanked"] or True
        metadata = attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
        gpg = attrs.get("data-gpg-sig")
        files.append(
            FileEntry(
                filename=filename,
                url=url,
                hashes=_split_hash(fragment),
                requires_python=attrs.get("data-requires-python") or None,
                yanked=yanked,
                core_metadata=_metadata_attr(metadata),
                gpg_sig=None if gpg is None else gpg.lower() == "true",
            )
        )
    return ProjectPage(name=canonicalize_name(name), files=tuple(files))


def parse_project_json(body: bytes, page_url: str, name: str) -> ProjectPage:
    """Read a PEP 691 project page; relative URLs are resolved against ``page_url``."""
    try:
        data = json.loads(body)
        files = []
        for item in data["files"]:
            url, fragment = urldefrag(urljoin(page_url, item["url"]))
            hashes = {k.lower(): str(v).lower() for k, v in (item.get("hashes") or {}).items()}
            if not hashes:
                hashes = _split_hash(fragment)
            metadata = item.get("core-metadata", item.get("dist-info-metadata", False))
            if isinstance(metadata, Mapping):
                metadata = {k.lower(): str(v).lower() for k, v in metadata.items()} or True
            size = item.get("size")
            files.append(
                FileEntry(
                    filename=item["filename"],
                    url=url,
                    hashes=hashes,
                    requires_python=item.get("requires-python") or None,
                    yanked=item.get("yanked") or False,
                    core_metadata=metadata or False,
                    gpg_sig=item.get("gpg-sig"),
                    size=size if isinstance(size, int) else None,
                    upload_time=item.get("upload-time"),
                )
            )
        versions = data.get("versions")
        return ProjectPage(
            name=canonicalize_name(data.get("name") or name),
            files=tuple(files),
            versions=tuple(versions) if isinstance(versions, list) else None,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise IndexFormatError(f"not a PEP 691 project page: {e}") from e


def parse_project(body: bytes, content_type: str, page_url: str, name: str) -> ProjectPage:
    """Read a project page in whichever format the index answered with."""
    if "json" in content_type:
        return parse_project_json(body, page_url, name)
    return parse_project_html(body, page_url, name)


def parse_project_list(body: bytes, content_type: str) -> tuple[str, ...]:
    """Read the root page (``/simple/``): the normalised names it lists."""
    if "json" in content_type:
        try:
            names = [p["name"] for p in json.loads(body)["projects"]]
        except (ValueError, KeyError, TypeError) as e:
            raise IndexFormatError(f"not a PEP 691 project list: {e}") from e
    else:
        collector = _AnchorCollector()
        collector.feed(body.decode("utf-8", "replace"))
        collector.close()
        names = [text for _attrs, text in collector.anchors if text]
    return tuple(dict.fromkeys(canonicalize_name(n) for n in names))


# Rendering -----------------------------------------------------------------------------


def render_project_json(page: ProjectPage, file_url: FileURL) -> bytes:
    return json.dumps(page.to_json(file_url), separators=(",", ":")).encode()


def render_project_html(page: ProjectPage, file_url: FileURL) -> bytes:
    name = canonicalize_name(page.name)
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
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
        if entry.yanked:
            reason = entry.yanked if isinstance(entry.yanked, str) else ""
            attrs.append(f'data-yanked="{html.escape(reason)}"')
        if entry.core_metadata:
            value = "true"
            if isinstance(entry.core_metadata, Mapping) and entry.core_metadata:
                algorithm, digest = next(iter(entry.core_metadata.items()))
                value = f"{algorithm}={digest}"
            attrs.append(f'data-core-metadata="{html.escape(value)}"')
            attrs.append(f'data-dist-info-metadata="{html.escape(value)}"')
        if entry.gpg_sig is not None:
            attrs.append(f'data-gpg-sig="{"true" if entry.gpg_sig else "false"}"')
        lines.append(f"    <a {' '.join(attrs)}>{html.escape(entry.filename)}</a><br>")
    lines += ["  </body>", "</html>", ""]
    return "\n".join(lines).encode()


def render_project_list_json(names: Iterable[str]) -> bytes:
    return json.dumps(
        {"meta": {"api-version": API_VERSION}, "projects": [{"name": n} for n in names]},
        separators=(",", ":"),
    ).encode()


def render_project_list_html(names: Iterable[str]) -> bytes:
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
        "    <title>Simple index</title>",
        "  </head>",
        "  <body>",
    ]
    lines += [f'    <a href="{html.escape(n)}/">{html.escape(n)}</a><br>' for n in names]
    lines += ["  </body>", "</html>", ""]
    return "\n".join(lines).encode()


# Storage form: the model as JSON with absolute upstream URLs, for the page cache. ----------


def page_to_storage(page: ProjectPage) -> dict[str, Any]:
    return page.to_json()


def page_from_storage(data: Mapping[str, Any]) -> ProjectPage:
    return parse_project_json(json.dumps(data).encode(), "", data["name"])


def with_files(page: ProjectPage, files: Iterable[FileEntry]) -> ProjectPage:
    return replace(page, files=tuple(files))


# Content negotiation (PEP 691) ---------------------------------------------------------


def parse_qualities(accept: str) -> list[tuple[str, float]]:
    """``Accept``-style lists (also ``Accept-Encoding``): each item, lower-cased, with its q."""
    ranges = []
    for part in accept.split(","):
        pieces = part.strip().split(";")
        media = pieces[0].strip().lower()
        if not media:
            continue
        quality = 1.0
        for param in pieces[1:]:
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranges.append((media, quality))
    return ranges


# What we can answer with: media type -> (format, content type we answer with), in our
# order of preference when a client ranks two the same.
_OFFERS = {
    JSON_V1: ("json", JSON_V1),
    "application/vnd.pypi.simple.latest+json": ("json", JSON_V1),
    HTML_V1: ("html", HTML_V1),
    "application/vnd.pypi.simple.latest+html": ("html", HTML_V1),
    TEXT_HTML: ("html", TEXT_HTML),
}
_WILDCARDS = {
    "*/*": ("html", TEXT_HTML),
    "text/*": ("html", TEXT_HTML),
    "application/*": ("json", JSON_V1),
}


def negotiate(accept: str | None, format_param: str | None = None) -> tuple[str, str] | None:
    """Pick ``(format, content_type)`` for a request, or ``None`` if nothing is acceptable.

    ``format`` is ``"json"`` or ``"html"``. ``?format=`` wins over ``Accept`` as on PyPI;
    no ``Accept`` (or ``*/*``) gets ``text/html``, as PEP 691 recommends for old clients.
    """
    if format_param:
        accept = format_param
    if not accept:
        return ("html", TEXT_HTML)
    ranked = []
    order = list(_OFFERS)
    for media, quality in parse_qualities(accept):
        if quality <= 0:
            continue
        if media in _OFFERS:
            ranked.append((quality, 1, -order.index(media), _OFFERS[media]))
        elif media in _WILDCARDS:
            ranked.append((quality, 0, 0, _WILDCARDS[media]))
    return max(ranked)[3] if ranked else None
