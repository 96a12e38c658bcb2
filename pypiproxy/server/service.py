"""makeService: config -> components -> listening endpoints."""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

from twisted.application import service, strports
from twisted.internet import threads
from twisted.internet.error import CannotListenError
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from twisted.web.iweb import IAgent
from twisted.web.server import Site

from ..cache import FileCache, FileStore, LRUBudget, MetadataCache, PageCache, ProjectListCache
from ..config import Config
from ..guard import Clearance, Guard, GuardedFiles, GuardedPages
from ..private import PrivateFiles, PrivatePages, PrivateStore, Team, UploadRules, in_namespace, upstream_serves
from ..stats import Stats
from ..upstream import ConnectGuard, UpstreamClient
from ..web import Components, Root, SiteRequest, TeamActions, TokenService, Upload, site_for
from ..interfaces import ToThread
from .options import Options

__all__ = ["Options", "build_site", "makeService"]

log = Logger()


class ProxyService(service.MultiService):
    """Owns the components' lifetimes: crash leftovers cleaned at start, pool closed at stop."""

    def __init__(
        self, config: Config, store: FileStore, client: UpstreamClient | None, budget: LRUBudget | None,
        to_thread: ToThread = threads.deferToThread,
    ) -> None:
        super().__init__()
        self._config = config
        self._store = store
        self._client = client
        self._budget = budget
        self._to_thread = to_thread

    def privilegedStartService(self) -> None:
        # Where the listening services bind: Twisted would end with a traceback for a port in
        # use or refused; a server says which address, and why, in one line and exits.
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            log.error("cannot listen on {address}: {reason}", address=f"{e.interface or '*'}:{e.port}",
                      reason=e.socketError)
            raise SystemExit(1) from None

    def startService(self) -> None:
        for folder in self._store.clean_leftovers():
            log.info("removed leftover temporary files {folder}", folder=str(folder))
        if self._budget is not None:
            self._to_thread(self._budget.scan).addCallback(self._budget.load).addErrback(
                lambda f: log.failure("scanning the cache for --max-cache-size failed", f)
            )
        log.info(
            "pypiproxy serving {cache_dir} from upstreams {upstreams}",
            cache_dir=str(self._config.cache_dir),
            upstreams=[u.url for u in self._config.upstreams] or "none",
        )
        super().startService()

    def stopService(self):
        if self._budget is not None:
            self._budget.stop()
        d = super().stopService()
        if self._client is not None:
            d.addCallback(lambda _: self._client.close())
        return d


