"""The private tier for a team: tokens, groups, owners, claims, namespaces, yank and remove, the early gate."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

import pytest
import pytest_twisted
import treq
from twisted.internet import threads

from support.builders import build_wheel
from support.clients import htpasswd, pip_install, run_client, twine_upload, upload

from pypiproxy.auth import Groups, GroupsError, load_groups
from pypiproxy.cache import FileStore
from pypiproxy.private import NoSuchToken, PrivateStore, Refused, Team, TokenRefused, TokenStore, check_distribution


JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


# Tokens ------------------------------------------------------------------------------------


def test_a_token_is_kept_only_as_a_hash_and_fails_once_revoked_in_another_store(tmp_path):
    store, other = TokenStore(tmp_path / "tokens.json"), TokenStore(tmp_path / "tokens.json")
    now = time.time()
    token, secret = store.create("alice", now, projects=["Corp.App"], description="ci")
    assert secret.startswith("pypx-") and len(secret) > 50
    assert secret not in (tmp_path / "tokens.json").read_text()
    assert other.check(secret, now) == token
    assert token.projects == ("corp-app",) and token.scope == "upload: corp-app"
    with pytest.raises(TokenRefused, match="unknown or revoked"):
        other.check(secret[:-1] + ("A" if secret[-1] != "A" else "B"), now)
    with pytest.raises(TokenRefused, match="not a pypiproxy API token"):
        other.check("hunter2", now)
    store.revoke(token.id)
    with pytest.raises(TokenRefused, match="unknown or revoked"):
        other.check(secret, now)  # the other "process" sees the revoke on its next check
    with pytest.raises(NoSuchToken):
        store.revoke(token.id)


def test_an_expired_token_fails_and_only_its_user_may_revoke_it_by_user(tmp_path):
    store = TokenStore(tmp_path / "tokens.json")
    token, secret = store.create("bob", 1000.0, lifetime=60.0)
    assert store.check(secret, 1059.0).id == token.id
    with pytest.raises(TokenRefused, match="expired"):
        store.check(secret, 1060.0)
    with pytest.raises(NoSuchToken):
        store.revoke(token.id, user="alice")
    assert [t.id for t in store.tokens("bob")] == [token.id]


def test_groups_are_read_again_when_the_file_changes_and_bad_lines_are_named(tmp_path):
    path = tmp_path / "groups"
    path.write_text("# who\nadmin: alice\nupload: bob carol\n")
    groups = Groups(path)
    assert groups.is_admin("alice") and groups.may_upload("alice") and groups.may_upload("carol")
    assert not groups.may_upload("dave") and not groups.is_admin("bob")
    path.write_text("upload: bob dave\n")
    assert groups.may_upload("dave") and not groups.may_upload("carol") and not groups.is_admin("alice")
    assert Groups(None).may_upload("anyone") and not Groups(None).is_admin("anyone")
    path.write_text("admin alice\n")
    with pytest.raises(GroupsError, match="line 1"):
        load_groups(path)


# Yank and remove in the store ---------------------------------------------------------------


def new_store(root: Path) -> PrivateStore:
    return PrivateStore(root / "private", FileStore(root).temporary)


def add(store: PrivateStore, built) -> None:
    temporary = store.temporary(built.filename)
    temporary.write_bytes(built.data)
    store.add(temporary, check_distribution(temporary, built.filename))


def test_a_yank_marks_every_file_of_the_version_and_another_store_sees_it(tmp_path):
    store, other = new_store(tmp_path), new_store(tmp_path)
    add(store, build_wheel("thing", "1.0"))
    add(store, build_wheel("thing", "1.1"))
    assert [f.is_yanked for f in other.project("thing")] == [False, False]
    assert [f.filename for f in store.set_yanked("thing", "1.0.0", True, "broken")] == ["thing-1.0-py3-none-any.whl"]
    entries = [f.entry() for f in other.project("thing")]
    assert [(e.is_yanked, e.yanked_reason) for e in entries] == [(True, "broken"), (False, None)]
    store.set_yanked("thing", "1.0", False)
    assert [f.is_yanked for f in other.project("thing")] == [False, False]


def test_a_removed_file_is_gone_and_its_name_can_never_be_used_again(tmp_path):
    store = new_store(tmp_path)
    built = build_wheel("thing", "1.0")
    add(store, built)
    store.remove("thing", "1.0")
    assert store.project("thing") == () and store.by_key(built.sha256) is None
    assert not (tmp_path / "private" / "thing" / built.filename).exists()
    with pytest.raises(Refused, match="previously used") as refused:
        add(store, build_wheel("thing", "1.0", summary="other bytes"))
    assert refused.value.code == 400
    assert store.repair() == []  # the tombstone is not a file missing its sidecar


# Through the HTTP API, in process ----------------------------------------------------------


@pytest.fixture
def team_files(tmp_path):
    users = htpasswd(tmp_path / "users", alice="alice-pw", bob="bob-pw", carol="carol-pw", dave="dave-pw")
    groups = tmp_path / "groups"
    groups.write_text("admin: carol\nupload: alice bob\n")
    return {"htpasswd": users, "groups": groups}


@pytest_twisted.ensureDeferred
async def test_owners_with_two_uploaders_an_admin_and_a_reader(make_proxy, team_files):
    proxy = await make_proxy(**team_files)
    team = Team.open(proxy.config.cache_dir)
    response, body = await upload(proxy, build_wheel("corp-app", "1.0"), auth=("alice", "alice-pw"))
    assert response.code == 200, body
    assert team.owners.of("corp-app") == ("alice",)
    response, body = await upload(proxy, build_wheel("corp-app", "1.1"), auth=("bob", "bob-pw"))
    assert response.code == 403
    assert response.phrase == b"user 'bob' may not upload to project 'corp-app'"
    team.owners.add("corp-app", "bob")
    response, body = await upload(proxy, build_wheel("corp-app", "1.1"), auth=("bob", "bob-pw"))
    assert response.code == 200, body
    response, body = await upload(proxy, build_wheel("corp-app", "1.2"), auth=("carol", "carol-pw"))
    assert response.code == 200, body  # an admin
    response, body = await upload(proxy, build_wheel("dave-thing", "1.0"), auth=("dave", "dave-pw"))
    assert response.code == 403 and "user 'dave' may not upload (not in the upload or admin group)" in body
    _, page = await proxy.get("/simple/corp-app/", JSON)
    assert [f["filename"].split("-")[1] for f in json.loads(page)["files"]] == ["1.0", "1.1", "1.2"]
    audit = (proxy.config.cache_dir / "team" / "audit.log").read_text()
    assert '"event": "owner-add"' in audit and '"event": "upload-refused"' in audit
    assert "bob-pw" not in audit and "alice-pw" not in audit


@pytest_twisted.ensureDeferred
async def test_a_name_an_upstream_serves_needs_a_claim_and_an_unanswering_upstream_a_503(make_proxy, fake_index, team_files):
    fake_index.add("public-thing", build_wheel("public-thing", "2.0"))
    proxy = await make_proxy(fake_index.url, **team_files)
    alice = ("alice", "alice-pw")
    response, body = await upload(proxy, build_wheel("public-thing", "1.0"), auth=alice)
    assert response.code == 403
    assert "exists on an upstream index" in body and "an admin must run 'pypiproxy claim public-thing' first" in body
    _, page = await proxy.get("/simple/public-thing/", JSON)
    assert "public_thing-2.0-py3-none-any.whl" in page.decode()  # the public project is still there
    fake_index.fail_pages = 503
    response, body = await upload(proxy, build_wheel("new-thing", "1.0"), auth=alice)
    assert response.code == 503 and "cannot ask the upstream whether it serves 'new-thing'" in body
    fake_index.fail_pages = None
    Team.open(proxy.config.cache_dir).claims.claim("public-thing", "carol", time.time())
    response, body = await upload(proxy, build_wheel("public-thing", "1.0"), auth=alice)
    assert response.code == 200, body
    response, body = await upload(proxy, build_wheel("new-thing", "1.0"), auth=alice)
    assert response.code == 200, body  # the upstream has no such project: no claim needed


@pytest_twisted.ensureDeferred
async def test_a_private_namespace_is_never_asked_upstream(make_proxy, fake_index, team_files):
    fake_index.add("corp-secret", build_wheel("corp-secret", "6.6"))  # an impostor upstream
    fake_index.add("corporate", build_wheel("corporate", "1.0"))  # not in the namespace
    proxy = await make_proxy(fake_index.url, private_namespaces=("corp",), **team_files)
    for name in ("corp", "corp-secret"):
        response, body = await proxy.get(f"/simple/{name}/")
        assert response.code == 404, body
    _, names = await proxy.get("/simple/", JSON)
    assert [p["name"] for p in json.loads(names)["projects"]] == ["corporate"]
    response, body = await upload(proxy, build_wheel("corp-secret", "1.0"), auth=("alice", "alice-pw"))
    assert response.code == 200, body
    _, page = await proxy.get("/simple/corp-secret/", JSON)
    assert [f["filename"] for f in json.loads(page)["files"]] == ["corp_secret-1.0-py3-none-any.whl"]
    assert fake_index.count("/simple/corp") == 0
    assert (await proxy.get("/simple/corporate/"))[0].code == 200
    assert fake_index.count("/simple/corporate/") == 1


@pytest_twisted.ensureDeferred
async def test_yank_in_both_formats_and_remove_then_the_same_file_name_is_refused(make_proxy, team_files, tmp_path):
    proxy = await make_proxy(**team_files)
    first, second = build_wheel("corp-lib", "1.0"), build_wheel("corp-lib", "2.0")
    for built in (first, second):
        response, body = await upload(proxy, built, auth=("alice", "alice-pw"))
        assert response.code == 200, body
    store = PrivateStore(proxy.config.cache_dir / "private", FileStore(tmp_path / "elsewhere").temporary)
    store.set_yanked("corp-lib", "2.0", True, "it eats data")  # as another process would
    _, page = await proxy.get("/simple/corp-lib/", JSON)
    files = {f["filename"]: f for f in json.loads(page)["files"]}
    assert files[second.filename]["yanked"] == "it eats data" and "yanked" not in files[first.filename]
    _, html = await proxy.get("/simple/corp-lib/")
    assert b'data-yanked="it eats data"' in html and html.count(b"data-yanked") == 1
    store.set_yanked("corp-lib", "2.0", False)
    _, page = await proxy.get("/simple/corp-lib/", JSON)
    assert all("yanked" not in f for f in json.loads(page)["files"])

    store.remove("corp-lib", "2.0", second.filename)
    _, page = await proxy.get("/simple/corp-lib/", JSON)
    assert [f["filename"] for f in json.loads(page)["files"]] == [first.filename]
    assert (await proxy.get(f"/files/corp-lib/{second.sha256}/{second.filename}"))[0].code == 404
    response, body = await upload(proxy, second, auth=("alice", "alice-pw"))
    assert response.code == 400 and "File name has been previously used" in body


@pytest_twisted.ensureDeferred
async def test_users_manage_their_own_tokens_at_plus_tokens_with_a_csrf_token(make_proxy, team_files):
    proxy = await make_proxy(**team_files)
    url = proxy.root_url + "+tokens"
    alice = ("alice", "alice-pw")
    response = await treq.get(url, persistent=False)
    assert response.code == 401
    await response.content()
    response = await treq.get(url, auth=alice, persistent=False)
    listing = await response.json()
    assert listing["user"] == "alice" and listing["tokens"] == []
    response = await treq.post(url, data={"action": "create", "project": "corp-app"}, auth=alice, persistent=False)
    assert response.code == 403 and b"csrf" in await response.content()
    for bad, reason in (({"project": ["../etc"]}, b"not a project name"), ({"expires": "later"}, b"not a duration")):
        response = await treq.post(url, json={"action": "create", "csrf": listing["csrf"], **bad}, auth=alice,
                                   persistent=False)
        assert response.code == 400 and reason in await response.content()
    response = await treq.post(url, json={"action": "create", "project": ["corp-app"], "read_only": True,
                                          "expires": "1d", "csrf": listing["csrf"]}, auth=alice, persistent=False)
    created = await response.json()
    assert response.code == 200 and created["token"].startswith("pypx-") and created["read_only"] is True
    # The token logs in, but may not manage tokens (nor mint a wider one).
    response = await treq.get(url, auth=("__token__", created["token"]), persistent=False)
    assert response.code == 403
    await response.content()
    bob = await (await treq.get(url, auth=("bob", "bob-pw"), persistent=False)).json()
    response = await treq.post(url, data={"action": "revoke", "id": created["id"], "csrf": bob["csrf"]},
                               auth=("bob", "bob-pw"), persistent=False)
    assert response.code == 404  # not bob's
    await response.content()
    response = await treq.post(url, data={"action": "revoke", "id": created["id"], "csrf": listing["csrf"]},
                               auth=alice, persistent=False)
    assert (await response.json()) == {"revoked": created["id"]}
    assert Team.open(proxy.config.cache_dir).tokens.tokens() == []


# Deciding before the body is read ----------------------------------------------------------


def _post_headers(port: int, auth: str | None, expect: bool, length: int) -> tuple[bytes, bool]:
    """Send only an upload's headers; (the answer, whether the server then closed)."""
    import base64

    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        head = (b"POST /legacy/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                b"Content-Length: %d\r\n" % length)
        if auth:
            head += b"Authorization: Basic " + base64.b64encode(auth.encode()) + b"\r\n"
        if expect:
            head += b"Expect: 100-continue\r\n"
        s.sendall(head + b"\r\n")
        answer = b""
        closed = False
        while True:
            data = s.recv(65536)
            if not data:
                closed = True
                break
            answer += data
            if b"\r\n\r\n" in answer and not expect:
                break
        return answer, closed


@pytest_twisted.ensureDeferred
async def test_a_refused_50mb_post_is_answered_from_its_headers_and_leaves_nothing(make_proxy, team_files):
    proxy = await make_proxy(**team_files)
    port = proxy.port.getHost().port
    size = 50 * 1024 * 1024
    cases = [
        (None, True, b"HTTP/1.1 401 login required"),
        ("alice:wrong", True, b"HTTP/1.1 401 wrong user name or password"),
        ("dave:dave-pw", True, b"HTTP/1.1 403 user 'dave' may not upload"),
        ("alice:wrong", False, b"HTTP/1.1 401 wrong user name or password"),
    ]
    for auth, expect, status in cases:
        answer, closed = await threads.deferToThread(_post_headers, port, auth, expect, size)
        assert answer.startswith(status), answer
        assert b"100 Continue" not in answer
        if expect:
            assert closed  # the client waits for "100 Continue": nothing to drain, closed at once
    assert list(proxy.store.tmp.iterdir()) == []
    # The same headers with a good login get their "100 Continue".
    answer = await threads.deferToThread(_continue_then_close, port)
    assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), answer


