"""The pages' owner and user actions, in memory: login, yank/unyank on the project page, /+tokens."""

from __future__ import annotations

import base64
import io
import json
import re
from html import unescape
from urllib.parse import urlencode

import pytest
import pytest_twisted
from twisted.web.client import FileBodyProducer, readBody
from twisted.web.http_headers import Headers

from support.builders import build_wheel
from support.clients import htpasswd, upload

HTML = "text/html,application/xhtml+xml"
FORM = "application/x-www-form-urlencoded"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


ALICE, BOB, CAROL = basic("alice", "alice-pw"), basic("bob", "bob-pw"), basic("carol", "carol-pw")


@pytest.fixture
def team_files(tmp_path):
    users = htpasswd(tmp_path / "users", alice="alice-pw", bob="bob-pw", carol="carol-pw")
    groups = tmp_path / "groups"
    groups.write_text("admin: carol\nupload: alice bob\n")
    return {"htpasswd": users, "groups": groups}


def csrf_of(body: bytes) -> str | None:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', body.decode())
    return found.group(1) if found else None


async def post(proxy, path: str, fields: dict[str, str], auth: str | None):
    headers = {"Content-Type": FORM, "Accept": HTML}
    if auth:
        headers["Authorization"] = auth
    body = FileBodyProducer(io.BytesIO(urlencode(fields).encode()))
    response = await proxy.http.request(b"POST", (proxy.root_url + path).encode(),
                                        Headers({k: [v] for k, v in headers.items()}), body)
    return response, await readBody(response)


async def yanked(proxy) -> dict[str, object]:
    _, body = await proxy.get("simple/corp-app/", {"Accept": "application/vnd.pypi.simple.v1+json"})
    return {f["filename"]: f.get("yanked", False) for f in json.loads(body)["files"]}


@pytest_twisted.ensureDeferred
async def test_only_owners_and_admins_see_yank_and_a_yank_needs_their_csrf_token(make_proxy, team_files):
    proxy = await make_proxy(**team_files)
    for version in ("1.0", "2.0"):
        response, text = await upload(proxy, build_wheel("corp-app", version), auth=("alice", "alice-pw"))
        assert response.code == 200, text

    _, anonymous = await proxy.get("project/corp-app/", {"Accept": HTML})
    assert csrf_of(anonymous) is None and b'href="../../+login?next=%2Fproject%2Fcorp-app%2F"' in anonymous
    _, as_bob = await proxy.get("project/corp-app/", {"Authorization": BOB})
    assert csrf_of(as_bob) is None and b"Yank" not in as_bob and b'class="user">bob<' in as_bob
    _, as_alice = await proxy.get("project/corp-app/", {"Authorization": ALICE})
    alice_csrf = csrf_of(as_alice)
    assert alice_csrf and b">Yank 2.0</button>" in as_alice and b">Yank 1.0</button>" in as_alice
    _, as_carol = await proxy.get("project/corp-app/", {"Authorization": CAROL})
    assert csrf_of(as_carol) and csrf_of(as_carol) != alice_csrf  # tied to the login

    yank = {"action": "yank", "version": "2.0", "reason": "eats <data>"}
    for fields, auth, code in (
        (yank, ALICE, 403),                               # no CSRF token
        ({**yank, "csrf": csrf_of(as_carol)}, ALICE, 403),  # another login's
        ({**yank, "csrf": alice_csrf}, BOB, 403),         # alice's token, bob's login
        ({**yank, "csrf": alice_csrf}, None, 401),        # no login at all
    ):
        response, body = await post(proxy, "project/corp-app/", fields, auth)
        assert response.code == code, body
    # GETs change nothing, whatever they carry.
    await proxy.get("project/corp-app/?" + urlencode({**yank, "csrf": alice_csrf}), {"Authorization": ALICE})
    assert not any((await yanked(proxy)).values())
    _, bobs_tokens = await proxy.get("+tokens", {"Authorization": BOB, "Accept": HTML})
    response, body = await post(proxy, "project/corp-app/", {**yank, "csrf": csrf_of(bobs_tokens)}, BOB)
    assert response.code == 403 and b"user 'bob' may not yank releases of project 'corp-app'" in body

    response, _ = await post(proxy, "project/corp-app/", {**yank, "csrf": alice_csrf}, ALICE)
    assert response.code == 303
    assert response.headers.getRawHeaders("location") == ["./#v2.0"]
    assert await yanked(proxy) == {"corp_app-1.0-py3-none-any.whl": False,
                                   "corp_app-2.0-py3-none-any.whl": "eats <data>"}
    _, page = await proxy.get("project/corp-app/", {"Authorization": ALICE})
    assert "Yanked: eats <data>" in unescape(page.decode())
    assert b">Unyank 2.0</button>" in page

    response, _ = await post(proxy, "project/corp-app/", {"action": "unyank", "version": "2.0",
                                                          "csrf": csrf_of(as_carol)}, CAROL)  # an admin
    assert response.code == 303
    assert not any((await yanked(proxy)).values())
    response, body = await post(proxy, "project/corp-app/", {"action": "yank", "version": "9.9",
                                                             "csrf": alice_csrf}, ALICE)
    assert response.code == 404
    audit = (proxy.config.cache_dir / "team" / "audit.log").read_text()
    assert '"event": "yank"' in audit and '"event": "unyank"' in audit and '"via": "project page"' in audit


