"""Who may upload what: the account's rights, the project's owners, claims and private namespaces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable, Iterable

from packaging.utils import canonicalize_name

from ..cache import ProjectNotFound
from ..interfaces import IProjectPages
from ..upstream import UpstreamError
from .ownership import Claims, Owners
from .store import PrivateStore
from .validation import Refused


class Forbidden(Refused):
    """An upload this account may not make; the reason says who may, or what to run."""

    code = 403


class Unavailable(Refused):
    """The upstream could not be asked whether it serves a name: refuse rather than guess."""

    code = 503


@dataclass(frozen=True)
class Account:
    """Who a request is, once logged in: a user, or a user's token cut down to its scope."""

    name: str
    admin: bool = False
    uploader: bool = False  # in the upload group (every user, without --groups)
    read_only: bool = False  # a read-only token
    projects: tuple[str, ...] = ()  # a token's projects; empty: no limit
    token_id: str | None = None

    @property
    def may_upload(self) -> bool:
        return not self.read_only and (self.admin or self.uploader)

    def __str__(self) -> str:
        return self.name if self.token_id is None else f"{self.name} (token {self.token_id})"

    def upload_refusal(self) -> str | None:
        """Why this account may not upload at all, or None."""
        if self.read_only:
            return f"the token of user {self.name!r} is read-only: it may not upload"
        if not self.may_upload:
            return f"user {self.name!r} may not upload (not in the upload or admin group)"
        return None


def in_namespace(namespaces: Iterable[str], project: str) -> bool:
    """PEP 752: ``NAME`` and every ``NAME-*`` belong to the namespace ``NAME``."""
    return any(project == n or project.startswith(n + "-") for n in namespaces)


class UploadRules:
    """The order of the checks: the account's right, its token's scope, then the project's
    owners; a name no one owns yet must be free of upstreams (or claimed, or namespaced)."""

    def __init__(
        self,
        store: PrivateStore,
        owners: Owners,
        claims: Claims,
        namespaces: Iterable[str],
        upstream_serves: Callable[[str], Awaitable[bool]],
    ) -> None:
        self._store = store
        self.owners = owners
        self.claims = claims
        self.namespaces = tuple(canonicalize_name(n) for n in namespaces)
        self._upstream_serves = upstream_serves

    def private_only(self, project: str) -> bool:
        return in_namespace(self.namespaces, project)

    def may_manage(self, account: Account | None, project: str) -> bool:
        """Whether the account may yank and unyank the project's releases (its page's buttons):
        an admin, or an owner whose login is not a read-only token or one scoped elsewhere."""
        if account is None or account.read_only:
            return False
        if account.projects and project not in account.projects:
            return False
        return account.admin or (account.may_upload and account.name in self.owners.of(project))

    async def check(self, account: Account | None, project: str) -> None:
        """Raises Forbidden (403) or Unavailable (503); anonymous uploads (``None``, where
        they are allowed) may go to projects without owners only, and not to upstreams' names."""
        if account is None and self.owners.of(project):
            raise Forbidden(f"anonymous uploads may not go to project {project!r}: it has owners")
        if account is not None:
            refusal = account.upload_refusal()
            if refusal:
                raise Forbidden(refusal)
            if account.projects and project not in account.projects:
                raise Forbidden(
                    f"the token of user {account.name!r} may not upload to project {project!r} "
                    f"(its scope: {', '.join(account.projects)})"
                )
            owners = self.owners.of(project)
            if owners:
                if account.admin or account.name in owners:
                    return
                raise Forbidden(f"user {account.name!r} may not upload to project {project!r}")
            if self._store.known(project) and not account.admin:
                raise Forbidden(
                    f"project {project!r} has no owner yet: an admin must run "
                    f"'pypiproxy owner add {project} USER' first"
                )
        if self._store.known(project) or self.private_only(project) or self.claims.claimed(project):
            return
        if await self._upstream_serves(project):
            raise Forbidden(
                f"project {project!r} exists on an upstream index: a private upload would hide it "
                f"from every client, so an admin must run 'pypiproxy claim {project}' first"
            )


def upstream_serves(pages: IProjectPages) -> Callable[[str], Awaitable[bool]]:
    """Whether the upstreams (the page cache, not the private tier) have a project."""

    async def serves(project: str) -> bool:
        try:
            await pages.project(project)
        except ProjectNotFound:
            return False
        except UpstreamError as e:
            raise Unavailable(f"cannot ask the upstream whether it serves {project!r}: {e}") from None
        return True

    return serves