def _continue_then_close(port: int) -> bytes:
    import base64

    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /legacy/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                  b"Content-Length: 1000\r\nExpect: 100-continue\r\n"
                  b"Authorization: Basic " + base64.b64encode(b"alice:alice-pw") + b"\r\n\r\n")
        return s.recv(4096)


@pytest_twisted.ensureDeferred
async def test_allow_from_refuses_a_post_before_its_body(make_proxy, team_files):
    import ipaddress

    proxy = await make_proxy(allow_from=(ipaddress.ip_network("10.0.0.0/8"),), **team_files)
    answer, closed = await threads.deferToThread(_post_headers, proxy.port.getHost().port, "alice:alice-pw", True,
                                                 50 * 1024 * 1024)
    assert answer.startswith(b"HTTP/1.1 403 your address may not use this server") and closed


# Real twine, uv and pip against real twistd processes --------------------------------------

PYPIPROXY = str(Path(sys.executable).with_name("pypiproxy"))
UV = str(Path(sys.executable).with_name("uv"))


def pypiproxy(*argv: str) -> str:
    """Run a console command; its stdout (it must succeed)."""
    done = run_client([PYPIPROXY, *argv])
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def uv_publish(url: str, token: str, path: Path):
    return run_client([UV, "publish", "--no-config", "--trusted-publishing", "never", "--publish-url", url,
                       "--token", token, str(path)])


