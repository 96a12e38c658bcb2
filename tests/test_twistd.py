"""End to end: a real ``twistd pypiproxy`` process, a real pip, an upstream that goes away."""

from __future__ import annotations

import pytest_twisted
from twisted.internet import threads

from support.clients import pip_install
from support.waiting import wait_until


@pytest_twisted.ensureDeferred
async def test_pip_installs_with_a_dependency_then_again_with_the_upstream_stopped(
    twistd, fake_index, wheels, tmp_path
):
    fake_index.add("app", wheels.wheel("app", "2.0", requires_dist=["dep-one>=1"]))
    fake_index.add("app", wheels.wheel("app", "1.0"))
    fake_index.add("dep-one", wheels.wheel("dep-one", "1.0"))
    fake_index.add("dep-one", wheels.sdist("dep-one", "0.5"))
    proxy = twistd(["--upstream", fake_index.url, "--index-ttl", "0"])
    await threads.deferToThread(proxy.wait_ready)

    first = await threads.deferToThread(pip_install, proxy.url, tmp_path / "one", "app")
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "one" / "app" / "__init__.py").read_text() == 'VERSION = "2.0"\n'
    assert (tmp_path / "one" / "dep_one" / "__init__.py").exists()
    wheel_fetches = [r for r in fake_index.requests if r.path.endswith("/app-2.0-py3-none-any.whl")]
    assert len(wheel_fetches) == 1

    await fake_index.stop()
    second = await threads.deferToThread(pip_install, proxy.url, tmp_path / "two", "app")
    assert second.returncode == 0, second.stderr + proxy.log()
    assert (tmp_path / "two" / "app" / "__init__.py").read_text() == 'VERSION = "2.0"\n'
    assert "serving stale page for app" in proxy.log()
    # One line per upstream fetch: URL, status, bytes, seconds.
    assert f"upstream fetch {fake_index.url}app/ 200" in proxy.log()


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


@pytest_twisted.ensureDeferred
async def test_a_client_that_does_not_read_does_not_grow_memory(twistd, fake_index, wheels, tmp_path):
    import hashlib
    import json
    import socket
    import urllib.request
    from urllib.parse import urljoin

    size = 80 * 1024 * 1024
    built = wheels.wheel("big", "1.0", extra_bytes=size)
    fake_index.add("big", built)
    proxy = twistd(["--upstream", fake_index.url], name="memory")
    await threads.deferToThread(proxy.wait_ready)

    def page() -> str:
        request = urllib.request.Request(proxy.url + "big/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return urljoin(proxy.url + "big/", json.load(response)["files"][0]["url"])

    url = await threads.deferToThread(page)
    before = rss_bytes(proxy.process.pid)
    stalled = socket.create_connection(("127.0.0.1", proxy.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    path = url.split(str(proxy.port), 1)[1]
    stalled.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    try:
        cached = proxy.cache_dir / "files" / built.sha256[:2] / built.sha256
        await wait_until(cached.exists, timeout=30, interval=0.05, what=lambda: f"{cached}: {proxy.log()}")
        assert cached.exists(), proxy.log()
        grown = rss_bytes(proxy.process.pid) - before
        assert grown < size / 4, f"RSS grew by {grown / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB file"

        def read_all() -> bytes:
            stalled.settimeout(30)
            data = b""
            while b"\r\n\r\n" not in data:
                data += stalled.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            digest = hashlib.sha256(body)
            received = len(body)
            while received < built.size:
                chunk = stalled.recv(1 << 20)
                if not chunk:
                    break
                digest.update(chunk)
                received += len(chunk)
            return digest.hexdigest()

        assert await threads.deferToThread(read_all) == built.sha256
    finally:
        stalled.close()


@pytest_twisted.ensureDeferred
async def test_access_log_can_go_to_a_file_of_its_own(twistd, tmp_path):
    import urllib.request

    access = tmp_path / "access.log"
    proxy = twistd(["--no-upstream", "--access-log", str(access)], name="access")
    await threads.deferToThread(proxy.wait_ready)
    await threads.deferToThread(lambda: urllib.request.urlopen(proxy.root_url + "+stats", timeout=10).read())
    await wait_until(lambda: "GET /+stats HTTP/1.1" in access.read_text(), timeout=5, interval=0.05,
                     what="the request in the access log")
    assert '"GET /+stats HTTP/1.1" 200' in access.read_text()
    assert "GET /+stats" not in proxy.log()


@pytest_twisted.ensureDeferred
async def test_by_default_access_lines_go_to_the_server_log_in_batches(twistd):
    import urllib.request

    proxy = twistd(["--no-upstream"], name="default-access")
    await threads.deferToThread(proxy.wait_ready)
    for _ in range(3):
        await threads.deferToThread(lambda: urllib.request.urlopen(proxy.root_url + "+stats", timeout=10).read())
    await wait_until(lambda: proxy.log().count('"GET /+stats HTTP/1.1" 200') == 3, what="three access lines")
    assert "[pypiproxy.access" in proxy.log()
