"""``GET /``: what this server is, and the settings that point each tool at it, copy-paste ready."""

from __future__ import annotations

from dataclasses import dataclass

from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import Request
from twisted.web.template import Element, Tag, renderer

from ..components import Components
from ..http import render_async
from .page import human_bytes, render_page, site_url, template

# How long a count of the cache's files is shown before it is counted again (a walk of
# every folder: in a thread, and not once per page view).
CENSUS_TTL = 60.0
@dataclass(frozen=True)
class Snippet:
    title: str
    where: str
    text: str


def install_snippets(root: str) -> list[Snippet]:
    """How pip, uv and poetry install from the server at ``root``."""
    index = root + "simple/"
    host = root.split("://", 1)[1].rstrip("/")
    # pip refuses plain http from any host it is not told to trust.
    trusted = f"trusted-host = {host}\n" if root.startswith("http:") else ""
    return [
        Snippet("pip.conf", "~/.config/pip/pip.conf, or /etc/pip.conf for everyone",
                f"[global]\nindex-url = {index}\n{trusted}"),
        Snippet("pip, once", "on the command line", f"pip install --index-url {index} PACKAGE"),
        Snippet("uv.toml", "~/.config/uv/uv.toml, or [[tool.uv.index]] in pyproject.toml",
                f'[[index]]\nname = "pypiproxy"\nurl = "{index}"\ndefault = true\n'),
        Snippet("poetry", "in the project, then poetry install",
                f"poetry source add --priority=primary pypiproxy {index}"),
    ]


def publish_snippets(root: str) -> list[Snippet]:
    """How twine, uv and poetry upload to the server at ``root``."""
    upload = root + "legacy/"
    return [
        Snippet(".pypirc", "~/.pypirc; then twine upload -r pypiproxy dist/*",
                f"[distutils]\nindex-servers = pypiproxy\n\n[pypiproxy]\nrepository = {upload}\n"
                "username = YOUR-USER-NAME\n"),
        Snippet("twine, once", "on the command line", f"twine upload --repository-url {upload} dist/*"),
        Snippet("uv publish", "on the command line", f"uv publish --publish-url {upload} dist/*"),
        Snippet("poetry publish", "once per machine, then in the project",
                f"poetry config repositories.pypiproxy {upload}\npoetry publish -r pypiproxy"),
    ]


class Census:
    """The cache's file count and bytes, counted in a thread at most every CENSUS_TTL."""

    def __init__(self, components: Components) -> None:
        self._components = components
        self._known: tuple[float, tuple[int, int]] | None = None

    async def current(self) -> tuple[int, int] | None:
        count = self._components.census
        if count is None:
            return None
        now = self._components.clock.seconds()
        if self._known is None or now - self._known[0] > CENSUS_TTL:
            self._known = (now, await self._components.to_thread(count))
        return self._known[1]


@dataclass(frozen=True)
class Facts:
    host: str
    upstreams: tuple[str, ...]
    private: int
    cached: tuple[int, int] | None
    hits: int
    misses: int
    guard_rules: tuple[str, ...]


class LandingElement(Element):
    loader = template("landing.xml")

    def __init__(self, facts: Facts, root: str) -> None:
        super().__init__()
        self._facts = facts
        self._root = root

    @renderer
    def landing(self, request: IRequest, tag: Tag) -> Tag:
        facts = self._facts
        cached = "not counted" if facts.cached is None else \
            f"{facts.cached[0]:,} files, {human_bytes(facts.cached[1])}"
        served = facts.hits + facts.misses
        ratio = (f"{100 * facts.hits / served:.0f}% ({facts.hits:,} of {served:,} files from the cache) "
                 "since the server started" if served else "no files served since the server started")
        return tag.fillSlots(host=facts.host, private=f"{facts.private:,}", cached=cached, ratio=ratio)

    @renderer
    def upstreams(self, request: IRequest, tag: Tag) -> Tag | str:
        return tag if self._facts.upstreams else "none: this server only serves what it holds"

    @renderer
    def upstream(self, request: IRequest, tag: Tag):
        for url in self._facts.upstreams:
            yield tag.clone().fillSlots(url=url)
            yield " "

    @renderer
    def guard(self, request: IRequest, tag: Tag) -> Tag | str:
        return tag if self._facts.guard_rules else ""

    @renderer
    def rule(self, request: IRequest, tag: Tag):
        for line in self._facts.guard_rules:
            yield tag.clone().fillSlots(rule=line)

    def _snippets(self, tag: Tag, snippets: list[Snippet]):
        for snippet in snippets:
            yield tag.clone().fillSlots(title=snippet.title, where=snippet.where, text=snippet.text)

    @renderer
    def install(self, request: IRequest, tag: Tag):
        return self._snippets(tag, install_snippets(self._root))

    @renderer
    def publish(self, request: IRequest, tag: Tag):
        return self._snippets(tag, publish_snippets(self._root))


class Landing(Resource):
    """``/``: the answer for people (the root resource hands its GET here)."""

    def __init__(self, components: Components) -> None:
        super().__init__()
        self._components = components
        self._census = Census(components)

    def render_GET(self, request: Request) -> int:
        return render_async(request, self._answer(request))

    async def _answer(self, request: Request) -> bytes:
        components = self._components
        root = site_url(request)
        facts = Facts(
            host=root.split("://", 1)[1].rstrip("/"),
            upstreams=components.upstreams,
            private=len(components.pages.private_names()),
            cached=await self._census.current(),
            hits=components.stats["cache_hits"],
            misses=components.stats["cache_misses"],
            guard_rules=tuple(components.guard_rules()),
        )
        return await render_page(request, "Home", LandingElement(facts, root), search_bar=False,
                                 logins=components.logins)
