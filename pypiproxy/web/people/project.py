"""``GET /project/<name>/``: a project's versions and files, and what its metadata says, for people."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone

from packaging.version import InvalidVersion, Version
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request
from twisted.web.template import Element, Tag, TagLoader, renderer, tags

from ... import simple
from ...cache import CachedPage, ProjectNotFound, cache_key
from ...simple.coremetadata import CoreMetadata, read_core_metadata
from ...upstream import UpstreamError
from ..components import Components
from ..http import project_name, render_async
from ..simple import file_url
from .description import description_tag, safe_href
from .page import cell as _cell, html_error, human_bytes, logged_in, render_page, site_url, template
from .yank import change_release, yank_form

log = Logger()

# Files whose metadata is looked for, newest version first, before the page goes without.
METADATA_LOOKUPS = 12
# Versions are shown with their files, newest first, until this many files are on the page
# (and at most MAX_VERSIONS versions); older ones are listed by number. Flattening is done
# on the reactor, and a project with 10,000 files would hold it for seconds.
MAX_FILES = 200
MAX_VERSIONS = 60
INLINE_FILES = 500


@dataclass(frozen=True)
class VersionGroup:
    version: str
    files: tuple[simple.FileEntry, ...]

    @property
    def yanked(self) -> bool:
        return all(f.is_yanked for f in self.files)

    @property
    def yanked_reason(self) -> str | None:
        return next((f.yanked_reason for f in self.files if f.yanked_reason), None)

    @property
    def yanked_alike(self) -> bool:
        """Every file yanked, all for the same reason: the version's line says it for all."""
        return self.yanked and len({f.yanked_reason for f in self.files}) == 1


def newest_first(files: tuple[simple.FileEntry, ...]) -> list[VersionGroup]:
    """The files grouped by version, the newest version first (unreadable versions last)."""
    groups: dict[str, list[simple.FileEntry]] = {}
    for entry in files:
        groups.setdefault(entry.version or "unknown", []).append(entry)

    def order(version: str) -> tuple[int, Version | str]:
        try:
            return (1, Version(version))
        except InvalidVersion:
            return (0, version)

    ordered = sorted(groups, key=order, reverse=True)
    # Wheels first within a version: their metadata is what installers read.
    return [VersionGroup(v, tuple(sorted(groups[v], key=lambda f: (not f.filename.endswith(".whl"), f.filename))))
            for v in ordered]


def when(upload_time: str | None) -> str:
    if not upload_time:
        return "—"
    try:
        moment = datetime.fromisoformat(upload_time.replace("Z", "+00:00"))
    except ValueError:
        return upload_time[:40]
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Shown:
    """Everything one project page shows."""

    name: str
    private: bool
    source: str
    install: str
    versions: list[VersionGroup]
    metadata: CoreMetadata | None
    metadata_version: str | None
    description: Tag | None
    status: str | None = None  # PEP 792, as the index said it (None: active)
    status_reason: str | None = None
    closed: str | None = None  # why no file is served at all (a quarantine)
    withheld: tuple[tuple[str, int, str], ...] = ()  # (file name, status, reason) the guard holds back
    csrf: str | None = None  # set when the one logged in may yank and unyank here

    @property
    def in_full(self) -> int:
        """How many of the newest versions are shown with their files."""
        files = 0
        for shown, group in enumerate(self.versions[:MAX_VERSIONS]):
            files += len(group.files)
            if files > MAX_FILES and shown:
                return shown
        return min(len(self.versions), MAX_VERSIONS)


class _VersionElement(Element):
    def __init__(self, tag: Tag, group: VersionGroup, project: str, csrf: str | None) -> None:
        super().__init__(loader=TagLoader(tag))
        self._group = group
        self._url = file_url(project)
        self._csrf = csrf

    @renderer
    def manage(self, request: IRequest, tag: Tag) -> Tag | str:
        """Yank (with a reason) or unyank: a POST to this page, with the login's CSRF token."""
        if self._csrf is None:
            return ""
        return yank_form(self._group.version, self._group.yanked, self._csrf)

    @renderer
    def version_yanked(self, request: IRequest, tag: Tag) -> Tag | str:
        return tag if self._group.yanked else ""

    @renderer
    def version_reason(self, request: IRequest, tag: Tag) -> Tag | str:
        if not self._group.yanked:
            return ""
        return tag.fillSlots(reason=self._group.yanked_reason or "no reason given")

    @renderer
    def rows(self, request: IRequest, tag: Tag) -> Tag:
        # Built as tags directly, not cloned from the template: a clone and a renderer per
        # cell costs ten times as much, and a version may have dozens of files.
        said = self._group.yanked_alike  # the version's heading says it for every file
        for entry in self._group.files:
            name = tags.td(tags.a(entry.filename, href=self._url(entry)), class_="filename")
            if entry.is_yanked and not said:
                name(" ", tags.span("yanked", class_="badge yanked"), " ",
                     tags.span(entry.yanked_reason or "no reason given", class_="yank-reason"))
            tag(tags.tr(
                name,
                _cell("Size", human_bytes(entry.size) if entry.size is not None else "—"),
                _cell("Uploaded", when(entry.upload_time)),
                _cell("Requires Python", entry.requires_python or "—"),
            ))
        return tag