@pytest_twisted.ensureDeferred
async def test_twine_and_uv_publish_with_tokens(twistd, tmp_path, team_files):
    cache = tmp_path / "proxy"
    cache.mkdir()
    proxy = twistd(["--no-upstream", "--htpasswd", str(team_files["htpasswd"]), "--groups", str(team_files["groups"])])
    await threads.deferToThread(proxy.wait_ready)
    url = proxy.root_url + "legacy/"
    d = ["--cache-dir", str(cache)]
    token = pypiproxy("token", "create", *d, "--user", "alice", "--description", "ci").strip()
    scoped = pypiproxy("token", "create", *d, "--user", "alice", "--project", "corp-app").strip()
    reader = pypiproxy("token", "create", *d, "--user", "alice", "--read-only").strip()
    wheel = lambda name, version: build_wheel(name, version).save(tmp_path)  # noqa: E731

    done = await threads.deferToThread(twine_upload, url, "__token__", token, wheel("corp-app", "1.0"))
    assert done.returncode == 0, done.stdout + done.stderr
    done = await threads.deferToThread(twine_upload, url, "__token__", scoped, wheel("corp-app", "1.1"))
    assert done.returncode == 0, done.stdout + done.stderr
    done = await threads.deferToThread(twine_upload, url, "__token__", scoped, wheel("corp-other", "1.0"))
    assert done.returncode != 0 and "may not upload to project 'corp-other'" in done.stdout
    done = await threads.deferToThread(twine_upload, url, "__token__", reader, wheel("corp-app", "1.2"))
    assert done.returncode != 0 and "403" in done.stdout and "is read-only" in done.stdout
    published = await threads.deferToThread(uv_publish, url, scoped, wheel("corp-app", "1.3"))
    assert published.returncode == 0, published.stdout + published.stderr
    published = await threads.deferToThread(uv_publish, url, reader, wheel("corp-app", "1.4"))
    assert published.returncode != 0 and "read-only" in published.stderr
    # A user the groups file leaves out only reads, with a password or with a token.
    done = await threads.deferToThread(twine_upload, url, "dave", "dave-pw", wheel("dave-app", "1.0"))
    assert done.returncode != 0 and "user 'dave' may not upload" in done.stdout

    # Revoked: refused on the very next upload, no restart.
    token_id = scoped.split("-")[1]
    listing = pypiproxy("token", "list", *d)
    assert token_id in listing and "upload: corp-app" in listing and "ci" in listing
    pypiproxy("token", "revoke", *d, token_id)
    published = await threads.deferToThread(uv_publish, url, scoped, wheel("corp-app", "1.5"))
    assert published.returncode != 0 and "401" in published.stderr and "unknown or revoked token" in published.stderr
    # Expired: a token made to expire in a second fails once the second is over.
    short = pypiproxy("token", "create", *d, "--user", "alice", "--expires", "1s").strip()
    await threads.deferToThread(time.sleep, 1.5)
    done = await threads.deferToThread(twine_upload, url, "__token__", short, wheel("corp-app", "1.6"))
    assert done.returncode != 0 and "401" in done.stdout and "token expired at" in done.stdout

    versions = sorted(p.name for p in (cache / "private" / "corp-app").glob("*.whl"))
    assert versions == [f"corp_app-{v}-py3-none-any.whl" for v in ("1.0", "1.1", "1.3")]
    log = proxy.log()
    assert "audit: upload by alice (token" in log and "audit: token-refused" in log
    for secret in (token, scoped, reader, short):
        assert secret not in log and secret not in (cache / "team" / "audit.log").read_text()
        assert secret not in (cache / "team" / "tokens.json").read_text()


