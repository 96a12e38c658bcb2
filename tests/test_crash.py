"""Crash safety: a proxy killed with SIGKILL mid-download or mid-upload, restarted on the
same cache dir, never serves or lists a partial file, cleans the dead process's temporaries
at start, and fetches (or accepts) the file again whole."""

from __future__ import annotations

import hashlib
import json
import socket
import urllib.request
from pathlib import Path
from urllib.parse import urljoin

import pytest_twisted
from twisted.internet import threads

from support.cache import cached_files
from support.clients import get, multipart_form, twine_upload
from support.waiting import wait_until

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


def temporaries_of(cache_dir: Path, pid: int) -> Path:
    """The folder where the process ``pid`` keeps its temporary files."""
    return cache_dir / "tmp" / f"{socket.gethostname()}.{pid}"


def partial_size(folder: Path) -> int:
    return max((p.stat().st_size for p in folder.glob("*.part")), default=0)


@pytest_twisted.ensureDeferred
async def test_a_download_cut_by_sigkill_leaves_nothing_and_is_fetched_whole_after_restart(
    twistd, fake_index, wheels
):
    built = wheels.wheel("slowpoke", "1.0", extra_bytes=1024 * 1024)
    fake_index.slow_chunks, fake_index.slow_delay = 40, 0.1  # four seconds for the whole file
    fake_index.add("slowpoke", built, behaviour="slow")
    first = twistd(["--upstream", fake_index.url], name="cache")
    await threads.deferToThread(first.wait_ready)
    status, _, body = await threads.deferToThread(get, first.url + "slowpoke/", JSON)
    assert status == 200, body
    path = urljoin("/simple/slowpoke/", json.loads(body)["files"][0]["url"])

    # A client starts the download; the proxy dies while the bytes are on their way.
    received: list[bytes] = []
    promised: list[int] = []

    def download_until_cut() -> None:
        try:
            with urllib.request.urlopen(first.root_url + path.lstrip("/"), timeout=20) as response:
                promised.append(int(response.headers["Content-Length"]))
                while chunk := response.read(16 * 1024):
                    received.append(chunk)
        except OSError:
            pass  # a reset instead of an end: a cut too

    client = threads.deferToThread(download_until_cut)
    folder = temporaries_of(first.cache_dir, first.process.pid)
    await wait_until(lambda: partial_size(folder) > 100_000, timeout=15, what="half a download on disk")
    await threads.deferToThread(first.kill)
    await client
    got = b"".join(received)
    # A client sees a short body against the Content-Length it was promised: a failed transfer.
    assert promised == [built.size] and len(got) < built.size
    assert got == built.data[: len(got)]
    assert built.sha256 not in cached_files(first.cache_dir)
    assert list(folder.glob("*.part")), "the dead process's partial download is on disk"

    # Restarted on the same directory: the leftovers go, the file is fetched again whole.
    fake_index.entry(built.filename).behaviour = "ok"
    second = twistd(["--upstream", fake_index.url], name="cache")
    await threads.deferToThread(second.wait_ready)
    assert not folder.exists()
    assert f"removed leftover temporary files {folder}" in second.log()
    status, _, body = await threads.deferToThread(get, second.url + "slowpoke/", JSON)
    assert [f["filename"] for f in json.loads(body)["files"]] == [built.filename]
    status, headers, data = await threads.deferToThread(get, second.root_url + path.lstrip("/"))
    assert (status, headers["X-Cache"], hashlib.sha256(data).hexdigest()) == (200, "MISS", built.sha256)
    assert fake_index.count(built.filename, "GET") == 2
    assert cached_files(second.cache_dir) == {built.sha256: built.data}
    assert list(temporaries_of(second.cache_dir, second.process.pid).iterdir()) == []


@pytest_twisted.ensureDeferred
async def test_an_upload_cut_by_sigkill_leaves_nothing_and_can_be_sent_again(twistd, wheels, tmp_path):
    built = wheels.wheel("corp-upload", "1.0", extra_bytes=2 * 1024 * 1024)
    args = ["--no-upstream", "--allow-anonymous-upload"]
    first = twistd(args, name="index")
    await threads.deferToThread(first.wait_ready)

    # Half the body is sent, then the server dies while it holds the upload on disk.
    content_type, body = multipart_form(built)
    headers = (
        "POST /legacy/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    sender = socket.create_connection(("127.0.0.1", first.port), timeout=10)
    try:
        sender.sendall(headers + body[: len(body) // 2])
        folder = temporaries_of(first.cache_dir, first.process.pid)
        await wait_until(lambda: partial_size(folder) > 500_000, timeout=15, what="half an upload on disk")
        await threads.deferToThread(first.kill)
    finally:
        sender.close()
    private = first.cache_dir / "private"
    assert not list(private.glob("*/*")), "nothing of a cut upload enters the store"
    assert list(folder.glob("*.part"))

    second = twistd(args, name="index")
    await threads.deferToThread(second.wait_ready)
    assert not folder.exists()
    status, _, _ = await threads.deferToThread(get, second.url + "corp-upload/", JSON)
    assert status == 404
    _, _, names = await threads.deferToThread(get, second.url, JSON)
    assert "corp-upload" not in {p["name"] for p in json.loads(names)["projects"]}

    # The same file, sent whole by twine, is accepted (no 409 for a ghost) and served whole.
    done = await threads.deferToThread(twine_upload, second.root_url + "legacy/", "", "", built.save(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    status, _, page = await threads.deferToThread(get, second.url + "corp-upload/", JSON)
    files = json.loads(page)["files"]
    assert [(f["filename"], f["hashes"]["sha256"]) for f in files] == [(built.filename, built.sha256)]
    status, _, data = await threads.deferToThread(get, urljoin(second.url + "corp-upload/", files[0]["url"]))
    assert (status, hashlib.sha256(data).hexdigest()) == (200, built.sha256)


def test_a_process_restarted_with_the_same_host_name_and_pid_removes_its_leftovers(tmp_path):
    """A container restarted in place gets the crashed process's host name and pid back."""
    from pypiproxy.cache import FileStore

    crashed = FileStore(tmp_path)
    leftover = crashed.temporary("0" * 64)
    leftover.write_bytes(b"half a download")
    restarted = FileStore(tmp_path)
    assert restarted.tmp == crashed.tmp
    assert restarted.clean_leftovers() == [restarted.tmp]
    assert list(restarted.tmp.iterdir()) == [] and restarted.tmp.is_dir()
