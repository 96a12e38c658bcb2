"""``/+tokens``: each user lists, creates and revokes their own API tokens (JSON, or form POSTs with a CSRF token).

The pages for people build on TokenService; this module answers machines and plain forms.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource

from ..config import parse_duration
from ..private import Account, Audit, NoSuchToken, Token, TokenStore
from ..simple import VALID_NAME
from .errors import bad_request, error_page, forbidden
from ..interfaces import ToThread
from .http import render_async

MAX_DESCRIPTION = 200


class TokenService:
    """A user's own tokens: what the JSON API here and the HTML pages both call.

    Only a password login manages tokens (a token must not mint itself a wider one). The
    CSRF token is an HMAC of the login under a key kept in the cache directory, so every
    process on it accepts the forms of every other.
    """

    def __init__(self, tokens: TokenStore, audit: Audit, key_path: Path, clock: IReactorTime, to_thread: ToThread) -> None:
        self._tokens = tokens
        self._audit = audit
        self._clock = clock
        self._to_thread = to_thread
        self._key = _load_key(key_path)

    def refusal(self, account: Account | None) -> str | None:
        if account is None:
            return "log in to manage your tokens"
        if account.token_id is not None:
            return "tokens are managed after logging in with your password, not with a token"
        return None

    def csrf(self, account: Account) -> str:
        return hmac.new(self._key, f"tokens\0{account.name}".encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, account: Account, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(self.csrf(account), value)

    def list(self, account: Account) -> list[Token]:
        return self._tokens.tokens(account.name)

    async def create(
        self, account: Account, projects: list[str], read_only: bool, lifetime: float | None, description: str
    ) -> tuple[Token, str]:
        token, secret = await self._to_thread(
            self._tokens.create, account.name, self._clock.seconds(), projects, read_only, lifetime, description
        )
        await self._audit.record("token-create", account.name, token=token.id, scope=token.scope, via="/+tokens")
        return token, secret

    async def revoke(self, account: Account, token_id: str) -> Token:
        """Raises NoSuchToken when the user has no token of that id."""
        token = await self._to_thread(self._tokens.revoke, token_id, account.name)
        await self._audit.record("token-revoke", account.name, token=token.id, via="/+tokens")
        return token


class TokensPage(Resource):
    """``GET /+tokens``: the user's tokens and the CSRF token for changes; ``POST`` with
    ``action=create`` (``project`` repeatable, ``read_only``, ``expires`` like ``90d``,
    ``description``) or ``action=revoke`` (``id``), and ``csrf``; as a form or as JSON."""

    isLeaf = True

    def __init__(self, service: TokenService) -> None:
        super().__init__()
        self._service = service

    def render_GET(self, request: IRequest) -> bytes:
        account = getattr(request, "account", None)
        refusal = self._service.refusal(account)
        if refusal:
            return forbidden(refusal).render(request)
        tokens = [t.as_json() for t in self._service.list(account)]
        return _json(request, {"user": account.name, "csrf": self._service.csrf(account), "tokens": tokens})

    def render_POST(self, request: IRequest) -> int | bytes:
        account = getattr(request, "account", None)
        refusal = self._service.refusal(account)
        if refusal:
            return forbidden(refusal).render(request)
        try:
            fields = _fields(request)
        except ValueError as e:
            return bad_request(str(e)).render(request)
        if not self._service.csrf_ok(account, _one(fields, "csrf")):
            return forbidden("missing or wrong csrf token (GET /+tokens gives yours)").render(request)
        return render_async(request, self._change(request, account, fields))

    async def _change(self, request: IRequest, account: Account, fields: dict[str, list[str]]) -> IResource | bytes:
        action = _one(fields, "action")
        if action == "revoke":
            token_id = _one(fields, "id") or ""
            try:
                token = await self._service.revoke(account, token_id)
            except NoSuchToken:
                return error_page(404, f"you have no token {token_id!r}")
            return _json(request, {"revoked": token.id})
        if action == "create":
            expires = _one(fields, "expires")
            try:
                lifetime = parse_duration(expires, "expires") if expires else None
            except ValueError as e:
                return bad_request(str(e))
            projects = fields.get("project", [])
            bad = [p for p in projects if not VALID_NAME.match(p)]
            if bad:
                return bad_request(f"not a project name: {bad[0][:100]!r}")
            description = _one(fields, "description") or ""
            if len(description) > MAX_DESCRIPTION:
                return bad_request(f"the description is over {MAX_DESCRIPTION} characters")
            read_only = (_one(fields, "read_only") or "").lower() in ("1", "true", "on", "yes")
            token, secret = await self._service.create(account, projects, read_only, lifetime, description)
            return _json(request, {"token": secret, **token.as_json()})
        return bad_request("action must be 'create' or 'revoke'")


def _fields(request: IRequest) -> dict[str, list[str]]:
    body = request.content.read() if request.content is not None else b""
    kind = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    if kind == b"application/json":
        try:
            data = json.loads(body)
        except ValueError:
            raise ValueError("the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ValueError("the JSON body must be an object")
        return {k: [str(x) for x in v] if isinstance(v, list) else [str(v)] for k, v in data.items()}
    if kind == b"application/x-www-form-urlencoded":
        return parse_qs(body.decode("utf-8", "replace"))
    raise ValueError("send application/x-www-form-urlencoded or application/json")


def _one(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name)
    return values[0] if values else None


def _json(request: IRequest, data: Any) -> bytes:
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(data, indent=1).encode() + b"\n"


def _load_key(path: Path) -> bytes:
    """The CSRF key, made once per cache directory (0600)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(32))
    try:
        os.link(temporary, path)  # complete before it has its name; another process may win
    except FileExistsError:
        pass
    finally:
        os.unlink(temporary)
    return path.read_bytes()
