"""``/+tokens`` for people: a user's own tokens listed, created (shown once) and revoked, as a page.

The JSON API and the token service are the private tier's (``web/tokens.py``); a browser
(asking for ``text/html``) gets this page instead, and its forms POST back here with the
login's CSRF token. Only a password login manages tokens, as the service says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from packaging.utils import canonicalize_name
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from twisted.web.server import Request
from twisted.web.template import Element, Tag, renderer, tags

from ...config import parse_duration
from ...private import Account, NoSuchToken, Token
from ..components import Components
from ..http import render_async
from ..tokens import TokensPage
from .page import cell as _cell, form_fields, html_error, logged_in, one, render_page, see_other, template

_NAMES = re.compile(r"[\s,]+")


def wants_html(request: IRequest) -> bool:
    return b"text/html" in (request.getHeader(b"accept") or b"")


def _when(moment: float | None, never: str = "never") -> str:
    if moment is None:
        return never
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Listing:
    user: str
    csrf: str
    tokens: tuple[Token, ...]
    created: tuple[Token, str] | None = None  # the token just made, and its secret


class TokensElement(Element):
    loader = template("tokens.xml")

    def __init__(self, listing: Listing) -> None:
        super().__init__()
        self._listing = listing

    @renderer
    def tokens(self, request: IRequest, tag: Tag) -> Tag:
        return tag.fillSlots(user=self._listing.user, csrf=self._listing.csrf)

    @renderer
    def created(self, request: IRequest, tag: Tag) -> Tag | str:
        if self._listing.created is None:
            return ""
        token, secret = self._listing.created
        return tag.fillSlots(secret=secret, id=token.id, scope=token.scope)

    @renderer
    def none(self, request: IRequest, tag: Tag) -> Tag | str:
        return "" if self._listing.tokens else tag

    @renderer
    def table(self, request: IRequest, tag: Tag) -> Tag | str:
        return tag if self._listing.tokens else ""

    @renderer
    def rows(self, request: IRequest, tag: Tag) -> Tag:
        for token in self._listing.tokens:
            revoke = tags.form(
                tags.input(type="hidden", name="action", value="revoke"),
                tags.input(type="hidden", name="id", value=token.id),
                tags.input(type="hidden", name="csrf", value=self._listing.csrf),
                tags.button("Revoke", type="submit", class_="danger", title=f"Revoke token {token.id}"),
                method="post", action="+tokens", class_="revoke",
            )
            tag(tags.tr(
                _cell("Token", tags.code(token.id)),
                _cell("Description", token.description or "—"),
                _cell("Scope", token.scope),
                _cell("Created", _when(token.created)),
                _cell("Expires", _when(token.expires)),
                _cell("Last used", _when(token.last_used, never="not yet")),
                tags.td(revoke),
                id=f"token-{token.id}",
            ))
        return tag


class Tokens(TokensPage):
    """The JSON API for machines; the page for browsers."""

    def __init__(self, components: Components) -> None:
        assert components.team is not None
        super().__init__(components.team.tokens)
        self._components = components

    def render_GET(self, request: Request) -> int | bytes:
        if not wants_html(request):
            return super().render_GET(request)
        account = logged_in(request)
        refusal = self._service.refusal(account)
        if refusal:
            return html_error(403, refusal).render(request)
        return render_async(request, self._page(request, account))

    def render_POST(self, request: Request) -> int | bytes:
        if not wants_html(request):
            return super().render_POST(request)
        account = logged_in(request)
        refusal = self._service.refusal(account)
        if refusal:
            return html_error(403, refusal).render(request)
        return render_async(request, self._form(request, account))

    async def _page(self, request: Request, account: Account, created: tuple[Token, str] | None = None) -> bytes:
        listing = Listing(account.name, self._service.csrf(account), tuple(self._service.list(account)), created)
        body = await render_page(request, "Your tokens", TokensElement(listing), logins=True)
        request.setHeader(b"cache-control", b"no-store")  # it may hold a secret
        return body

    async def _form(self, request: Request, account: Account) -> IResource | bytes:
        try:
            fields = form_fields(request)
        except ValueError as e:
            return html_error(400, str(e))
        if not self._service.csrf_ok(account, one(fields, "csrf") or None):
            return html_error(403, "missing or wrong csrf token: reload the page and try again")
        action = one(fields, "action")
        if action == "revoke":
            token_id = one(fields, "id")
            try:
                await self._service.revoke(account, token_id)
            except NoSuchToken:
                return html_error(404, f"you have no token {token_id!r}")
            return see_other(request, "+tokens")
        if action != "create":
            return html_error(400, "action must be 'create' or 'revoke'")
        expires = one(fields, "expires")
        try:
            lifetime = parse_duration(expires, "expires") if expires else None
        except ValueError as e:
            return html_error(400, str(e))
        projects = [canonicalize_name(n) for n in _NAMES.split(one(fields, "projects")) if n]
        created = await self._service.create(
            account, projects, one(fields, "read_only") == "1", lifetime, one(fields, "description")[:200]
        )
        return await self._page(request, account, created)
