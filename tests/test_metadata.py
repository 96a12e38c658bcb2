"""PEP 658 metadata is tied to its file: a page of one project cannot poison another's."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys

import pytest_twisted
from twisted.internet import threads

from support.cache import JSON, file_path
from support.clients import run_client


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
