"""The private tier: upload checks, the store, private names shadowing upstream ones, twine."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urljoin

import pytest
import pytest_twisted
from twisted.internet import threads

from support.builders import Built, build_sdist, build_wheel
from support.clients import htpasswd, pip_install, run_client, twine_upload, upload

from pypiproxy.private import (
    AlreadyExists,
    Distribution,
    PrivateStore,
    Refused,
    Team,
    check_distribution,
)

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


# check_distribution: the checks uploads and imports share ------------------------------------


def test_a_wheel_yields_its_metadata_and_requires_python(tmp_path):
    built = build_wheel("Some.Thing", "1.0", requires_python=">=3.9")
    dist = check_distribution(built.save(tmp_path), built.filename, name="some-thing", version="1.0.0")
    assert dist == Distribution(
        filename=built.filename,
        project="some-thing",
        version="1.0",
        sha256=built.sha256,
        size=built.size,
        requires_python=">=3.9",
        metadata=built.metadata,
    )


def test_an_sdist_yields_requires_python_from_pkg_info_but_no_pep658_metadata(tmp_path):
    built = build_sdist("thing", "2.0", requires_python=">=3.10")
    dist = check_distribution(built.save(tmp_path), built.filename, digests={"sha256": built.sha256})
    assert (dist.project, dist.version, dist.requires_python, dist.metadata) == ("thing", "2.0", ">=3.10", None)


@pytest.mark.parametrize(
    "claim, reason",
    [
        ({"name": "other"}, "not of 'other'"),
        ({"version": "1.1"}, "is version 1.0, not 1.1"),
        ({"version": "one"}, "not a valid version"),
        ({"digests": {"sha256": "0" * 64}}, "sha256 digest mismatch"),
        ({"digests": {"md5": "0" * 32}}, "md5 digest mismatch"),
    ],
)
def test_claims_that_disagree_with_the_file_are_refused(tmp_path, claim, reason):
    built = build_wheel("thing", "1.0")
    with pytest.raises(Refused) as refused:
        check_distribution(built.save(tmp_path), built.filename, **claim)
    assert reason in refused.value.reason
    assert refused.value.code == 400


@pytest.mark.parametrize(
    "filename",
    ["thing-1.0.exe", "thing.whl", "../thing-1.0.tar.gz", "thing-1.0-py3-none-any.whl.zip ", ".thing-1.0.tar.gz"],
)
def test_names_that_are_not_wheels_or_sdists_are_refused(tmp_path, filename):
    path = tmp_path / "file"
    path.write_bytes(b"x")
    with pytest.raises(Refused, match="not a valid"):
        check_distribution(path, filename)


def test_a_wheel_that_is_not_a_zip_or_names_another_project_is_refused(tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(Refused, match="not a valid wheel"):
        check_distribution(junk, "thing-1.0-py3-none-any.whl")
    other = build_wheel("other", "1.0")
    with pytest.raises(Refused, match="its metadata names the project 'other'"):
        check_distribution(other.save(tmp_path), "thing-1.0-py3-none-any.whl")
    with pytest.raises(Refused, match="not a valid sdist"):
        check_distribution(junk, "thing-1.0.tar.gz")


# The store -------------------------------------------------------------------------------


def new_store(root: Path) -> PrivateStore:
    tmp = root / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    counter = iter(range(10**6))
    return PrivateStore(root / "private", lambda name: tmp / f"{name}.{next(counter)}.part")


def add(store: PrivateStore, built: Built) -> None:
    temporary = store.temporary(built.filename)
    temporary.write_bytes(built.data)
    store.add(temporary, check_distribution(temporary, built.filename))


def test_the_store_never_overwrites_and_other_processes_see_new_files(tmp_path):
    store, other = new_store(tmp_path), new_store(tmp_path)
    assert other.names() == ()
    first = build_wheel("thing", "1.0")
    add(store, first)
    impostor = build_wheel("thing", "1.0", summary="different bytes")
    with pytest.raises(AlreadyExists, match="File already exists"):
        add(store, impostor)
    assert (tmp_path / "private" / "thing" / first.filename).read_bytes() == first.data
    # A second store object on the same folder (another process) sees the file at once.
    assert other.names() == ("thing",)
    [stored] = other.project("thing")
    assert (stored.sha256, stored.metadata) == (first.sha256, first.metadata)
    assert other.by_key(first.sha256) == stored


def test_a_file_a_crash_left_without_sidecar_is_invisible_until_repaired(tmp_path):
    store = new_store(tmp_path)
    built = build_wheel("thing", "1.0")
    folder = tmp_path / "private" / "thing"
    folder.mkdir(parents=True)
    (folder / built.filename).write_bytes(built.data)
    assert store.names() == () and store.project("thing") == ()
    assert store.repair() == [folder / built.filename]
    assert store.names() == ("thing",)
    assert store.project("thing")[0].sha256 == built.sha256


# Uploads through the HTTP API, in process --------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_an_upload_is_listed_with_hash_requires_python_and_metadata_and_served(memory):
    proxy = memory.proxy(allow_anonymous_upload=True)
    built = build_wheel("Private-Thing", "1.0", requires_python=">=3.8")
    response, body = await upload(proxy, built)
    assert response.code == 200, body
    sdist = build_sdist("private-thing", "1.0")
    response, body = await upload(proxy, sdist, path="")  # twine may post to the root too
    assert response.code == 200, body

    response, body = await proxy.get("/simple/private-thing/", JSON)
    page = json.loads(body)
    assert [f["filename"] for f in page["files"]] == [built.filename, sdist.filename]
    wheel = page["files"][0]
    assert wheel["hashes"] == {"sha256": built.sha256}
    assert wheel["requires-python"] == ">=3.8"
    assert wheel["core-metadata"] == {"sha256": built.metadata_sha256}
    assert "core-metadata" not in page["files"][1]
    _, html = await proxy.get("/simple/private-thing/")
    assert f"#sha256={built.sha256}".encode() in html
    assert b'data-requires-python="&gt;=3.8"' in html
    _, names = await proxy.get("/simple/", JSON)
    assert {"name": "private-thing"} in json.loads(names)["projects"]

    file_url = urljoin("/simple/private-thing/", wheel["url"])
    response, data = await proxy.get(file_url)
    assert (response.code, data) == (200, built.data)
    response, data = await proxy.get(file_url, {"Range": "bytes=0-9"})
    assert (response.code, data) == (206, built.data[:10])
    response, data = await proxy.get(file_url + ".metadata")
    assert (response.code, data) == (200, built.metadata)
    assert proxy.stats["uploads"] == 2
    # Kept apart from the cache, so eviction never sees it.
    assert (proxy.config.cache_dir / "private" / "private-thing" / built.filename).read_bytes() == built.data
    assert not any((proxy.config.cache_dir / "files").rglob("*.whl"))


@pytest_twisted.ensureDeferred
async def test_bad_uploads_get_a_400_or_409_with_a_reason_and_leave_nothing(memory):
    proxy = memory.proxy(allow_anonymous_upload=True)
    built = build_wheel("thing", "1.0")
    cases = [
        ({"sha256_digest": "0" * 64}, "sha256 digest mismatch"),
        ({"md5_digest": "0" * 32}, "md5 digest mismatch"),
        ({"filename": "thing-1.0.exe"}, "not a valid wheel or sdist file name"),
        ({"name": "other"}, "not of 'other'"),
        ({"version": "2.0"}, "is version 1.0, not 2.0"),
        ({"filetype": "sdist"}, "does not fit the file name"),
        ({":action": "submit"}, "unsupported :action"),
    ]
    for fields, reason in cases:
        response, body = await upload(proxy, built, **fields)
        assert response.code == 400, (fields, body)
        assert reason in response.phrase.decode(), fields  # twine prints the status line
        assert reason in body
    response = await proxy.treq.post(proxy.root_url + "legacy/", data=b"x=1")
    assert response.code == 400
    assert b"multipart/form-data" in response.phrase
    await response.content()
    assert (await proxy.get("/simple/thing/"))[0].code == 404
    assert list(proxy.store.tmp.iterdir()) == []

    response, _ = await upload(proxy, built)
    assert response.code == 200
    response, body = await upload(proxy, build_wheel("thing", "1.0", summary="other bytes"))
    assert response.code == 409
    assert response.phrase == f"File already exists: {built.filename}".encode()
    _, data = await proxy.get(f"/files/thing/{built.sha256}/{built.filename}")
    assert data == built.data


@pytest_twisted.ensureDeferred
async def test_a_private_name_shadows_the_upstream_one(memory, memory_index):
    public = build_wheel("shadowed", "9.0")
    memory_index.add("shadowed", public)
    memory_index.add("elsewhere", build_wheel("elsewhere", "1.0"))
    proxy = memory.proxy(memory_index.url, allow_anonymous_upload=True)
    response, body = await proxy.get("/simple/shadowed/", JSON)
    assert [f["filename"] for f in json.loads(body)["files"]] == [public.filename]

    private = build_wheel("shadowed", "1.0")
    response, body = await upload(proxy, private)
    assert response.code == 403 and "an admin must run 'pypiproxy claim shadowed' first" in body
    Team.open(proxy.config.cache_dir).claims.claim("shadowed", "admin", time.time())
    response, _ = await upload(proxy, private)
    assert response.code == 200
    for headers in (JSON, {}):
        response, body = await proxy.get("/simple/shadowed/", headers)
        assert private.filename.encode() in body
        assert public.filename.encode() not in body
    response, _ = await proxy.get(f"/files/shadowed/{public.sha256}/{public.filename}")
    assert response.code == 404
    assert memory_index.count(public.filename) == 0
    _, names = await proxy.get("/simple/", JSON)
    listed = [p["name"] for p in json.loads(names)["projects"]]
    assert sorted(listed) == ["elsewhere", "shadowed"]


def _send_oversized(port: int, chunked: bool, limit: int) -> tuple[bytes, float]:
    """Send an upload's headers (and for chunked, a bit more than the limit) and read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        head = b"POST /legacy/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        if chunked:
            s.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
            chunk = b"--b\r\n" + b"x" * 16384
            for _ in range(limit // len(chunk) + 2):
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        else:
            s.sendall(head + b"Content-Length: %d\r\n\r\n" % (10 * 1024**3))
        started = time.monotonic()
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = s.recv(4096)
            if not data:
                break
            answer += data
        return answer, time.monotonic() - started


@pytest_twisted.ensureDeferred
async def test_an_oversized_upload_is_refused_before_its_body_is_read(make_proxy):
    limit = 64 * 1024
    proxy = await make_proxy(allow_anonymous_upload=True, max_upload_size=limit)
    port = proxy.port.getHost().port
    # 10 GiB announced, nothing sent: the answer cannot have waited for the body.
    answer, seconds = await threads.deferToThread(_send_oversized, port, False, limit)
    assert answer.startswith(b"HTTP/1.1 413 upload too large: the limit is 65536 bytes\r\n"), answer
    assert seconds < 5
    # Without a length, the limit holds as the body arrives.
    answer, _ = await threads.deferToThread(_send_oversized, port, True, limit)
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    assert list(proxy.store.tmp.iterdir()) == []
    # An upload under the limit still works.
    response, body = await upload(proxy, build_wheel("small", "1.0"))
    assert response.code == 200, body


# Real twine and pip against a real twistd --------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_twine_uploads_and_pip_installs_through_the_proxy(twistd, fake_index, tmp_path):
    fake_index.add("public-dep", build_wheel("public-dep", "1.0"))
    users = htpasswd(tmp_path / "users", alice="wonder-land")
    wheel = build_wheel("corp-app", "1.0", requires_dist=["public-dep"])
    sdist = build_sdist("corp-app", "1.0")
    files = [wheel.save(tmp_path), sdist.save(tmp_path)]
    proxy = twistd(["--upstream", fake_index.url, "--htpasswd", str(users)])
    await threads.deferToThread(proxy.wait_ready)

    done = await threads.deferToThread(twine_upload, proxy.root_url + "legacy/", "alice", "wonder-land", *files)
    assert done.returncode == 0, done.stdout + done.stderr

    again = await threads.deferToThread(twine_upload, proxy.root_url, "alice", "wonder-land", files[1])
    assert again.returncode != 0
    assert "409" in again.stdout and f"File already exists: {sdist.filename}" in again.stdout

    wrong = await threads.deferToThread(twine_upload, proxy.root_url, "alice", "guess", build_wheel("corp-app", "2.0").save(tmp_path))
    assert wrong.returncode != 0 and "401" in wrong.stdout
    anonymous = await threads.deferToThread(twine_upload, proxy.root_url, "", "", tmp_path / "corp_app-2.0-py3-none-any.whl")
    assert anonymous.returncode != 0 and "401" in anonymous.stdout
    assert not list(proxy.cache_dir.glob("private/corp-app/corp_app-2.0*"))

    # uv publish speaks the same API (and streams its body chunked).
    newer = build_wheel("corp-app", "1.1", requires_dist=["public-dep"]).save(tmp_path)
    published = await threads.deferToThread(run_client, [
        str(Path(sys.executable).with_name("uv")), "publish", "--no-config", "--trusted-publishing", "never",
        "--publish-url", proxy.root_url + "legacy/", "-u", "alice", "-p", "wonder-land", str(newer),
    ])
    assert published.returncode == 0, published.stdout + published.stderr

    installed = await threads.deferToThread(pip_install, proxy.url, tmp_path / "target", "corp-app")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert (tmp_path / "target" / "corp_app" / "__init__.py").read_text() == 'VERSION = "1.1"\n'
    assert (tmp_path / "target" / "public_dep").is_dir()
    assert "audit: upload by alice project='corp-app' filename='corp_app-1.0-py3-none-any.whl'" in proxy.log()
    assert "wonder-land" not in proxy.log()


@pytest_twisted.ensureDeferred
async def test_upload_metadata_over_a_mebibyte_is_a_400_and_the_rest_stays_out_of_sidecars(make_proxy):
    proxy = await make_proxy(allow_anonymous_upload=True)
    huge = build_wheel("amplified", "1.0", summary="x" * (2 << 20))  # deflates to a few KiB
    assert len(huge.data) < 50_000
    response, body = await upload(proxy, huge)
    assert response.code == 400 and "METADATA is over 1048576 bytes" in body, body
    assert not (proxy.config.cache_dir / "private" / "amplified").exists() or not any(
        (proxy.config.cache_dir / "private" / "amplified").iterdir()
    )

    large = [build_wheel("amplified", f"1.{n}", summary=f"{n}" * (900 * 1024)) for n in range(3)]
    for built in large:
        response, body = await upload(proxy, built)
        assert response.code == 200, body
    folder = proxy.config.cache_dir / "private" / "amplified"
    for built in large:
        assert (folder / f"{built.filename}.json").stat().st_size < 4096  # metadata kept apart
        assert (folder / f"{built.filename}.metadata").read_bytes() == built.metadata
    _, page = await proxy.get("/simple/amplified/", JSON)
    files = json.loads(page)["files"]
    assert [f["core-metadata"] for f in files] == [{"sha256": b.metadata_sha256} for b in large]
    response, data = await proxy.get(urljoin("/simple/amplified/", files[1]["url"]) + ".metadata")
    assert (response.code, data) == (200, large[1].metadata)


def test_a_sidecar_with_inline_metadata_from_an_older_version_still_serves_it(tmp_path):
    import base64

    store = PrivateStore(tmp_path / "private", lambda name: tmp_path / f"{name}.tmp")
    built = build_wheel("old-thing", "1.0")
    folder = tmp_path / "private" / "old-thing"
    folder.mkdir(parents=True)
    (folder / built.filename).write_bytes(built.data)
    (folder / f"{built.filename}.json").write_text(json.dumps({
        "filename": built.filename, "project": "old-thing", "sha256": built.sha256, "size": built.size,
        "requires_python": None, "upload_time": "2020-01-01T00:00:00.000000Z",
        "metadata_sha256": built.metadata_sha256, "metadata": base64.b64encode(built.metadata).decode(),
    }))
    [stored] = store.project("old-thing")
    assert stored.entry().metadata_hashes == {"sha256": built.metadata_sha256}
    assert stored.metadata == built.metadata
