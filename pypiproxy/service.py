"""makeService: config -> components -> listening endpoints."""

from __future__ import annotations

from twisted.application import service, strports
from twisted.internet import threads
from twisted.logger import Logger
from twisted.web.server import Site

from .auth import site_for
from .eviction import LRUBudget
from .files import FileCache, FileStore
from .options import Config, Options
from .pages import PageCache
from .private import PrivateFiles, PrivatePages, PrivateStore, Upload, UploadRequest
from .stats import Stats
from .upstream import UpstreamClient
from .web import Components, Root

__all__ = ["Options", "makeService"]

log = Logger()


class ProxyService(service.MultiService):
    """Owns the components' lifetimes: crash leftovers cleaned at start, pool closed at stop."""

    def __init__(
        self, config: Config, store: FileStore, client: UpstreamClient | None, budget: LRUBudget | None
    ) -> None:
        super().__init__()
        self._config = config
        self._store = store
        self._client = client
        self._budget = budget

    def startService(self) -> None:
        for folder in self._store.clean_leftovers():
            log.info("removed leftover temporary files {folder}", folder=str(folder))
        if self._budget is not None:
            threads.deferToThread(self._budget.scan).addCallback(self._budget.load).addErrback(
                lambda f: log.failure("scanning the cache for --max-cache-size failed", f)
            )
        log.info(
            "pypiproxy serving {cache_dir} from upstreams {upstreams}",
            cache_dir=str(self._config.cache_dir),
            upstreams=[u.url for u in self._config.upstreams] or "none",
        )
        super().startService()

    def stopService(self):
        d = super().stopService()
        if self._client is not None:
            d.addCallback(lambda _: self._client.close())
        return d


def build_site(
    config: Config, reactor, upstream_agent=None
) -> tuple[Site, FileStore, UpstreamClient | None, LRUBudget | None]:
    """Wire the components together; tests call this to get a site without listening."""
    stats = Stats()
    client = None
    if config.upstreams and not config.offline:
        client = UpstreamClient(
            reactor, config.upstreams, config.upstream_timeout, config.upstream_ca, agent=upstream_agent
        )
    cache_dir = config.cache_dir
    store = FileStore(cache_dir)
    # The private tier answers first: a private name never shows the upstream's files.
    private = PrivateStore(cache_dir / "private", store.temporary)
    private.repair()
    pages = PrivatePages(
        PageCache(cache_dir / "pages", client, config.upstreams, config.index_ttl, reactor, stats, store),
        private,
        reactor,
    )
    budget = None
    if config.max_cache_size is not None:
        budget = LRUBudget(store, config.max_cache_size, stats, reactor)
    files = PrivateFiles(FileCache(store, client, stats, budget), private)
    root = Root(Components(pages=pages, files=files, stats=stats, ttl=config.index_ttl))
    root.putChild(b"legacy", Upload(private, stats))
    site = site_for(
        root,
        config,
        reactor,
        requestFactory=UploadRequest.factory(config.max_upload_size, store.temporary),
        # A file of its own is much cheaper than a logger event per request (and is what
        # log rotation and analysers expect); without it the lines go to the server's log.
        logPath=str(config.access_log) if config.access_log else None,
    )
    return site, store, client, budget


def makeService(options: Options) -> service.IService:
    from twisted.internet import reactor

    config: Config = options.config
    site, store, client, budget = build_site(config, reactor)
    top = ProxyService(config, store, client, budget)
    for description in config.listen:
        strports.service(description, site).setServiceParent(top)
    return top
