"""``pypiproxy verify`` finds corrupted cache entries by hash, removes them, and they come back."""

from __future__ import annotations

import subprocess
import sys

import pytest_twisted
from twisted.internet import threads

from support.cache import cached_files, file_path
from support.processes import REPO
from support.waiting import wait_until


def verify(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pypiproxy.commands.main", "verify", *argv],
        capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


@pytest_twisted.ensureDeferred
async def test_corrupt_file_is_named_removed_and_fetched_again(proxy, fake_index, wheels):
    good = wheels.wheel("good", "1.0")
    hurt = wheels.wheel("hurt", "1.0", extra_bytes=10_000)
    for built in (good, hurt):
        fake_index.add(built.name, built)
        await proxy.get(await file_path(proxy, built.name, built.filename))
    clean = await threads.deferToThread(verify, "--cache-dir", str(proxy.config.cache_dir))
    assert clean.returncode == 0, clean
    assert "verified 2 files" in clean.stdout

    damaged = proxy.store.path(hurt.sha256)
    data = bytearray(damaged.read_bytes())
    data[5000] ^= 0xFF
    damaged.write_bytes(bytes(data))
    result = await threads.deferToThread(verify, "--cache-dir", str(proxy.config.cache_dir))
    assert result.returncode == 1
    assert f"corrupt: {damaged}" in result.stdout
    assert str(proxy.store.path(good.sha256)) not in result.stdout
    assert not damaged.exists() and proxy.store.path(good.sha256).exists()

    response, body = await proxy.get(await file_path(proxy, hurt.name, hurt.filename))
    assert response.code == 200 and body == hurt.data
    assert fake_index.count(f"/files/hurt/{hurt.filename}", "GET") == 2


def test_not_a_cache_dir_is_one_line_and_exit_2(tmp_path):
    result = verify("--cache-dir", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "nowhere" in result.stderr


@pytest_twisted.ensureDeferred
async def test_tampered_metadata_is_named_and_removed(proxy, fake_index, wheels):
    offered = wheels.wheel("offered", "1.0")  # the upstream offers its .metadata
    own = wheels.wheel("own", "1.0")  # the proxy takes it from the wheel
    fake_index.add(offered.name, offered)
    fake_index.add(own.name, own, metadata=False)
    response, _ = await proxy.get(await file_path(proxy, offered.name, offered.filename) + ".metadata")
    assert response.code == 200
    await proxy.get(await file_path(proxy, own.name, own.filename))
    await wait_until(lambda: proxy.store.metadata_path(own.sha256).exists())
    clean = await threads.deferToThread(verify, "--cache-dir", str(proxy.config.cache_dir))
    assert clean.returncode == 0 and "2 metadata files: 0 bad" in clean.stdout, clean

    upstream_copy = next(p for p in proxy.store.files.rglob(f"{offered.sha256}.sha256-*.metadata"))
    for path in (upstream_copy, proxy.store.metadata_path(own.sha256)):
        path.write_bytes(path.read_bytes() + b"Requires-Dist: totally-malware\n")
    result = await threads.deferToThread(verify, "--cache-dir", str(proxy.config.cache_dir))
    assert result.returncode == 1
    assert f"bad metadata: {upstream_copy}" in result.stdout
    assert f"bad metadata: {proxy.store.metadata_path(own.sha256)}" in result.stdout
    assert not any(name.endswith(".metadata") for name in cached_files(proxy.config.cache_dir))