@pytest_twisted.ensureDeferred
async def test_two_servers_on_one_cache_dir_see_a_revoke_at_once(twistd, tmp_path, team_files):
    cache = tmp_path / "shared"
    cache.mkdir()
    args = ["--no-upstream", "--auth", "all", "--htpasswd", str(team_files["htpasswd"])]
    servers = [twistd(args, name="shared"), twistd(args, name="shared")]
    for server in servers:
        await threads.deferToThread(server.wait_ready)
    token = pypiproxy("token", "create", "--cache-dir", str(cache), "--user", "bob", "--read-only").strip()

    def status(server) -> int:
        import base64
        import urllib.error
        import urllib.request

        request = urllib.request.Request(server.url)
        request.add_header("Authorization", "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as e:
            return e.code

    assert [await threads.deferToThread(status, s) for s in servers] == [200, 200]
    pypiproxy("token", "revoke", "--cache-dir", str(cache), token.split("-")[1])
    revoked_at = time.monotonic()
    assert [await threads.deferToThread(status, s) for s in servers] == [401, 401]
    assert time.monotonic() - revoked_at < 1.0 + 5.0  # asked right away; the bound only covers a slow box


@pytest_twisted.ensureDeferred
async def test_pip_skips_a_yanked_version_unless_pinned(twistd, tmp_path, team_files):
    cache = tmp_path / "proxy"
    cache.mkdir()
    proxy = twistd(["--no-upstream", "--htpasswd", str(team_files["htpasswd"])])
    await threads.deferToThread(proxy.wait_ready)
    for version in ("1.0", "2.0"):
        done = await threads.deferToThread(twine_upload, proxy.root_url, "alice", "alice-pw",
                                           build_wheel("corp-tool", version).save(tmp_path))
        assert done.returncode == 0, done.stdout + done.stderr
    pypiproxy("yank", "--cache-dir", str(cache), "corp-tool", "2.0", "--reason", "eats data")

    def installed(target: str, *requirement: str) -> str:
        done = pip_install(proxy.url, tmp_path / target, *requirement)
        assert done.returncode == 0, done.stdout + done.stderr
        return (tmp_path / target / "corp_tool" / "__init__.py").read_text()

    assert await threads.deferToThread(installed, "latest", "corp-tool") == 'VERSION = "1.0"\n'
    pinned = await threads.deferToThread(pip_install, proxy.url, tmp_path / "pinned", "corp-tool==2.0")
    assert pinned.returncode == 0 and "eats data" in pinned.stdout + pinned.stderr  # pip warns with the reason
    pypiproxy("unyank", "--cache-dir", str(cache), "corp-tool", "2.0")
    assert await threads.deferToThread(installed, "again", "corp-tool") == 'VERSION = "2.0"\n'
    pypiproxy("remove", "--cache-dir", str(cache), "corp-tool", "2.0")
    again = await threads.deferToThread(twine_upload, proxy.root_url, "alice", "alice-pw",
                                        tmp_path / "corp_tool-2.0-py3-none-any.whl")
    assert again.returncode != 0 and "400" in again.stdout and "previously used" in again.stdout
    audit = (cache / "team" / "audit.log").read_text()
    assert all(f'"event": "{e}"' in audit for e in ("upload", "yank", "unyank", "remove", "owner-add"))


def test_who_may_yank_a_project_from_its_page(tmp_path):
    from pypiproxy.private import Account, UploadRules

    team = Team.open(tmp_path)
    team.owners.add("corp-app", "alice")

    async def never(name: str) -> bool:
        raise AssertionError("no upstream question")

    rules = UploadRules(new_store(tmp_path), team.owners, team.claims, (), never)
    assert rules.may_manage(Account("alice", uploader=True), "corp-app")
    assert rules.may_manage(Account("carol", admin=True), "corp-app")
    assert not rules.may_manage(Account("bob", uploader=True), "corp-app")
    assert not rules.may_manage(Account("alice", uploader=True, read_only=True, token_id="x"), "corp-app")
    assert not rules.may_manage(Account("alice", uploader=True, projects=("other",), token_id="x"), "corp-app")
    assert not rules.may_manage(None, "corp-app")


def test_the_console_commands_change_the_state_and_answer_bad_input_with_one_line(tmp_path):
    d = ["--cache-dir", str(tmp_path)]
    assert pypiproxy("owner", "add", *d, "Corp.App", "alice") == "alice now owns corp-app\n"
    pypiproxy("owner", "add", *d, "corp-app", "bob")
    pypiproxy("owner", "remove", *d, "corp-app", "alice")
    assert pypiproxy("owner", "list", *d) == "corp-app: bob\n"
    assert Team.open(tmp_path).owners.of("corp-app") == ("bob",)
    assert "claimed corp-app" in pypiproxy("claim", *d, "corp-app")
    assert Team.open(tmp_path).claims.claimed("corp-app")
    for argv, status, message in [
        (["owner", "remove", *d, "corp-app", "alice"], 1, "'alice' does not own 'corp-app'"),
        (["token", "revoke", *d, "0123456789ab"], 1, "no token with id '0123456789ab'"),
        (["token", "create", *d, "--user", "a", "--expires", "soon"], 2, "not a duration: 'soon'"),
        (["yank", *d, "corp-app", "1.0"], 1, "has no private files of version 1.0"),
        (["remove", *d, "corp-app"], 1, "has no private files"),
        (["claim", "--cache-dir", str(tmp_path / "missing"), "x"], 2, "is not a directory"),
        (["owner", "add", *d, "not a name!", "alice"], 2, "not a project name"),
    ]:
        done = run_client([PYPIPROXY, *argv])
        assert done.returncode == status, (argv, done.stderr)
        assert done.stderr.count("\n") == 1 and message in done.stderr, (argv, done.stderr)
    audit = [json.loads(line) for line in (tmp_path / "team" / "audit.log").read_text().splitlines()]
    assert [e["event"] for e in audit] == ["owner-add", "owner-add", "owner-remove", "claim"]
    assert all(e["user"].endswith("(console)") for e in audit)


@pytest.mark.parametrize("argv, message", [
    (["--groups", "/nonexistent/groups"], "--groups: cannot read '/nonexistent/groups'"),
    (["--private-namespace", "no/slash"], "--private-namespace: not a project name: 'no/slash'"),
])
def test_bad_team_options_end_the_server_with_one_line(argv, message, capsys):
    from pypiproxy.server import Options

    with pytest.raises(SystemExit) as exited:
        Options().parseOptions(["--no-upstream", *argv])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_the_token_file_is_readable_by_its_owner_only(tmp_path):
    TokenStore(tmp_path / "tokens.json").create("alice", time.time())
    assert (tmp_path / "tokens.json").stat().st_mode & 0o777 == 0o600


@pytest_twisted.ensureDeferred
async def test_anonymous_uploads_never_reach_a_project_with_owners(make_proxy):
    proxy = await make_proxy(allow_anonymous_upload=True)
    response, body = await upload(proxy, build_wheel("loose", "1.0"))
    assert response.code == 200, body
    Team.open(proxy.config.cache_dir).owners.add("loose", "alice")
    response, body = await upload(proxy, build_wheel("loose", "1.1"))
    assert response.code == 403 and "anonymous uploads may not go to project 'loose'" in body


def _post_form(port: int, path: bytes, length: int, expect: bool) -> tuple[bytes, bool]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                  b"Content-Length: %d\r\n%s\r\n" % (length, b"Expect: 100-continue\r\n" if expect else b""))
        answer = b""
        while True:
            data = s.recv(65536)
            if not data:
                return answer, True
            answer += data


@pytest_twisted.ensureDeferred
async def test_a_big_body_anywhere_but_the_upload_api_is_refused_unread(make_proxy):
    proxy = await make_proxy(allow_anonymous_upload=True)
    answer, closed = await threads.deferToThread(_post_form, proxy.port.getHost().port, b"/simple/", 10**7, True)
    assert answer.startswith(b"HTTP/1.1 413 request body too large here") and closed
    assert b"100 Continue" not in answer
