"""Logins (htpasswd through twisted.cred), --auth upload|all, uploads without users, --allow-from."""

from __future__ import annotations

import base64
import ipaddress
import os

import bcrypt
import pytest
import pytest_twisted
import treq
from twisted.cred import credentials, error
from twisted.internet import defer, task
from twisted.logger import formatEvent, globalLogPublisher

from support.builders import build_wheel
from support.clients import upload

from pypiproxy.auth import HtpasswdChecker, HtpasswdError, load_htpasswd
from pypiproxy.server import Options


def bcrypt_hash(password: str, prefix: str = "$2b$") -> str:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    return prefix + hashed[4:]


@pytest.fixture
def users(tmp_path):
    path = tmp_path / "htpasswd"
    path.write_text(f"# our users\n\nalice:{bcrypt_hash('in-wonderland', '$2y$')}\nbob:{bcrypt_hash('builder')}\n")
    return path


def test_htpasswd_with_bcrypt_hashes_loads(users):
    assert sorted(load_htpasswd(users)) == ["alice", "bob"]


@pytest.mark.parametrize(
    "hashed, kind",
    [
        ("$apr1$Xz1CJv2c$8qLLuAwoX2SkydSBfTkVr/", "Apache MD5"),
        ("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "SHA-1"),
        ("rqXexS6ZhobKA", "crypt"),
        ("plain-text", "plain text"),
    ],
)
def test_other_hashes_are_refused_naming_user_and_line(tmp_path, hashed, kind):
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{bcrypt_hash('x')}\ncarol:{hashed}\n")
    with pytest.raises(HtpasswdError) as refused:
        load_htpasswd(path)
    message = str(refused.value)
    assert "line 2" in message and "'carol'" in message and kind in message
    assert hashed not in message


def test_the_server_refuses_to_start_with_one_clear_line(tmp_path, capsys):
    path = tmp_path / "htpasswd"
    path.write_text("dave:$apr1$Xz1CJv2c$8qLLuAwoX2SkydSBfTkVr/\n")
    for argv in (["--no-upstream", "--htpasswd", str(path)], ["--no-upstream", "--auth", "all"]):
        with pytest.raises(SystemExit) as exited:
            Options().parseOptions(argv)
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("pypiproxy: error: ")
    assert "--auth all needs --htpasswd" in err


def test_a_verified_login_is_remembered_for_a_while_and_a_new_password_voids_it(tmp_path, users):
    clock = task.Clock()
    calls = []

    def verify(password: bytes, hashed: bytes) -> bool:
        calls.append(password)
        return bcrypt.checkpw(password, hashed)

    checker = HtpasswdChecker(users, clock, verify=verify, to_thread=lambda f, *a: defer.maybeDeferred(f, *a))

    def login(user: str, password: str):
        d = checker.requestAvatarId(credentials.UsernamePassword(user.encode(), password.encode()))
        results = []
        d.addBoth(results.append)
        return results[0]

    assert login("alice", "in-wonderland") == b"alice"
    assert login("alice", "in-wonderland") == b"alice"
    assert len(calls) == 1
    assert login("alice", "wrong").check(error.UnauthorizedLogin)
    assert login("nobody", "in-wonderland").check(error.UnauthorizedLogin)
    # An unknown user costs a bcrypt too (against a dummy hash): timing tells no one who exists.
    assert len(calls) == 3 and calls[-1] == b"in-wonderland"
    from pypiproxy.auth import PasswordTooLong

    assert login("alice", "x" * 73).check(PasswordTooLong)  # over bcrypt's 72 bytes: refused, not cut
    assert len(calls) == 3
    clock.advance(301)
    assert login("alice", "in-wonderland") == b"alice"
    assert len(calls) == 4
    # The file changes (a new password for alice): the old one is no longer good.
    users.write_text(f"alice:{bcrypt_hash('through-the-looking-glass')}\n")
    os.utime(users, ns=(0, 0))
    assert login("alice", "in-wonderland").check(error.UnauthorizedLogin)
    assert login("alice", "through-the-looking-glass") == b"alice"


class LogCapture:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, event) -> None:
        self.lines.append(formatEvent(event))


@pytest.fixture
def logged():
    capture = LogCapture()
    globalLogPublisher.addObserver(capture)
    yield capture.lines
    globalLogPublisher.removeObserver(capture)


async def get(proxy, path: str, auth=None):
    response = await treq.get(proxy.root_url + path, auth=auth, persistent=False)
    return response, await response.content()


@pytest_twisted.ensureDeferred
async def test_auth_upload_lets_anyone_read_and_only_users_upload(make_proxy, users, logged):
    proxy = await make_proxy(htpasswd=users)
    response, _ = await get(proxy, "simple/")
    assert response.code == 200
    built = build_wheel("guarded", "1.0")
    response, _ = await upload(proxy, built)
    assert response.code == 401
    assert response.headers.getRawHeaders("WWW-Authenticate") == ['Basic realm="pypiproxy"']
    response, _ = await upload(proxy, built, auth=("alice", "not-her-password"))
    assert (response.code, response.phrase) == (401, b"wrong user name or password")
    response, body = await upload(proxy, built, auth=("alice", "in-wonderland"))
    assert response.code == 200, body
    failed = [line for line in logged if "failed login" in line]
    assert len(failed) == 1 and "alice" in failed[0]
    assert not any("not-her-password" in line or "in-wonderland" in line for line in logged)
    assert any("by alice" in line for line in logged)


