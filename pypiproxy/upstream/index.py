"""Index pages from an upstream, fetched, checked and parsed: the one copy every caller uses."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

from twisted.internet import defer

from twisted.logger import Logger

from ..config import redact
from ..interfaces import ToThread
from ..simple import IndexFormatError, ProjectPage, parse_project, parse_project_list
from ..simple.checks import checked_names, checked_page
from .client import UpstreamClient, UpstreamError

log = Logger()


# Pages above this size are parsed in a thread: the reactor keeps answering meanwhile.
INLINE_PARSE_LIMIT = 32 * 1024

def _inline(function: Callable[..., Any], *args: Any) -> "defer.Deferred[Any]":
    return defer.maybeDeferred(function, *args)


class ProjectMissing(Exception):
    """The upstream has no such project (it answered 404 or 410)."""


class UpstreamStatus(UpstreamError):
    """The upstream answered with a status we cannot use; ``code`` is that status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class BadIndexPage(UpstreamError):
    """The upstream answered with something that is not a Simple API page."""


@dataclass(frozen=True)
class FetchedPage:
    """A project page as an upstream answered it; ``page`` is None when it answered 304."""

    page: ProjectPage | None
    url: str  # where it was found, after redirects
    etag: str | None
    last_modified: str | None


async def fetch_project(
    client: UpstreamClient,
    index_url: str,
    name: str,
    etag: str | None = None,
    last_modified: str | None = None,
    to_thread: ToThread = _inline,
) -> FetchedPage:
    """The page of a normalised project name on the index at ``index_url`` (conditionally,
    when validators are given), parsed in ``to_thread`` when it is big. Raises
    ProjectMissing, or an UpstreamError."""
    url = f"{index_url}{name}/"
    response, body = await client.get_page(url, etag=etag, last_modified=last_modified)
    if response.code in (404, 410):
        raise ProjectMissing(name)
    if response.code == 304 and (etag or last_modified):
        return FetchedPage(None, response.url, etag, last_modified)
    if response.code != 200:
        raise UpstreamStatus(f"{redact(url)} answered {response.code}", response.code)
    parse = to_thread if len(body) > INLINE_PARSE_LIMIT else _inline
    try:
        page, dropped = await parse(_parse_checked, body, response.header("Content-Type") or "", response.url, name)
    except IndexFormatError as e:
        raise BadIndexPage(f"{redact(url)}: {e}") from None
    if dropped:
        log.warn(
            "dropped {count} entries of the page {url}: {reasons}",
            count=sum(dropped.values()), url=redact(url), reasons=dict(dropped),
        )
    return FetchedPage(page, response.url, response.header("ETag"), response.header("Last-Modified"))


def _parse_checked(body: bytes, content_type: str, url: str, name: str) -> tuple[ProjectPage, Counter[str]]:
    """The page parsed and without the entries that may not be served, and what was dropped:
    both in the same thread, as checking each entry of a 10,000-file page costs about as much
    as parsing it (a 0.5 s stall of the reactor when it ran there)."""
    return checked_page(parse_project(body, content_type, url, name))


async def fetch_project_list(client: UpstreamClient, index_url: str) -> tuple[str, ...]:
    """The normalised names the index at ``index_url`` lists; raises an UpstreamError."""
    response, body = await client.get_page(index_url)
    if response.code != 200:
        raise UpstreamStatus(f"{redact(index_url)} answered {response.code}", response.code)
    try:
        listed = parse_project_list(body, response.header("Content-Type") or "")
    except IndexFormatError as e:
        raise BadIndexPage(f"{redact(index_url)}: {e}") from None
    names, dropped = checked_names(listed)
    if dropped:
        log.warn("dropped {count} names of the project list {url}: not PEP 508 names",
                 count=dropped, url=redact(index_url))
    return names
