"""``--upstream-credentials FILE``: upstream logins from a netrc file, never in argv; warm and import too."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import pytest_twisted
from twisted.internet import threads

from support.builders import build_wheel
from support.clients import clean_client_env
from support.fakeindex import FakeIndex
from support.processes import REPO

SECRET = "n3trc-pa55"


def command(*argv: str) -> subprocess.CompletedProcess[str]:
    env = clean_client_env()
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "pypiproxy.commands.main", *argv], capture_output=True,
                          text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)


def fetch(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=20) as response:
        return response.status, response.read()


@pytest_twisted.ensureDeferred
async def test_server_warm_and_import_log_in_with_a_netrc_file(twistd, tmp_path):
    from twisted.internet import reactor

    index = FakeIndex(require_auth=("cache", SECRET))
    await index.start(reactor)
    try:
        built = build_wheel("locked", "1.0")
        index.add("locked", built)
        netrc = tmp_path / "upstream.netrc"
        netrc.write_text(f"machine elsewhere.test login x password y\nmachine 127.0.0.1 login cache password {SECRET}\n")

        proxy = twistd(["--upstream", index.url, "--upstream-credentials", str(netrc)], name="netrc")
        await threads.deferToThread(proxy.wait_ready)
        assert SECRET not in " ".join(proxy.argv)
        status, body = await threads.deferToThread(fetch, proxy.url + "locked/")
        assert status == 200 and built.filename.encode() in body

        warmed = await threads.deferToThread(
            command, "warm", "--index", proxy.url, "--no-deps", "-q", "locked")  # through the proxy
        assert warmed.returncode == 0, warmed.stdout + warmed.stderr
        direct = await threads.deferToThread(
            command, "warm", "--index", index.url, "--upstream-credentials", str(netrc), "--no-deps", "-q", "locked")
        assert direct.returncode == 0, direct.stdout + direct.stderr
        refused = await threads.deferToThread(command, "warm", "--index", index.url, "--no-deps", "-q", "locked")
        assert refused.returncode != 0  # without the file: 401

        imported = await threads.deferToThread(
            command, "import", "--cache-dir", str(tmp_path / "moved"), "--from-index", index.url,
            "--upstream-credentials", str(netrc))
        assert imported.returncode == 0, imported.stdout + imported.stderr
        assert (tmp_path / "moved" / "private" / "locked" / built.filename).read_bytes() == built.data
        for done in (direct, imported):
            assert SECRET not in done.stdout + done.stderr
    finally:
        await index.stop()


def test_an_unreadable_or_broken_netrc_is_one_line_and_exit_2(tmp_path):
    broken = tmp_path / "broken.netrc"
    broken.write_text("machine\n")
    for path in (tmp_path / "missing.netrc", broken):
        done = command("import", "--cache-dir", str(tmp_path / "c"), "--from-index", "http://127.0.0.1:1/simple/",
                       "--upstream-credentials", str(path))
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--upstream-credentials" in done.stderr
