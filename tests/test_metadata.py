"""PEP 658 metadata is tied to its file: a page of one project cannot poison another's."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys

import pytest_twisted
from twisted.internet import defer, threads

from pypiproxy.cache import files

from support.builders import Built, dist_name
from support.cache import JSON, file_path
from support.clients import run_client
from support.waiting import wait_until


def poisoned_twin(victim, evil_name: str):
    """A file on project ``evil_name``'s page that claims the victim wheel's sha256, and offers
    its own METADATA for it: the victim's, with a dependency added."""
    metadata = victim.metadata.rstrip(b"\n") + b"\nRequires-Dist: totally-malware\n\n"
    return dataclasses.replace(
        victim, filename=f"{evil_name}-1.0-py3-none-any.whl", metadata=metadata, name=evil_name, version="1.0"
    )


async def poison(proxy, fake_index, victim) -> bytes:
    """Have the proxy fetch and keep the evil page's metadata for the victim's file key."""
    evil = poisoned_twin(victim, "evil")
    fake_index.add("evil", evil)
    response, body = await proxy.get(await file_path(proxy, "evil", evil.filename) + ".metadata")
    assert response.code == 200 and b"totally-malware" in body  # evil's own, checked against evil's page
    return evil.metadata


@pytest_twisted.ensureDeferred
async def test_real_pip_never_sees_metadata_another_project_announced(proxy, fake_index, wheels, tmp_path):
    victim = wheels.wheel("victim", "1.0")
    fake_index.add("victim", victim, metadata=False)  # the proxy offers the wheel's own METADATA
    await poison(proxy, fake_index, victim)

    done = await threads.deferToThread(
        run_client,
        [sys.executable, "-m", "pip", "download", "--isolated", "--no-cache-dir", "--disable-pip-version-check",
         "--index-url", proxy.url, "-d", str(tmp_path / "got"), "victim"],
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "totally-malware" not in done.stdout + done.stderr
    assert (tmp_path / "got" / victim.filename).read_bytes() == victim.data

    # Now the wheel is cached, its own METADATA is announced and served, the victim's.
    _, page = await proxy.get("simple/victim/", {"Accept": JSON})
    [entry] = json.loads(page)["files"]
    assert entry["core-metadata"] == {"sha256": victim.metadata_sha256}
    response, body = await proxy.get(await file_path(proxy, "victim", victim.filename) + ".metadata")
    assert response.code == 200 and body == victim.metadata


@pytest_twisted.ensureDeferred
async def test_upstream_metadata_is_kept_per_announced_hash(proxy, fake_index, wheels):
    victim = wheels.wheel("victim", "1.0")
    fake_index.add("victim", victim)  # the upstream offers the right metadata
    evil_metadata = await poison(proxy, fake_index, victim)

    response, body = await proxy.get(await file_path(proxy, "victim", victim.filename) + ".metadata")
    assert response.code == 200 and body == victim.metadata
    assert hashlib.sha256(body).hexdigest() == victim.metadata_sha256
    kept = sorted(p.name for p in proxy.store.files.rglob(f"{victim.sha256}.*"))
    assert kept == sorted(
        f"{victim.sha256}.sha256-{hashlib.sha256(m).hexdigest()}.metadata" for m in (victim.metadata, evil_metadata)
    )


def metadata_bomb(name: str, inflated: int):
    """A real wheel whose METADATA inflates to ``inflated`` bytes (deflated, it is tiny)."""
    import io
    import zipfile

    dist = dist_name(name)
    info = f"{dist}-1.0.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n\n".encode() + b"A" * inflated
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{dist}/__init__.py", b"")
        zf.writestr(f"{info}/METADATA", metadata)
        zf.writestr(f"{info}/WHEEL", b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n\n")
        zf.writestr(f"{info}/RECORD", b"")
    data = buf.getvalue()
    return Built(filename=f"{dist}-1.0-py3-none-any.whl", data=data, sha256=hashlib.sha256(data).hexdigest(),
                 metadata=metadata, name=name, version="1.0")


@pytest_twisted.ensureDeferred
async def test_a_metadata_zip_bomb_is_not_extracted(proxy, fake_index):
    bomb = metadata_bomb("bomb", 64 * 1024 * 1024)
    assert len(bomb.data) < 200_000
    fake_index.add("bomb", bomb, metadata=False)
    path = await file_path(proxy, "bomb", bomb.filename)
    response, body = await proxy.get(path)
    assert response.code == 200 and body == bomb.data  # the wheel itself is served
    await wait_until(lambda: fake_index.count(bomb.filename) >= 1)
    response, body = await proxy.get(path + ".metadata")
    assert response.code == 404, body[:200]
    assert not proxy.store.metadata_path(bomb.sha256).exists()
    _, page = await proxy.get("simple/bomb/", {"Accept": JSON})
    assert "core-metadata" not in json.loads(page)["files"][0]


@pytest_twisted.ensureDeferred
async def test_an_upstream_metadata_body_over_the_cap_is_refused(proxy, fake_index, wheels):
    big = dataclasses.replace(wheels.wheel("big", "1.0"), metadata=b"Metadata-Version: 2.1\n\n" + b"A" * (2 << 20))
    fake_index.add("big", big)
    response, body = await proxy.get(await file_path(proxy, "big", big.filename) + ".metadata")
    assert response.code == 502 and b"over" in body, body[:200]
    assert not list(proxy.store.files.rglob(f"{big.sha256}.*"))


@pytest_twisted.ensureDeferred
async def test_metadata_files_count_towards_the_cache_size(make_proxy, fake_index):
    # 900 KiB of METADATA (under the cap) in a wheel of a few KiB.
    heavy = metadata_bomb("heavy", 900 * 1024)
    fake_index.add("heavy", heavy, metadata=False)
    limit = len(heavy.data) + 100_000
    proxy = await make_proxy(fake_index.url, max_cache_size=limit)
    path = await file_path(proxy, "heavy", heavy.filename)
    response, _ = await proxy.get(path)
    assert response.code == 200
    await wait_until(lambda: proxy.stats["evictions"] >= 1)
    total = sum(p.stat().st_size for p in proxy.store.files.rglob("*") if p.is_file())
    assert total <= limit


@pytest_twisted.ensureDeferred
async def test_metadata_is_extracted_once_no_download_runs_or_at_once_when_asked(proxy, fake_index, wheels,
                                                                                  monkeypatch):
    """Extracting METADATA is CPU work (a zip directory read in Python) that the downloads of a
    cold install would wait for: it waits for them to end, or EXTRACT_DELAY at the most (on a
    busy cache they may never all end). A client asking meanwhile gets it at once."""
    monkeypatch.setattr(files, "EXTRACT_DELAY", 1.0)
    quick, asked = wheels.wheel("quick", "1.0"), wheels.wheel("asked", "1.0")
    slow = wheels.wheel("slow", "1.0", extra_bytes=200_000)
    for built in (quick, asked):
        fake_index.add(built.name, built, metadata=False)
    fake_index.add("slow", slow, behaviour="slow", metadata=False)
    fake_index.slow_chunks, fake_index.slow_delay = 10, 0.3  # about 3 s for the whole file
    paths = {built.name: await file_path(proxy, built.name, built.filename) for built in (quick, asked, slow)}

    slow_download = defer.ensureDeferred(proxy.get(paths["slow"]))
    await wait_until(lambda: fake_index.count(slow.filename) == 1, what="the slow download to start")
    for built in (quick, asked):
        response, body = await proxy.get(paths[built.name])
        assert response.code == 200 and body == built.data
    response, body = await proxy.get(paths["asked"] + ".metadata")
    assert response.code == 200 and body == asked.metadata
    assert not slow_download.called  # still running, so:
    assert not proxy.store.metadata_path(quick.sha256).exists()
    await wait_until(proxy.store.metadata_path(quick.sha256).exists, what="the delay to run out")
    assert not slow_download.called  # extracted while it still ran

    response, body = await slow_download
    assert response.code == 200 and body == slow.data
    await wait_until(proxy.store.metadata_path(slow.sha256).exists, what="the METADATA of the slow one")
    assert proxy.store.metadata_path(quick.sha256).read_bytes() == quick.metadata