@pytest_twisted.ensureDeferred
async def test_a_wrong_login_on_a_page_is_asked_for_again_and_login_returns_to_the_page(make_proxy, team_files):
    proxy = await make_proxy(**team_files)
    response, _ = await proxy.get("project/corp-app/", {"Authorization": basic("alice", "wrong")})
    assert response.code == 401
    response, _ = await proxy.get("+login?next=/project/corp-app/")
    assert response.code == 401 and response.headers.getRawHeaders("www-authenticate")
    response, _ = await proxy.get("+login?next=/project/corp-app/", {"Authorization": ALICE})
    assert (response.code, response.headers.getRawHeaders("location")) == (303, ["./project/corp-app/"])
    response, _ = await proxy.get("+login?next=//elsewhere.example/", {"Authorization": ALICE})
    assert response.headers.getRawHeaders("location") == ["./"]


@pytest_twisted.ensureDeferred
async def test_tokens_page_creates_a_token_shown_once_and_revokes_it(make_proxy, team_files):
    proxy = await make_proxy(**team_files)
    response, page = await proxy.get("+tokens", {"Authorization": ALICE, "Accept": HTML})
    assert response.code == 200
    assert response.headers.getRawHeaders("content-security-policy")
    assert b"You have no tokens." in page
    # What an empty "Projects" means is said beside the field (a placeholder was cut off on phones).
    hint = re.search(r'<small id="projects-hint"[^>]*>([^<]+)</small>', page.decode()).group(1)
    assert 'aria-describedby="projects-hint"' in page.decode() and hint.startswith("Empty: every project")
    csrf = csrf_of(page)

    response, body = await post(proxy, "+tokens", {"action": "create", "csrf": csrf, "description": "CI <b>",
                                                   "projects": "Corp_App, other", "expires": "30d"}, ALICE)
    assert response.code == 200
    assert response.headers.getRawHeaders("cache-control") == ["no-store"]
    secret = re.search(r'<code id="new-token">(pypx-[^<]+)</code>', body.decode()).group(1)
    token_id = secret.split("-")[1]
    assert "CI &lt;b&gt;" in body.decode() and "upload: corp-app, other" in body.decode()

    _, again = await proxy.get("+tokens", {"Authorization": ALICE, "Accept": HTML})
    assert secret.encode() not in again and f'id="token-{token_id}"'.encode() in again
    _, bobs = await proxy.get("+tokens", {"Authorization": BOB, "Accept": HTML})
    assert token_id.encode() not in bobs

    # The token logs in; a token may not manage tokens; bob may not revoke alice's.
    response, _ = await proxy.get("simple/", {"Authorization": basic("__token__", secret)})
    assert response.code == 200
    response, _ = await proxy.get("+tokens", {"Authorization": basic("__token__", secret), "Accept": HTML})
    assert response.code == 403
    response, _ = await post(proxy, "+tokens", {"action": "revoke", "id": token_id, "csrf": csrf_of(bobs)}, BOB)
    assert response.code == 404
    response, _ = await post(proxy, "+tokens", {"action": "revoke", "id": token_id}, ALICE)
    assert response.code == 403  # no CSRF token

    response, _ = await post(proxy, "+tokens", {"action": "revoke", "id": token_id, "csrf": csrf}, ALICE)
    assert (response.code, response.headers.getRawHeaders("location")) == (303, ["+tokens"])
    _, after = await proxy.get("+tokens", {"Authorization": ALICE, "Accept": HTML})
    assert b"You have no tokens." in after
    # The JSON API is the same resource for machines.
    response, data = await proxy.get("+tokens", {"Authorization": ALICE})
    assert json.loads(data)["tokens"] == []