def build_site(
    config: Config,
    reactor: Any,
    upstream_agent: IAgent | None = None,
    to_thread: ToThread = threads.deferToThread,
    connect_guard: ConnectGuard | None = None,
) -> tuple[Site, FileStore, UpstreamClient | None, LRUBudget | None]:
    """Wire the components together; tests call this to get a site without listening (and
    may give an agent that answers upstream requests from a resource tree in memory, or a
    guard that sees addresses as they would be elsewhere)."""
    stats = Stats()
    client = None
    if config.upstreams and not config.offline:
        client = UpstreamClient(
            reactor, config.upstreams, config.upstream_timeout, config.upstream_ca, agent=upstream_agent,
            guard=connect_guard or ConnectGuard(config.upstreams),
            max_page_size=config.max_page_size,
        )
    cache_dir = config.cache_dir
    store = FileStore(cache_dir)
    # The private tier answers first: a private name never shows the upstream's files. Behind
    # it the guard sees every upstream page and file (private ones are never held or blocked).
    private = PrivateStore(cache_dir / "private", store.temporary)
    private.repair()
    team = Team.open(cache_dir, run=to_thread)
    guard = Guard(reactor, config.min_age, config.min_age_exempt, config.block, config.allow_only)
    clearance = Clearance(guard)
    log.info("supply-chain guard: {rules}", rules=guard.describe())
    page_cache = PageCache(
        cache_dir / "pages", client, config.upstreams, config.index_ttl, reactor, stats, store, to_thread
    )
    pages = PrivatePages(
        GuardedPages(page_cache, guard, clearance, reactor, stats, to_thread), private, reactor, config.private_namespaces
    )
    # Whether an upstream serves a name is asked of the upstream itself, unguarded: a name the
    # guard hides (--allow-only) is still somebody's public project.
    rules = UploadRules(private, team.owners, team.claims, config.private_namespaces, upstream_serves(page_cache))
    project_list = ProjectListCache(
        cache_dir / "pages" / "+simple",
        client,
        config.upstreams,
        config.index_ttl,
        reactor,
        stats,
        store,
        to_thread,
        extra_names=private.names,
        listed=_listed(guard, config.private_namespaces),
    )
    metadata = MetadataCache(store, stats, to_thread)
    budget = None
    if config.max_cache_size is not None:
        budget = LRUBudget(store, config.max_cache_size, stats, reactor, on_evict=metadata.forget)
    file_cache = FileCache(store, client, stats, metadata, to_thread, reactor, budget)
    files = PrivateFiles(GuardedFiles(file_cache, guard, clearance), private)
    tokens = TokenService(team.tokens, team.audit, cache_dir / "team" / "csrf.key", reactor, to_thread)
    root = Root(
        Components(
            pages=pages, files=files, stats=stats, ttl=config.index_ttl, clock=reactor, to_thread=to_thread,
            upstreams=tuple(u.url for u in config.upstreams), census=store.census, guard_rules=guard.lines,
            team=TeamActions(private, rules, team.audit, tokens, logins=config.htpasswd is not None),
            project_list=project_list,
            cache_dir=cache_dir,
            accel_redirect=config.accel_redirect,
        )
    )
    root.putChild(b"legacy", Upload(private, rules, team.audit, stats, to_thread))
    site = site_for(
        root,
        config,
        reactor,
        to_thread,
        team=team,
        password_thread=_password_pool(reactor) if config.htpasswd else None,
        requestFactory=SiteRequest.factory(config.max_upload_size, store.temporary),
        # A file of its own is much cheaper than a logger event per request (and is what
        # log rotation and analysers expect); without it the lines go to the server's log.
        logPath=str(config.access_log) if config.access_log else None,
    )
    return site, store, client, budget


# bcrypt takes 100+ ms a check on purpose: two threads of its own, so that a flood of bad
# logins queues there rather than in the reactor's pool, where disk writes and page parsing run.
PASSWORD_THREADS = 2


def _password_pool(reactor: Any) -> ToThread:
    """A small thread pool for password checks, stopped with the reactor."""
    pool = ThreadPool(minthreads=0, maxthreads=PASSWORD_THREADS, name="bcrypt")
    pool.start()
    reactor.addSystemEventTrigger("during", "shutdown", pool.stop)
    return partial(threads.deferToThreadPool, reactor, pool)


def _listed(guard: Guard, namespaces: tuple[str, ...]):
    """Which upstream names the project list shows: those --allow-only allows, none in a
    --private-namespace (those are private-only)."""

    def listed():
        allow = guard.rules().allow
        if allow is None and not namespaces:
            return None, None
        return (allow, namespaces), lambda name: (allow is None or name in allow) and not in_namespace(namespaces, name)

    return listed


# Seconds a thread holds the GIL before another may take it (the process's, set by makeService).
SWITCH_INTERVAL = 0.0005


def makeService(options: Options, reactor: Any = None) -> service.IService:
    """The twistd entry point: the site on each ``--listen`` endpoint, under one service."""
    if reactor is None:
        from twisted.internet import reactor  # twistd installs the reactor before calling us
    config: Config = options.config
    # Big pages and the project list are worked on in threads beside the reactor. At Python's
    # 5 ms switch interval the reactor waits up to 5 ms for the GIL at each of the hand-overs
    # one answer needs: /+health stalled 277 and 374 ms while a 750,000-name list was
    # scanned, 41 and 20 ms at 0.5 ms, the list no slower (benchmarks: --only list).
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        site, store, client, budget = build_site(config, reactor)
    except OSError as e:
        # The cache directory's layout could not be made (a file in the way, no permission):
        # one line and exit 2, as for a bad option, before anything listens.
        sys.stderr.write(f"pypiproxy: error: cannot use {e.filename or config.cache_dir}: {e.strerror or e}\n")
        sys.stderr.flush()
        raise SystemExit(2) from None
    top = ProxyService(config, store, client, budget)
    for description in config.listen:
        strports.service(description, site).setServiceParent(top)
    return top