class _AboutElement(Element):
    def __init__(self, tag: Tag, metadata: CoreMetadata) -> None:
        super().__init__(loader=TagLoader(tag))
        self._metadata = metadata

    def _field(self, tag: Tag, **slots: str | None) -> Tag | str:
        return tag.fillSlots(**slots) if all(slots.values()) else ""

    @renderer
    def requires_python(self, request: IRequest, tag: Tag) -> Tag | str:
        return self._field(tag, requires_python=self._metadata.requires_python)

    @renderer
    def license(self, request: IRequest, tag: Tag) -> Tag | str:
        return self._field(tag, license=self._metadata.license)

    @renderer
    def author(self, request: IRequest, tag: Tag) -> Tag | str:
        return self._field(tag, author=self._metadata.author)

    @renderer
    def requirements(self, request: IRequest, tag: Tag) -> Tag | str:
        return tag if self._metadata.requires_dist else ""

    @renderer
    def requirement(self, request: IRequest, tag: Tag):
        for line in self._metadata.requires_dist:
            yield tag.clone().fillSlots(requirement=line)

    @renderer
    def links(self, request: IRequest, tag: Tag) -> Tag | str:
        return tag if self._metadata.project_urls else ""

    @renderer
    def link(self, request: IRequest, tag: Tag):
        for label, url in self._metadata.project_urls:
            href = safe_href(url)
            shown = tags.a(url, href=href, rel="nofollow noopener noreferrer") if href else url
            yield tag.clone().fillSlots(label=label, url=shown)


class ProjectElement(Element):
    loader = template("project.xml")

    def __init__(self, shown: Shown) -> None:
        super().__init__()
        self._shown = shown

    @renderer
    def project(self, request: IRequest, tag: Tag) -> Tag:
        shown = self._shown
        count = len(shown.versions)
        return tag.fillSlots(
            name=shown.name,
            kind="private" if shown.private else "upstream",
            source=shown.source,
            install=shown.install,
            count=f"{count} version{'s' if count != 1 else ''}, newest first" if count else "No files.",
        )

    @renderer
    def status(self, request: IRequest, tag: Tag) -> Tag | str:
        """PEP 792: archived, deprecated or quarantined, and why, as the index says."""
        shown = self._shown
        if not shown.status or shown.status == "active":
            return ""
        said = f"This project is {shown.status}"
        return tag(said + (f": {shown.status_reason}" if shown.status_reason else "."),
                   class_=f"status status-{shown.status if shown.status in ('archived', 'deprecated', 'quarantined') else 'other'}")

    @renderer
    def closed(self, request: IRequest, tag: Tag) -> Tag | str:
        return tag.fillSlots(reason=self._shown.closed) if self._shown.closed else ""

    @renderer
    def withheld(self, request: IRequest, tag: Tag) -> Tag | str:
        """Files the supply-chain guard holds back or blocks here, each with its reason."""
        if not self._shown.withheld:
            return ""
        rows = tags.tbody()
        for filename, status, reason in self._shown.withheld:
            rows(tags.tr(tags.td(filename, class_="filename"),
                         _cell("Answer", "blocked" if status == 403 else "held back"),
                         _cell("Why", reason)))
        return tag.fillSlots(rows=rows)

    @renderer
    def summary(self, request: IRequest, tag: Tag) -> Tag | str:
        summary = self._shown.metadata.summary if self._shown.metadata else None
        return tag.fillSlots(summary=summary) if summary else ""

    @renderer
    def about(self, request: IRequest, tag: Tag) -> Element | str:
        metadata = self._shown.metadata
        if metadata is not None and not (metadata.requires_python or metadata.license or metadata.author
                                         or metadata.requires_dist or metadata.project_urls):
            return ""
        if metadata is None:
            return tags.section(tags.h2("About"), tags.p(
                "No metadata of this project is held here yet: it shows once a wheel (or its "
                "metadata) has been fetched through this server.", class_="note"), class_="about")
        return _AboutElement(tag.fillSlots(version=self._shown.metadata_version or ""), self._shown.metadata)

    @renderer
    def version(self, request: IRequest, tag: Tag):
        for group in self._shown.versions[:self._shown.in_full]:
            yield _VersionElement(tag.clone().fillSlots(version=group.version), group, self._shown.name,
                                  self._shown.csrf)

    @renderer
    def older(self, request: IRequest, tag: Tag) -> Tag | str:
        older = self._shown.versions[self._shown.in_full:]
        if not older:
            return ""
        listed: list[Tag | str] = []
        for group in older:
            listed += [", " if listed else "", group.version]
            if group.yanked:
                listed += [" ", tags.span("yanked", class_="badge yanked")]
        return tag.fillSlots(versions=listed, simple=f"../../simple/{self._shown.name}/")

    @renderer
    def description(self, request: IRequest, tag: Tag) -> Tag | str:
        if self._shown.description is None:
            return ""
        return tag.fillSlots(version=self._shown.metadata_version or "", description=self._shown.description)


