"""``GET /+search?q=TEXT``: project names containing TEXT — private ones, cached ones, the upstream's."""

# The upstream's names come from the project list on disk: its names file (one normalised
# name a line, ``names.txt``) is opened as ``NameIndex.of_file`` (an mmap, in a thread) once
# per version of the list, and searched with the same ``find`` loop: no 750,000-name tuple
# in memory.

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.utils import canonicalize_name
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import Request
from twisted.web.template import Element, Tag, renderer

from ...cache import ProjectList
from ...upstream import UpstreamError
from ..components import Components
from ..http import render_async
from .names import NameIndex, rank
from .page import render_page, template

log = Logger()

# A page of results is for reading: past this, a longer query is the way on.
LIMIT = 300
# Longer lists are searched in a thread, so a big upstream list never holds up the reactor.
INLINE_NAMES = 20_000
_QUERY = re.compile(r"^[A-Za-z0-9._-]{1,200}\Z")
KINDS = {"private": "private", "cached": "cached", "upstream": "upstream"}


@dataclass(frozen=True)
class Results:
    query: str
    found: tuple[tuple[str, str], ...]  # (name, kind)
    note: str = ""


class SearchElement(Element):
    loader = template("search.xml")

    def __init__(self, results: Results) -> None:
        super().__init__()
        self._results = results

    @renderer
    def search(self, request: IRequest, tag: Tag) -> Tag:
        results = self._results
        if not results.query:
            heading, summary = "Search projects", "Type part of a project's name."
        else:
            heading = f"Projects matching “{results.query}”"
            count = len(results.found)
            summary = ("No project name contains it." if not count else
                       f"{count} project{'s' if count != 1 else ''}" +
                       (f" (the first {LIMIT}; type more to narrow it down)" if count >= LIMIT else ""))
        return tag.fillSlots(heading=heading, summary=summary)

    @renderer
    def note(self, request: IRequest, tag: Tag) -> Tag | str:
        return tag.fillSlots(note=self._results.note) if self._results.note else ""

    @renderer
    def result(self, request: IRequest, tag: Tag):
        for name, kind in self._results.found:
            yield tag.clone().fillSlots(href=f"project/{name}/", name=name, kind=kind, label=KINDS[kind])


class Search(Resource):
    """``/+search``: a GET form; nothing is changed, nothing is fetched but the project list."""

    isLeaf = True

    def __init__(self, components: Components) -> None:
        super().__init__()
        self._components = components
        self._index: tuple[ProjectList, NameIndex] | None = None

    def render_GET(self, request: Request) -> int:
        raw = request.args.get(b"q", [b""])[0].decode("utf-8", "replace").strip()
        return render_async(request, self._answer(request, raw))

    async def _answer(self, request: Request, raw: str) -> bytes:
        results = await self.find(raw)
        return await render_page(request, f"Search: {raw[:60]}" if raw else "Search",
                                 SearchElement(results), query=raw, logins=self._components.logins)

    async def find(self, raw: str) -> Results:
        if not raw:
            return Results("", ())
        if not _QUERY.match(raw):
            return Results(raw, (), "Project names are made of letters, digits, “.”, “-” and “_”.")
        needle = canonicalize_name(raw).strip("-") or "-"
        pages = self._components.pages
        found: list[tuple[str, str]] = [(n, "private") for n in rank(pages.private_names(), needle)]
        seen = {n for n, _ in found}
        found += [(n, "cached") for n in rank(await pages.held_names(), needle) if n not in seen][:LIMIT]
        seen.update(n for n, _ in found)
        note = ""
        if len(found) < LIMIT:
            try:
                listing = await self._components.project_list.project_list()
            except UpstreamError as e:
                note = f"The upstream's project list could not be read ({e}); only what is held here is listed."
            else:
                found += [(n, "upstream") for n in await self._search(listing, needle, LIMIT - len(found),
                                                                       frozenset(seen))]
        return Results(raw, tuple(found[:LIMIT]), note)

    async def _search(self, listing: ProjectList, needle: str, limit: int, skip: frozenset[str]) -> list[str]:
        # Opened once per version of the list (a new ProjectList each time it is rendered).
        if self._index is None or self._index[0] is not listing:
            self._index = (listing, await self._components.to_thread(NameIndex.of_file, listing.names))
        index = self._index[1]
        if listing.count > INLINE_NAMES:
            return await self._components.to_thread(index.search, needle, limit, skip)
        return index.search(needle, limit, skip)
