"""The proxy's site and its fake upstreams wired together in memory with treq.testing: no sockets."""

from __future__ import annotations

import itertools
from pathlib import Path

from treq.testing import RequestTraversalAgent
from twisted.internet import defer, threads
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

from pypiproxy.server import build_site

from .fakeindex import FakeIndex
from .inprocess import InProcessProxy, proxy_config

__all__ = ["MemoryNetwork", "MemoryProxy"]

log = Logger()

# No socket: ports only tell the fake indexes (and an index from its "other host") apart.
FIRST_PORT = 50001
TICK = 0.001  # seconds between flushes of the in-memory connections
ANSWER_TIMEOUT = 30.0  # a request left unanswered fails rather than hanging the test


class _ByPort(Resource):
    """The fake indexes of a network, chosen by the port a request was sent to."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.roots: dict[int, IResource] = {}

    def render(self, request: Request):
        port = request.getHost().port
        if port not in self.roots:
            request.setResponseCode(502)
            return f"no in-memory index on port {port}\n".encode()
        return self.roots[port].render(request)


class _SiteAgent(RequestTraversalAgent):
    """treq.testing's agent, answering through the proxy's own Site (its access policy, its
    upload requests) rather than through a plain Site around the same resource tree."""

    def __init__(self, site: Site) -> None:
        super().__init__(site.resource)
        self._serverFactory = site  # the one attribute of treq.testing's we set


class MemoryProxy(InProcessProxy):
    """build_site's site asked over an in-memory connection; its upstreams are in memory too."""

    root_url = "http://proxy.test/"

    def __init__(self, config, built) -> None:
        super().__init__(config, built, _SiteAgent(built[0]))
        self.site.doStart()  # what listening would do (the access log is opened)

    async def get(self, path: str, headers: dict[str, str] | None = None, method: str = "GET"):
        from twisted.internet import reactor

        answer = defer.ensureDeferred(super().get(path, headers, method))
        return await answer.addTimeout(ANSWER_TIMEOUT, reactor)

    async def close(self) -> None:
        self.site.doStop()
        if self.upstream_client is not None:
            await self.upstream_client.close()


class MemoryNetwork:
    """Fake indexes and proxies that talk to each other in memory.

    Requests travel over treq.testing's in-memory connections (``RequestTraversalAgent``):
    from the test to a proxy's own Site, and from the proxies' upstream client to the fake
    indexes. Those connections move bytes only when flushed, so the network flushes them on
    every tick of the real reactor, which also runs the proxies' timers and disk threads.
    """

    def __init__(self, directory: Path) -> None:
        from twisted.internet import reactor

        self._reactor = reactor
        self._directory = directory
        self._names = itertools.count()
        self._ports = itertools.count(FIRST_PORT, 2)
        self._upstreams = _ByPort()
        self._upstream_agent = RequestTraversalAgent(self._upstreams)
        self.indexes: list[FakeIndex] = []
        self.proxies: list[MemoryProxy] = []
        self._broken: Failure | None = None
        self._wire = LoopingCall(self._flush)
        self._wire.clock = reactor
        self._wire.start(TICK, now=False)

    def index(self, **options) -> FakeIndex:
        """A FakeIndex (``FakeIndex(**options)``) on the next free in-memory port and the one after."""
        index = FakeIndex(**options)
        port = next(self._ports)
        self._upstreams.roots[port] = self._upstreams.roots[port + 1] = index.serve_in_memory(
            self._reactor, port, port + 1
        )
        self.indexes.append(index)
        return index

    def proxy(self, *upstreams: str, cache_dir: Path | None = None, to_thread=threads.deferToThread,
              **overrides) -> MemoryProxy:
        """A proxy of these upstream URLs (in-memory indexes' ``url``), configured as
        ``make_proxy``'s are; its cache in a folder of its own unless ``cache_dir`` is given;
        its work for threads given to ``to_thread``."""
        directory = cache_dir or self._directory / f"memory{next(self._names)}"
        config = proxy_config(directory, list(upstreams), **overrides)
        built = build_site(config, self._reactor, upstream_agent=self._upstream_agent, to_thread=to_thread)
        proxy = MemoryProxy(config, built)
        self.proxies.append(proxy)
        return proxy

    def _flush(self) -> None:
        try:
            for agent in (self._upstream_agent, *(proxy.http for proxy in self.proxies)):
                agent.flush()
        except Exception:
            # The wire stops; requests in flight time out and close() raises this.
            self._broken = Failure()
            log.failure("flushing an in-memory connection failed", self._broken)
            self._wire.stop()

    async def close(self) -> None:
        """Stop the proxies and the indexes; raise what broke the wire, if anything."""
        for proxy in self.proxies:
            await proxy.close()
        for index in self.indexes:
            await index.stop()
        if self._wire.running:
            self._wire.stop()
        if self._broken is not None:
            self._broken.raiseException()
