"""The Warmer: one run, resolving requirements in waves and fetching each chosen file once."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version
from twisted.internet import defer
from twisted.python.failure import Failure

from ...simple import FileEntry, ProjectPage
from .choose import (
    MetadataError,
    Need,
    Selection,
    dependencies,
    metadata_from_wheel,
    plan_metadata,
    read_requires_dist,
    select,
    why_nothing_fits,
)
from .client import IndexClient, ProjectNotFound, TransferError, WarmError, expected_hash
from .report import Report, Reporter
from .targets import Target

T = TypeVar("T")


@dataclass(eq=False)
class _Release:
    """A chosen version, how its dependencies are to be read, and what is known of them."""

    selection: Selection
    plan: tuple[str, FileEntry] | None
    extras: set[str] = field(default_factory=set)
    requires: tuple[Requirement, ...] | None = None
    looked_up: bool = False


class Warmer:
    """One run. Resolution goes in waves (pages, then choices, then metadata), so its
    choices do not depend on the network's timing; file downloads start as soon as a
    version is chosen and run alongside."""

    def __init__(
        self,
        client: IndexClient,
        target: Target,
        reporter: Reporter,
        *,
        follow_deps: bool = True,
        pre: bool = False,
        constraints: Mapping[str, SpecifierSet] | None = None,
    ) -> None:
        self._client = client
        self._target = target
        self._reporter = reporter
        self._follow_deps = follow_deps
        self._pre = pre
        self._constraints = dict(constraints or {})
        self._environments = target.environments()
        self._pages: dict[str, ProjectPage] = {}
        self._releases: dict[str, dict[Version, _Release]] = {}
        self._downloads: set[defer.Deferred[Any]] = set()
        self._seen_urls: set[str] = set()
        self.report = Report()

    async def run(self, needs: Sequence[Need]) -> Report:
        try:
            wave = list(needs)
            while wave:
                await self._load_pages(wave)
                todo = self._choose(wave)
                wave = await self._follow(todo) if self._follow_deps else []
            await _gather(list(self._downloads))
        except BaseException:
            for download in list(self._downloads):
                download.cancel()
            await defer.DeferredList(list(self._downloads), consumeErrors=True)
            raise
        return self.report

    async def _load_pages(self, wave: Sequence[Need]) -> None:
        origins: dict[str, str] = {}
        for need in wave:
            if need.name not in self._pages:
                origins.setdefault(need.name, need.origin)
        pages = await _gather(self._page(name, origin) for name, origin in origins.items())
        self._pages.update(zip(origins, pages, strict=True))

    async def _page(self, name: str, origin: str) -> ProjectPage:
        try:
            return await self._client.project(name)
        except ProjectNotFound:
            # Before any page was found, a wrong --index is as likely as a wrong name.
            hint = "" if self._pages else f" (is {self._client.url} a Simple API root?)"
            raise WarmError(
                f"unknown project {name!r}: the index has no page for it (404){hint}; "
                f"required by {origin}"
            ) from None

    def _choose(self, wave: Sequence[Need]) -> list[tuple[_Release, frozenset[str]]]:
        todo: dict[int, tuple[_Release, set[str]]] = {}
        for need in wave:
            specifier = need.specifier & self._constraints.get(need.name, SpecifierSet())
            releases = self._releases.setdefault(need.name, {})
            fitting = [v for v in releases if specifier.contains(v, prereleases=True)]
            if fitting:
                release = releases[max(fitting)]
                extras = set(need.extras) - release.extras
            else:
                page = self._pages[need.name]
                selection = select(page, specifier, self._target, self._pre)
                if selection is None:
                    wanted = f"{need.name}{specifier}" if str(specifier) else need.name
                    reason = why_nothing_fits(page, specifier, self._target)
                    self._fail(f"{wanted} (required by {need.origin}): {reason}")
                    continue
                plan = plan_metadata(page, selection) if self._follow_deps else None
                release = releases[selection.version] = _Release(selection, plan)
                self._start(release, need)
                extras = {""} | set(need.extras)
            release.extras |= extras
            if extras:
                todo.setdefault(id(release), (release, set()))[1].update(extras)
        return [(release, frozenset(extras)) for release, extras in todo.values()]

    def _start(self, release: _Release, need: Need) -> None:
        selection = release.selection
        self.report.releases.append(selection.label)
        if selection.yanked is not None:
            reason = f" ({selection.yanked})" if selection.yanked else ""
            self._reporter.warn(
                f"{selection.label} is yanked{reason}; fetching it because {need.origin} pins it"
            )
        fallback = release.plan[1] if release.plan and release.plan[0] == "wheel" else None
        for entry in selection.files:
            if entry is not fallback:  # that one is fetched when its METADATA is wanted
                self._fetch(entry)

    def _fetch(self, entry: FileEntry, keep: bool = False) -> defer.Deferred[IO[bytes] | None]:
        if entry.url in self._seen_urls:
            return defer.succeed(None)
        self._seen_urls.add(entry.url)
        self._reporter.queued()
        download = defer.Deferred.fromCoroutine(self._download(entry, keep))
        self._downloads.add(download)

        def forget(result: object) -> object:
            self._downloads.discard(download)
            return result

        return download.addBoth(forget)

    async def _download(self, entry: FileEntry, keep: bool) -> IO[bytes] | None:
        try:
            fetched = await self._client.download(
                entry, keep=keep, progress=self._reporter.received
            )
        except TransferError as e:
            self._fail(f"{entry.filename}: {e}")
            return None
        finally:
            self._reporter.finished()
        self.report.files += 1
        self.report.bytes += fetched.size
        self.report.hits += fetched.cache == "HIT"
        self.report.misses += fetched.cache == "MISS"
        self.report.unverified += not expected_hash(entry)
        return fetched.body

    async def _follow(self, todo: Sequence[tuple[_Release, frozenset[str]]]) -> list[Need]:
        await _gather(self._look_up(release) for release, _ in todo if not release.looked_up)
        wave = []
        for release, extras in todo:
            if release.requires is None:
                continue
            label = release.selection.label
            chosen, problems = dependencies(release.requires, extras, self._environments)
            for problem in problems:
                self._reporter.warn(f"{label}: {problem}")
            for requirement in chosen:
                if requirement.url:
                    self._reporter.warn(
                        f"{label} wants {requirement.name} from a URL: not followed"
                    )
                    continue
                wave.append(
                    Need(
                        canonicalize_name(requirement.name),
                        requirement.specifier,
                        frozenset(canonicalize_name(e) for e in requirement.extras),
                        label,
                    )
                )
        return wave

    async def _look_up(self, release: _Release) -> None:
        """Learn a release's dependencies, the cheapest way its files allow."""
        release.looked_up = True
        label = release.selection.label
        if release.plan is None:
            self._sdist_only(label)
            return
        kind, entry = release.plan
        if kind == "metadata":
            try:
                data = await self._client.metadata(entry)
            except TransferError as e:
                self._fail(f"{entry.filename}.metadata: {e} (dependencies of {label} not followed)")
                return
        else:
            body = await self._fetch(entry, keep=True)
            if body is None:
                return  # the failed download is already listed
            with body:
                try:
                    data = metadata_from_wheel(body, release.selection.name)
                except MetadataError as e:
                    self._fail(f"{entry.filename}: {e} (dependencies of {label} not followed)")
                    return
        requires, invalid = read_requires_dist(data, sdist=not entry.filename.endswith(".whl"))
        for text in invalid:
            self._reporter.warn(f"{label}: ignoring invalid Requires-Dist {text!r}")
        if requires is None:
            self._sdist_only(label)
        release.requires = requires

    def _sdist_only(self, label: str) -> None:
        self.report.sdist_only.append(label)
        self._reporter.warn(
            f"{label} has only an sdist here: its dependencies are not followed "
            "(that needs a build)"
        )

    def _fail(self, message: str) -> None:
        self.report.failures.append(message)


async def _gather(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """Run all, wait for all; then raise the first failure in order (deterministic messages)."""
    deferreds = [defer.Deferred.fromCoroutine(_awaiting(a)) for a in awaitables]
    results = await defer.DeferredList(deferreds, consumeErrors=True)
    for ok, value in results:
        if not ok:
            assert isinstance(value, Failure)
            value.raiseException()
    return [value for _, value in results]


async def _awaiting(awaitable: Awaitable[T]) -> T:
    return await awaitable
