"""The proxy built in this process by build_site: listening on a loopback port, or in memory."""

from __future__ import annotations

from pathlib import Path

from twisted.protocols.policies import WrappingFactory
from twisted.web.client import Agent, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers
from treq.client import HTTPClient

from pypiproxy.config import Config, parse_upstream
from pypiproxy.server import build_site

__all__ = ["InProcessProxy", "LoopbackProxy", "proxy_config", "start_proxy"]


def proxy_config(cache_dir: Path, upstreams: list[str], **overrides) -> Config:
    """The Config of a test's proxy: these upstreams, a short upstream timeout, then overrides."""
    settings = dict(
        listen=("tcp:0:interface=127.0.0.1",),
        upstreams=tuple(parse_upstream(u) for u in upstreams),
        cache_dir=cache_dir,
        upstream_timeout=3.0,
    )
    settings.update(overrides)
    return Config(**settings)


class InProcessProxy:
    """What build_site made, and an agent of its own to ask it with."""

    root_url: str

    def __init__(self, config: Config, built, agent) -> None:
        self.config = config
        self.site, self.store, self.upstream_client, self.budget = built  # budget: with --max-cache-size
        self.site.noisy = False
        if self.budget is not None:
            self.budget.load(self.budget.scan())
        self.http = agent
        self.treq = HTTPClient(agent)  # treq bound to this proxy (uploads, logins)

    @property
    def cache_dir(self) -> Path:
        return self.config.cache_dir

    @property
    def url(self) -> str:
        """The Simple API root clients are pointed at."""
        return self.root_url + "simple/"

    @property
    def stats(self):
        return self.site.resource._stats

    async def get(self, path: str, headers: dict[str, str] | None = None, method: str = "GET"):
        """(response, body) for a path below the root, as sent (no decoding, no redirects).

        Raises if the body is cut off, as a client would see a broken transfer.
        """
        sent = Headers({k: [v] for k, v in (headers or {}).items()})
        url = (self.root_url + path.lstrip("/")).encode()
        response = await self.http.request(method.encode(), url, sent)
        body = await readBody(response)
        return response, body


class LoopbackProxy(InProcessProxy):
    """The proxy listening on 127.0.0.1: for what needs a socket (timing, stalls, resets, load)."""

    def __init__(self, config: Config, built, reactor) -> None:
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        super().__init__(config, built, Agent(reactor, pool=self.pool))
        self.factory = WrappingFactory(self.site)  # it knows the open connections
        self.port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.root_url = f"http://127.0.0.1:{self.port.getHost().port}/"

    async def stop(self) -> None:
        await self.port.stopListening()
        for connection in list(self.factory.protocols):
            connection.transport.abortConnection()
        if self.upstream_client is not None:
            await self.upstream_client.close()
        await self.pool.closeCachedConnections()


def start_proxy(cache_dir: Path, upstreams: list[str], **overrides) -> LoopbackProxy:
    """build_site's site for this config, listening on a free loopback port."""
    from twisted.internet import reactor

    # A ConnectGuard that sees addresses as they would be elsewhere (tests of the SSRF guard).
    connect_guard = overrides.pop("connect_guard", None)
    config = proxy_config(cache_dir, upstreams, **overrides)
    extra = {"connect_guard": connect_guard} if connect_guard is not None else {}
    return LoopbackProxy(config, build_site(config, reactor, **extra), reactor)