class Projects(Resource):
    """``/project/``: nothing itself; ``/project/<name>/`` below it."""

    def __init__(self, components: Components) -> None:
        super().__init__()
        self._components = components

    def getChild(self, path: bytes, request: Request) -> IResource:
        if path == b"":
            return html_error(404, "no such page; search for a project instead")
        return ProjectPage(path, self._components)

    def render_GET(self, request: Request) -> int:
        return html_error(404, "no such page; search for a project instead").render(request)


class ProjectPage(Resource):
    """``/project/<name>/``: answered from the pages and what metadata is at hand."""

    isLeaf = True

    def __init__(self, segment: bytes, components: Components) -> None:
        super().__init__()
        self._segment = segment
        self._components = components

    def render_GET(self, request: Request) -> int | bytes:
        normalised = project_name(request, self._segment, html_error)
        if not isinstance(normalised, str):
            return normalised
        return render_async(request, self._answer(request, normalised))

    def render_POST(self, request: Request) -> int | bytes:
        """A change from the page's forms: yank or unyank a version of a private project."""
        name = self._segment.decode("utf-8", "replace")
        if not simple.NORMALISED_NAME.match(name) or request.postpath != [b""]:
            return html_error(404, "no such page").render(request)
        return render_async(request, change_release(self._components, request, name))

    async def _answer(self, request: Request, name: str) -> IResource | bytes:
        pages = self._components.pages
        cached = pages.fresh(name)
        if cached is None:
            try:
                cached = await pages.project(name)
            except ProjectNotFound:
                return html_error(404, f"no project named {name!r}")
            except UpstreamError as e:
                cached = await pages.cached(name)
                if cached is None:
                    return html_error(e.status, f"upstream failed: {e}")
        shown = await self._shown(request, name, cached)
        team = self._components.team
        account = logged_in(request)
        if team is not None and account is not None and shown.private and team.rules.may_manage(account, name):
            shown = replace(shown, csrf=team.tokens.csrf(account))
        return await render_page(request, name, ProjectElement(shown), logins=self._components.logins)

    async def _shown(self, request: Request, name: str, cached: CachedPage) -> Shown:
        files = cached.page.files
        # Reading 10,000 file names' versions takes a quarter of a second: not on the reactor.
        versions = await self._components.to_thread(newest_first, files) if len(files) > INLINE_FILES \
            else newest_first(files)
        metadata, version = await self._metadata(versions)
        description = None
        if metadata is not None and metadata.description and metadata.description.strip():
            description = await self._components.to_thread(
                description_tag, metadata.description, metadata.description_content_type
            )
        private = cached.source == "private"
        return Shown(
            name=name,
            private=private,
            source="From this server's private store." if private else f"From the upstream {cached.source}",
            install=f"pip install --index-url {site_url(request)}simple/ {name}",
            versions=versions,
            metadata=metadata,
            metadata_version=version,
            description=description,
            status=cached.page.status,
            status_reason=cached.page.status_reason,
            closed=cached.closed,
            withheld=tuple(
                (filename, held.status, held.reason) for filename, held in sorted(cached.withheld.items())
            ),
        )

    async def _metadata(self, versions: list[VersionGroup]) -> tuple[CoreMetadata | None, str | None]:
        """The newest version's metadata we hold (no download, no upstream request)."""
        files = self._components.files
        tried = 0
        for group in versions:
            for entry in group.files:
                if tried >= METADATA_LOOKUPS:
                    return None, None
                tried += 1
                data = await files.metadata_at_hand(cache_key(entry))
                if data is None:
                    continue
                try:
                    return read_core_metadata(data), group.version
                except (ValueError, TypeError) as e:
                    log.warn("unreadable metadata of {filename}: {error}", filename=entry.filename, error=str(e))
        return None, None
