"""Faults on our side: a full disk while caching, a full disk while storing pages."""

from __future__ import annotations

import errno
import json

import pytest_twisted
from twisted.web.client import ResponseNeverReceived

from test_files import cached_files, file_path, temporaries

JSON = "application/vnd.pypi.simple.v1+json"


class FillingFile:
    """A temporary file on a disk that fills up after ``room`` bytes."""

    def __init__(self, path, room: int) -> None:
        self._file = open(path, "wb", buffering=0)
        self._room = room

    def write(self, data: bytes) -> int:
        if len(data) > self._room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room -= len(data)
        return self._file.write(data)

    def close(self) -> None:
        self._file.close()


@pytest_twisted.ensureDeferred
async def test_disk_full_while_caching_aborts_cleanly_and_the_server_keeps_serving(proxy, fake_index, wheels, monkeypatch):
    from test_files import timed_get

    big = wheels.wheel("big", "1.0", extra_bytes=600_000)
    small = wheels.wheel("small", "1.0")
    fake_index.add("big", big)
    fake_index.add("small", small)
    big_path = await file_path(proxy, "big", big.filename)
    monkeypatch.setattr(proxy.store, "create", lambda path: FillingFile(path, 100_000))

    try:
        response, timer, _ = await timed_get(proxy, big_path)
    except ResponseNeverReceived:
        pass  # aborted before the headers: a failed transfer too
    else:
        if response.code == 200:
            assert timer.failed is not None, "a download the disk could not hold must not look complete"
            assert timer.received <= 100_000
        else:
            assert response.code == 502
    assert cached_files(proxy) == [] and temporaries(proxy) == []

    monkeypatch.undo()
    response, body = await proxy.get(await file_path(proxy, "small", small.filename))
    assert response.code == 200 and body == small.data
    response, body = await proxy.get(big_path)
    assert response.code == 200 and body == big.data


@pytest_twisted.ensureDeferred
async def test_disk_full_while_storing_a_page_still_answers(proxy, fake_index, wheels, monkeypatch):
    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(proxy.store, "write", full)
    fake_index.add("demo", wheels.wheel("demo", "1.0"))
    response, body = await proxy.get("simple/demo/", {"Accept": JSON})
    assert response.code == 200 and json.loads(body)["name"] == "demo"
