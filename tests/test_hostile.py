"""Hostile input against a real server: never a 5xx or a traceback, never a file outside
the cache dir, and the server keeps answering."""

from __future__ import annotations

import socket
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings, strategies as st

SEGMENTS = st.one_of(
    st.sampled_from(["simple", "files", "+stats", "+health", "+metrics", "legacy", "..", ".", "",
                     "%2e%2e", "%2F", "%00", "a" * 64, "u" + "b" * 63, "demo", "Demo_Pkg", "x.metadata"]),
    st.text(min_size=1, max_size=30),
    st.binary(min_size=1, max_size=20).map(lambda b: quote(b, safe="")),
    st.integers(min_value=1, max_value=5000).map(lambda n: "n" * n),
)
PATHS = st.lists(SEGMENTS, min_size=0, max_size=6).map(lambda parts: "/" + "/".join(parts))
METHODS = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "FOO"])
HEADERS = st.dictionaries(
    st.sampled_from(["Accept", "Accept-Encoding", "Range", "If-Range", "If-None-Match",
                     "Content-Type", "Authorization", "X-Junk", "Cache-Control"]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=200),
    max_size=5,
)


def exchange(port: int, raw: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, read until the server closes or goes quiet; the response bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        received = b""
        try:
            while chunk := s.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return received


def status_of(response: bytes) -> int | None:
    if not response.startswith(b"HTTP/1."):
        return None
    return int(response.split(b" ", 2)[1])


def assert_sane(response: bytes, what: object) -> None:
    status = status_of(response)
    assert status is None or status < 500, (what, response[:300])
    assert b"Traceback" not in response and b"Error 500" not in response, what


def test_random_requests_never_break_the_server(twistd, tmp_path):
    proxy = twistd(["--no-upstream", "--allow-anonymous-upload"], name="hostile")
    proxy.wait_ready()
    outside_before = sorted(p.name for p in tmp_path.iterdir())

    @settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
    @given(method=METHODS, path=PATHS, headers=HEADERS, body=st.binary(max_size=300))
    def check(method, path, headers, body):
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        raw = ("\r\n".join(lines) + "\r\nConnection: close\r\n\r\n").encode("utf-8", "surrogateescape") + body
        assert_sane(exchange(proxy.port, raw), (method, path, headers))

    check()

    nasty = [
        b"GET /simple/\x00/ HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /files/demo/" + b"a" * 64 + b"/..%2F..%2F..%2Fetc%2Fpasswd HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 70000 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(1000)) + b"\r\n",
        b"POST /legacy/ HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"POST /legacy/ HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n\r\nshort",
        b"POST /legacy/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=zz\r\n"
        b"Content-Length: 20\r\n\r\n--zz\r\nbroken\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,  # TLS to a plain port
        b"GARBAGE\r\n\r\n",
    ]
    for raw in nasty:
        assert_sane(exchange(proxy.port, raw), raw[:60])

    healthy = exchange(proxy.port, b"GET /+health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(healthy) == 200
    assert sorted(p.name for p in tmp_path.iterdir()) == outside_before, "nothing may appear outside the cache dir"
    assert "Traceback" not in proxy.log()


def test_idle_connections_are_closed(twistd):
    import time

    proxy = twistd(["--no-upstream"], name="idle")
    proxy.wait_ready()
    # Twisted's idle timeout is a minute by default; we only check that a half-sent request
    # does not keep a connection after the server's request timeout by asking for a short one.
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(b"GET /+health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        s.settimeout(90)
        assert s.recv(10) == b""  # closed by the server, not by us
        assert time.monotonic() - started < 80