@pytest_twisted.ensureDeferred
async def test_auth_all_asks_every_request_for_a_login_but_health(make_proxy, users):
    proxy = await make_proxy(htpasswd=users, auth="all")
    for path in ("", "simple/", "simple/anything/", "+stats", "files/x/y/z"):
        response, _ = await get(proxy, path)
        assert response.code == 401, path
    response, _ = await get(proxy, "simple/", auth=("bob", "wrong"))
    assert response.code == 401
    response, _ = await get(proxy, "+health")
    assert response.code == 200
    response, body = await get(proxy, "simple/", auth=("bob", "builder"))
    assert response.code == 200, body
    response, _ = await upload(proxy, build_wheel("allowed", "1.0"), auth=("bob", "builder"))
    assert response.code == 200
    response, body = await get(proxy, "simple/allowed/", auth=("alice", "in-wonderland"))
    assert response.code == 200 and b"allowed-1.0" in body


@pytest_twisted.ensureDeferred
async def test_without_users_uploads_are_refused_unless_anonymous_ones_are_allowed(make_proxy):
    closed = await make_proxy()
    response, _ = await upload(closed, build_wheel("thing", "1.0"), auth=("alice", "anything"))
    assert response.code == 403
    assert b"uploads are disabled" in response.phrase
    open_ = await make_proxy(allow_anonymous_upload=True)
    response, _ = await upload(open_, build_wheel("thing", "1.0"))
    assert response.code == 200


@pytest_twisted.ensureDeferred
async def test_allow_from_refuses_other_networks_on_every_path_before_any_login(make_proxy, users):
    elsewhere = await make_proxy(htpasswd=users, allow_from=(ipaddress.ip_network("10.0.0.0/8"),))
    for path in ("+health", "simple/", ""):
        response, _ = await get(elsewhere, path, auth=("alice", "in-wonderland"))
        assert response.code == 403, path
    response, _ = await upload(elsewhere, build_wheel("thing", "1.0"))
    assert response.code == 403  # not 401: who may connect is checked first
    here = await make_proxy(allow_from=(ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.0/8")))
    response, _ = await get(here, "+health")
    assert response.code == 200


@pytest_twisted.ensureDeferred
async def test_repeated_failed_logins_get_a_429_with_retry_after_and_are_logged(make_proxy, users, logged):
    import threading

    proxy = await make_proxy(htpasswd=users, auth="all")
    codes = []
    for _ in range(6):
        response, _ = await get(proxy, "simple/", auth=("alice", "guess"))
        codes.append(response.code)
    assert codes == [401] * 5 + [429]
    response, _ = await get(proxy, "simple/", auth=("alice", "in-wonderland"))  # the right one, too late
    assert response.code == 429 and 0 < int(response.headers.getRawHeaders("Retry-After")[0]) <= 60
    assert any("too many failed logins for user 'alice'" in line for line in logged)
    response, _ = await get(proxy, "simple/", auth=("bob", "builder"))  # another user from here is let in
    assert response.code == 200
    # bcrypt ran in its own pool, not in the reactor's shared one.
    assert any("bcrypt" in thread.name for thread in threading.enumerate())

    response, body = await get(proxy, "simple/", auth=("bob", "b" * 73))
    assert (response.code, body) == (401, b"401 passwords over 72 bytes are refused\n")


def test_the_throttle_forgets_after_its_window():
    from pypiproxy.auth import LoginThrottle

    clock = task.Clock()
    throttle = LoginThrottle(clock, per_user=2, per_address=3, window=60)
    for _ in range(2):
        throttle.failed("10.0.0.1", "alice")
    assert throttle.retry_after("10.0.0.1", "alice") == 60
    assert throttle.retry_after("10.0.0.2", "alice") is None  # per address
    throttle.failed("10.0.0.1", "bob")
    assert throttle.retry_after("10.0.0.1", "carol") == 60  # three names from one address
    clock.advance(61)
    assert throttle.retry_after("10.0.0.1", "alice") is None


@pytest_twisted.ensureDeferred
async def test_options_star_passes_the_gate_like_every_request(make_proxy, users):
    import socket

    from twisted.internet import threads

    def status_of(response: bytes) -> int | None:
        return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.") else None

    def exchange(port: int, raw: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(raw)  # no half-close: Twisted takes it for a lost connection
            received = b""
            while chunk := s.recv(65536):
                received += chunk
        return received

    star = b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    open_proxy = await make_proxy()
    elsewhere = await make_proxy(allow_from=(ipaddress.ip_network("10.0.0.0/8"),))
    logins = await make_proxy(htpasswd=users, auth="all")
    answers = [await threads.deferToThread(exchange, p.port.getHost().port, star)
               for p in (open_proxy, elsewhere, logins)]
    assert [status_of(a) for a in answers] == [200, 403, 401]
    login = b"Authorization: Basic " + base64.b64encode(b"bob:builder") + b"\r\n"
    answer = await threads.deferToThread(exchange, logins.port.getHost().port, star.replace(b"\r\n\r\n", b"\r\n" + login + b"\r\n"))
    assert status_of(answer) == 200
