"""The root of the resource tree, mirroring the URL space; /+health, /+stats, /+metrics."""

from __future__ import annotations

from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from ..stats import Stats
from .components import Components
from .errors import not_found
from .files import Files
from .people import Landing, Login, Projects, Search, Static, Tokens
from .simple import ProjectList


class _Endpoint(Resource):
    """A resource with nothing below it: any longer path is a clean 404."""

    def getChild(self, path: bytes, request: Request) -> IResource:
        return not_found("no such page")


class Health(_Endpoint):
    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return b'{"status": "ok"}\n'


class StatsPage(_Endpoint):
    def __init__(self, stats: Stats, prometheus: bool) -> None:
        super().__init__()
        self._stats = stats
        self._prometheus = prometheus

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"cache-control", b"no-store")
        if self._prometheus:
            request.setHeader(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
            return self._stats.as_prometheus()
        request.setHeader(b"content-type", b"application/json")
        return self._stats.as_json()


class Root(Resource):
    def __init__(self, components: Components) -> None:
        super().__init__()
        self._stats = components.stats
        self.putChild(b"simple", ProjectList(components))
        self.putChild(b"files", Files(components))
        self.putChild(b"+health", Health())
        self.putChild(b"+stats", StatsPage(components.stats, prometheus=False))
        self.putChild(b"+metrics", StatsPage(components.stats, prometheus=True))
        # Pages for people.
        self._landing = Landing(components)
        self.putChild(b"project", Projects(components))
        self.putChild(b"+search", Search(components))
        self.putChild(b"+static", Static())
        if components.team is not None:
            self.putChild(b"+tokens", Tokens(components))
            self.putChild(b"+login", Login(components.team.logins))

    def getChildWithDefault(self, path: bytes, request: Request) -> IResource:
        self._stats.incr("requests")
        child = self.children.get(path)
        return child if child is not None else self.getChild(path, request)

    def getChild(self, path: bytes, request: Request) -> IResource:
        if path == b"":
            return self
        return not_found("no such page")

    def render_GET(self, request: Request) -> int | bytes:
        return self._landing.render(request)

    def render_POST(self, request: Request) -> int | bytes:
        # Uploads: twine and `uv publish` post to /legacy/ or to the root, as users configure.
        return (self.children.get(b"legacy") or not_found("no upload here")).render(request)
