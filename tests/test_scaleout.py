"""Scale-out and caches in front: two ``twistd pypiproxy`` processes on one cache dir behind
nginx (etc/nginx-lb.conf), and nginx's proxy_cache in front of one (etc/nginx-cache.conf)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urljoin

import bcrypt
import pytest
import pytest_twisted
from twisted.internet import reactor, threads
from twisted.internet.task import deferLater

from support.cache import cached_files, no_temporaries_left
from support.clients import get, multipart_form, pip_install, uv_install
from support.processes import REPO, free_port, stop_process
from support.waiting import block_until, wait_until

from pypiproxy.cache import FileStore

ETC = REPO / "etc"
JSON = "application/vnd.pypi.simple.v1+json"
HTML = "application/vnd.pypi.simple.v1+html"
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx)")


# --------------------------------------------------------------------------- nginx


def site_config(name: str, replacements: dict[str, str]) -> str:
    """A config from etc/ with its addresses and paths replaced by the test's own."""
    text = (ETC / name).read_text()
    for old, new in replacements.items():
        assert old in text, f"etc/{name} no longer contains {old!r}; update the test"
        text = text.replace(old, new)
    return text


class Nginx:
    """Debian's nginx on a loopback port, with everything it writes in one temporary folder."""

    def __init__(self, directory: Path, site: str, port: int) -> None:
        self.directory = directory
        self.port = port
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        (directory / "site.conf").write_text(site)
        d = directory
        # As root, nginx's workers would otherwise switch to a user who cannot enter the
        # test's private temporary folder.
        user = "user root;\n" if os.geteuid() == 0 else ""
        (directory / "nginx.conf").write_text(
            f"{user}worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n"
            "events { worker_connections 1024; }\n"
            f"http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n"
            f"  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n"
            f"  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  include {d}/site.conf;\n}}\n"
        )
        argv = [NGINX, "-e", str(d / "error.log"), "-c", str(d / "nginx.conf"), "-p", str(d)]
        check = subprocess.run([*argv, "-t"], capture_output=True, text=True, timeout=20)
        assert check.returncode == 0, check.stderr
        self.process = subprocess.Popen([*argv, "-g", "daemon off;"], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def url(self) -> str:
        return self.root_url + "simple/"

    def log(self) -> str:
        return "".join(
            (self.directory / name).read_text() for name in ("error.log", "access.log")
            if (self.directory / name).exists()
        )

    def wait_ready(self, timeout: float = 15.0) -> "Nginx":
        def listens() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited {self.process.returncode}: {self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False

        block_until(listens, timeout, 0.05, what=lambda: f"nginx to come up: {self.log()}")
        return self

    def stop(self) -> None:
        stop_process(self.process)  # SIGTERM: nginx's fast shutdown, workers included


@pytest.fixture
def nginx(tmp_path):
    """A factory: ``nginx(site_text, port)`` starts an nginx; all are stopped afterwards."""
    started: list[Nginx] = []

    def start(site: str, port: int) -> Nginx:
        server = Nginx(tmp_path / f"nginx-{port}", site, port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# --------------------------------------------------------------------------- helpers


def page_files(root: str, project: str) -> dict[str, tuple[str, str]]:
    """filename -> (absolute URL, sha256) from a project's JSON page."""
    status, _, body = get(f"{root}simple/{project}/", {"Accept": JSON})
    assert status == 200, body
    base = f"{root}simple/{project}/"
    return {f["filename"]: (urljoin(base, f["url"]), f["hashes"]["sha256"]) for f in json.loads(body)["files"]}


def fetch_sha256(url: str) -> tuple[int, str, int]:
    """(status, sha256 of the body, length) of a whole GET; a short body raises."""
    request = urllib.request.Request(url)
    with urllib.request.urlopen(request, timeout=30) as response:
        data = response.read()  # raises IncompleteRead if it is shorter than Content-Length
        return response.status, hashlib.sha256(data).hexdigest(), len(data)


def post_upload(root: str, built) -> int:
    content_type, body = multipart_form(built)
    request = urllib.request.Request(root + "legacy/", data=body, method="POST",
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def verify_store(cache_dir: Path) -> dict[str, bytes]:
    """Every file in the store is whole: its name is its sha256 (metadata sidecars aside)."""
    files = {name: data for name, data in cached_files(cache_dir).items() if not name.endswith(".metadata")}
    for key, data in files.items():
        assert hashlib.sha256(data).hexdigest() == key, f"a corrupt file in the store: {key}"
    return files


# --------------------------------------------------------------------------- scale-out


@needs_nginx
@pytest_twisted.ensureDeferred
async def test_two_processes_on_one_cache_dir_behind_nginx(twistd, fake_index, wheels, nginx, tmp_path):
    fake_index.slow_chunks, fake_index.slow_delay = 8, 0.05
    built = {}
    for n in range(5):
        name = f"spread-{n}"
        built[name] = wheels.wheel(name, "1.0", extra_bytes=(n + 1) * 200_000)
        # Some slow (requests arrive while they download), some without upstream metadata
        # (so a process that downloads one offers the METADATA it extracts).
        fake_index.add(name, built[name], behaviour="slow" if n % 2 else "ok", metadata=n < 3)
    # A short TTL: the processes' page copies converge within it (see the test below).
    args = ["--upstream", fake_index.url, "--allow-anonymous-upload", "--index-ttl", "1"]
    a = twistd(args, name="shared")
    b = twistd(args, name="shared")
    cache_dir = a.cache_dir
    assert b.cache_dir == cache_dir
    await threads.deferToThread(a.wait_ready)
    await threads.deferToThread(b.wait_ready)
    port = free_port()
    balancer = nginx(site_config("nginx-lb.conf", {
        "127.0.0.1:3141": f"127.0.0.1:{a.port}",
        "127.0.0.1:3142": f"127.0.0.1:{b.port}",
        "listen 80;": f"listen 127.0.0.1:{port};",
    }), port)
    await threads.deferToThread(balancer.wait_ready)

    # Cold pages, then 50 concurrent cold requests over the 5 files through nginx, and 20
    # straight to the two processes (which then both download the same files), then warm ones.
    roots = [balancer.root_url, a.root_url, b.root_url]

    def storm() -> list[tuple[str, int, str, int]]:
        with ThreadPoolExecutor(max_workers=15) as pool:
            pages = dict(zip(
                [(r, n) for r in roots for n in built],
                pool.map(lambda job: page_files(*job), [(r, n) for r in roots for n in built]),
            ))
        for (root, name), files in pages.items():
            w = built[name]
            assert files == {w.filename: (f"{root}files/{name}/{w.sha256}/{w.filename}", w.sha256)}
        # Each file through nginx ten times, and twice straight to each process.
        jobs = [pages[(balancer.root_url, f"spread-{i % 5}")] for i in range(50)]
        jobs += [pages[((a, b)[i % 2].root_url, f"spread-{i % 5}")] for i in range(20)]
        jobs = [next(iter(files.values()))[0] for files in jobs]

        def one(url: str) -> tuple[str, int, str, int]:
            return (url, *fetch_sha256(url))

        with ThreadPoolExecutor(max_workers=71) as pool:
            watching = pool.submit(watch_store)
            cold = list(pool.map(one, jobs))
            stop.append(True)
            watching.result()
        with ThreadPoolExecutor(max_workers=50) as pool:
            warm = list(pool.map(one, jobs[:50]))
        return cold + warm

    stop: list[bool] = []

    def watch_store() -> None:
        """While the downloads run: whatever the store lists is whole."""
        while not stop:
            verify_store(cache_dir)
            time.sleep(0.01)

    results = await threads.deferToThread(storm)
    expected = {w.sha256: w.size for w in built.values()}
    for url, status, sha256, length in results:
        assert status == 200 and sha256 in expected and length == expected[sha256], url
        assert url.rsplit("/", 2)[-2] == sha256, f"{url} served another file"
    for wheel in built.values():
        # nginx sends a URL to one process; only the direct requests make a second download.
        assert 1 <= fake_index.count(wheel.filename, "GET") <= 2, wheel.filename
    assert set(verify_store(cache_dir)) == set(expected)
    await no_temporaries_left(cache_dir)
    stats = [json.loads((await threads.deferToThread(get, p.root_url + "+stats"))[2]) for p in (a, b)]
    assert sum(s["cache_misses"] for s in stats) <= 10  # at most one download per file and process
    assert sum(s["download_joins"] for s in stats) > 0  # the others joined one

    # Index pages agree whichever process answers, in both formats, once the TTL has passed.
    await deferLater(reactor, 1.2, lambda: None)

    def pages() -> dict[tuple[str, str, str], bytes]:
        found = {}
        for name in built:
            for process in (a, b):
                for fmt in (JSON, HTML):
                    status, _, body = get(f"{process.url}{name}/", {"Accept": fmt})
                    assert status == 200
                    found[(process.url, name, fmt)] = body
        return found

    seen = await threads.deferToThread(pages)
    for name in built:
        for fmt in (JSON, HTML):
            assert seen[(a.url, name, fmt)] == seen[(b.url, name, fmt)], f"{name} {fmt} differs"

    # Uploads: each file sent to both processes at once is stored once (one 200, one 409);
    # a 2 MB one goes through nginx (its body size limit must allow real wheels).
    uploads = [wheels.wheel("corp-lib", f"1.{n}") for n in range(6)]
    big = wheels.wheel("corp-big", "1.0", extra_bytes=2 * 1024 * 1024)

    def send_all() -> list[tuple[str, int]]:
        jobs = [(root, w) for w in uploads for root in (a.root_url, b.root_url)] + [(balancer.root_url, big)]
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            return list(pool.map(lambda job: (job[1].filename, post_upload(*job)), jobs))

    answers = await threads.deferToThread(send_all)
    for wheel in uploads:
        assert sorted(code for filename, code in answers if filename == wheel.filename) == [200, 409]
    assert (big.filename, 200) in answers

    def listed(root: str) -> tuple[list[str], list[str]]:
        status, _, body = get(root + "simple/corp-lib/", {"Accept": JSON})
        assert status == 200, body
        _, _, names = get(root + "simple/", {"Accept": JSON})
        return [f["filename"] for f in json.loads(body)["files"]], [p["name"] for p in json.loads(names)["projects"]]

    for root in (a.root_url, b.root_url, balancer.root_url):
        filenames, projects = await threads.deferToThread(listed, root)
        assert sorted(filenames) == sorted(w.filename for w in uploads), root
        assert {"corp-lib", "corp-big"} <= set(projects)
    stored = sorted(p.name for p in (cache_dir / "private" / "corp-lib").iterdir())
    assert stored == sorted([w.filename + suffix for w in uploads for suffix in ("", ".json", ".metadata")])
    status, digest, _ = await threads.deferToThread(
        fetch_sha256, f"{b.root_url}files/corp-big/{big.sha256}/{big.filename}"
    )
    assert (status, digest) == (200, big.sha256)
    await no_temporaries_left(cache_dir)


@pytest_twisted.ensureDeferred
async def test_a_live_process_keeps_downloading_whoever_cleans_temporaries(twistd, fake_index, wheels):
    """A starting process removes the temporaries of dead processes on its host, and any
    folder untouched for a day (another host's process may run or not: it cannot tell)."""
    wheel = wheels.wheel("later", "1.0")
    fake_index.add("later", wheel)
    running = twistd(["--upstream", fake_index.url], name="shared")
    await threads.deferToThread(running.wait_ready)
    folder = running.cache_dir / "tmp" / f"{socket.gethostname()}.{running.process.pid}"
    day_ago = time.time() - 2 * 86400
    os.utime(folder, (day_ago, day_ago))
    FileStore(running.cache_dir).clean_leftovers()  # what another process does as it starts
    assert not folder.exists()

    url = f"{running.root_url}files/later/{wheel.sha256}/{wheel.filename}"
    status, _, _ = await threads.deferToThread(get, f"{running.url}later/")
    assert status == 200
    status, digest, _ = await threads.deferToThread(fetch_sha256, url)
    assert (status, digest) == (200, wheel.sha256), running.log()


@pytest_twisted.ensureDeferred
async def test_metadata_one_process_extracted_is_offered_by_the_other_after_the_ttl(
    twistd, fake_index, wheels
):
    wheel = wheels.wheel("late-meta", "1.0")
    fake_index.add("late-meta", wheel, metadata=False)
    args = ["--upstream", fake_index.url, "--index-ttl", "1"]
    a, b = twistd(args, name="shared"), twistd(args, name="shared")
    await threads.deferToThread(a.wait_ready)
    await threads.deferToThread(b.wait_ready)

    def core_metadata(process) -> object:
        status, _, body = get(f"{process.url}late-meta/", {"Accept": JSON})
        assert status == 200, body
        return json.loads(body)["files"][0].get("core-metadata")

    assert await threads.deferToThread(core_metadata, a) is None
    assert await threads.deferToThread(core_metadata, b) is None
    url = f"{a.root_url}files/late-meta/{wheel.sha256}/{wheel.filename}"
    assert (await threads.deferToThread(fetch_sha256, url))[:2] == (200, wheel.sha256)
    extracted = a.cache_dir / "files" / wheel.sha256[:2] / f"{wheel.sha256}.whl.metadata"  # taken from the wheel
    await wait_until(extracted.exists, timeout=5, interval=0.05, what=f"{extracted}")
    assert await threads.deferToThread(core_metadata, a) == {"sha256": wheel.metadata_sha256}
    await deferLater(reactor, 1.2, lambda: None)
    # After the TTL the first request is answered from what b holds while it revalidates
    # (stale-while-revalidate); the page rendered after that offers the metadata.
    for _ in range(100):
        if await threads.deferToThread(core_metadata, b) is not None:
            break
        await deferLater(reactor, 0.05, lambda: None)
    assert await threads.deferToThread(core_metadata, b) == {"sha256": wheel.metadata_sha256}
    status, _, data = await threads.deferToThread(get, f"{b.root_url}files/late-meta/{wheel.sha256}/{wheel.filename}.metadata")
    assert (status, data) == (200, wheel.metadata)


# --------------------------------------------------------------------------- a cache in front


@needs_nginx
@pytest_twisted.ensureDeferred
async def test_an_nginx_cache_in_front_keeps_formats_apart_and_serves_pip_and_uv(
    twistd, fake_index, wheels, nginx, tmp_path
):
    fake_index.add("app", wheels.wheel("app", "2.0", requires_dist=["dep-one>=1"]))
    fake_index.add("app", wheels.sdist("app", "1.0"))
    fake_index.add("dep-one", wheels.wheel("dep-one", "1.0"), metadata=False)
    proxy = twistd(["--upstream", fake_index.url])
    await threads.deferToThread(proxy.wait_ready)
    port = free_port()
    front = nginx(site_config("nginx-cache.conf", {
        "127.0.0.1:3141": f"127.0.0.1:{proxy.port}",
        "listen 80;": f"listen 127.0.0.1:{port};",
        "/var/cache/nginx/pypiproxy": str(tmp_path / "nginx-cache"),
    }), port)
    await threads.deferToThread(front.wait_ready)

    def formats() -> list[tuple[str, str, str]]:
        seen = []
        for accept in (JSON, HTML, JSON, HTML, "text/html", JSON):
            status, headers, body = get(front.url + "app/", {"Accept": accept})
            assert status == 200, body
            seen.append((accept, headers["Content-Type"].split(";")[0], headers["X-Cache-Status"]))
            if headers["Content-Type"].startswith(JSON):
                assert json.loads(body)["name"] == "app"
            else:
                assert body.lstrip().lower().startswith(b"<!doctype html")
        # What a login saw is neither taken from nor put in the cache, and says so itself.
        status, headers, _ = get(front.url + "app/", {"Accept": JSON, "Authorization": "Basic YTpi"})
        seen.append((status, headers["X-Cache-Status"], headers["Cache-Control"].split(",")[0]))
        return seen

    seen = await threads.deferToThread(formats)
    assert seen == [
        (JSON, JSON, "MISS"),
        (HTML, HTML, "MISS"),  # Vary: Accept: another variant, not the JSON one
        (JSON, JSON, "HIT"),
        (HTML, HTML, "HIT"),
        ("text/html", "text/html", "MISS"),
        (JSON, JSON, "HIT"),
        (200, "BYPASS", "private"),
    ], front.log()

    pip = await threads.deferToThread(pip_install, front.url, tmp_path / "pip", "app")
    assert pip.returncode == 0, pip.stdout + pip.stderr + front.log()
    assert (tmp_path / "pip" / "app" / "__init__.py").read_text() == 'VERSION = "2.0"\n'
    uv = await threads.deferToThread(uv_install, front.url, tmp_path / "uv", "app")
    assert uv.returncode == 0, uv.stdout + uv.stderr + front.log()
    assert (tmp_path / "uv" / "app" / "__init__.py").read_text() == 'VERSION = "2.0"\n'
    assert (tmp_path / "uv" / "dep_one" / "__init__.py").exists()

    # The files through the cache are the right ones, whole, also from nginx's own copy.
    def files_twice() -> list[tuple[int, str]]:
        found = []
        for _ in range(2):
            for name in ("app", "dep-one"):
                for filename, (url, sha256) in page_files(front.root_url, name).items():
                    status, digest, _ = fetch_sha256(url)
                    found.append((status, digest == sha256))
        return found

    assert set(await threads.deferToThread(files_twice)) == {(200, True)}
    assert verify_store(proxy.cache_dir)


@pytest_twisted.ensureDeferred
async def test_a_page_seen_through_a_login_is_not_offered_to_shared_caches(make_proxy, tmp_path):
    """``Cache-Control: public`` would let a shared cache in front of an --auth all server
    hand a logged-in user's page to anyone (RFC 9111 3.5); without it, it may not."""
    users = tmp_path / "users"
    users.write_text(f"alice:{bcrypt.hashpw(b'pw', bcrypt.gensalt(rounds=4)).decode()}\n")
    proxy = await make_proxy(htpasswd=users, auth="all")
    login = {"Authorization": "Basic " + base64.b64encode(b"alice:pw").decode()}
    for path in ("/simple/", "/simple/nothing-here/"):
        response, _ = await proxy.get(path, login)
        control = (response.headers.getRawHeaders(b"cache-control") or [b""])[0].decode()
        assert "public" not in control, (path, response.code, control)


@pytest_twisted.ensureDeferred
async def test_metadata_announced_for_an_evicted_wheel_is_still_served(make_proxy, fake_index, wheels):
    one = wheels.wheel("evicted-one", "1.0", extra_bytes=300_000)
    two = wheels.wheel("evicted-two", "1.0", extra_bytes=300_000)
    fake_index.add("evicted-one", one, metadata=False)
    fake_index.add("evicted-two", two, metadata=False)
    proxy = await make_proxy(fake_index.url, max_cache_size=400_000)
    extracted = proxy.config.cache_dir / "files" / one.sha256[:2] / f"{one.sha256}.whl.metadata"
    response, _ = await proxy.get(f"/files/evicted-one/{one.sha256}/{one.filename}")
    assert response.code == 200
    await wait_until(extracted.exists, timeout=2, what=f"{extracted}")
    response, _ = await proxy.get(f"/files/evicted-two/{two.sha256}/{two.filename}")  # evicts one
    assert response.code == 200 and proxy.stats["evictions"] == 1
    _, body = await proxy.get("/simple/evicted-one/", {"Accept": JSON})
    announced = json.loads(body)["files"][0].get("core-metadata")
    response, data = await proxy.get(f"/files/evicted-one/{one.sha256}/{one.filename}.metadata")
    # Either it is no longer announced, or what is announced is served.
    assert announced is None or (response.code, data) == (200, one.metadata)


@needs_nginx
@pytest_twisted.ensureDeferred
async def test_behind_nginx_a_cached_file_is_sent_by_nginx_with_accel_redirect(twistd, fake_index, wheels, nginx):
    built = wheels.wheel("accel", "1.0", extra_bytes=3_000_000)
    fake_index.add("accel", built)
    proxy = twistd(["--upstream", fake_index.url, "--accel-redirect", "/_pypiproxy_cache"], name="accel")
    await threads.deferToThread(proxy.wait_ready)
    port = free_port()
    front = nginx(site_config("nginx-lb.conf", {
        "127.0.0.1:3141": f"127.0.0.1:{proxy.port}",
        "server 127.0.0.1:3142 max_fails=1 fail_timeout=5s;\n": "",
        "listen 80;": f"listen 127.0.0.1:{port};",
        "alias /var/lib/pypiproxy/;": f"alias {proxy.cache_dir}/;",
    }), port)
    await threads.deferToThread(front.wait_ready)
    (url, sha256), = (await threads.deferToThread(page_files, front.root_url, "accel")).values()

    def fetch(headers: dict[str, str] | None = None, method: str = "GET"):
        request = urllib.request.Request(url, headers=headers or {}, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()

    status, headers, body = await threads.deferToThread(fetch)  # cold: pypiproxy streams it
    assert (status, hashlib.sha256(body).hexdigest(), headers["X-Cache"]) == (200, sha256, "MISS")
    status, headers, body = await threads.deferToThread(fetch)  # cached: nginx sends it
    assert (status, hashlib.sha256(body).hexdigest()) == (200, sha256), front.log()
    assert headers.get_all("ETag") == [f'"{sha256}"'] and headers["X-Cache"] == "HIT"
    assert headers.get_all("Cache-Control") == ["max-age=31536000, immutable"]
    assert headers["Content-Type"] == "application/octet-stream"
    assert "X-Accel-Redirect" not in headers
    status, headers, part = await threads.deferToThread(fetch, {"Range": "bytes=100-199"})
    assert (status, part, headers["Content-Range"]) == (206, built.data[100:200], f"bytes 100-199/{built.size}")
    status, headers, empty = await threads.deferToThread(fetch, None, "HEAD")
    assert (status, empty, headers["Content-Length"]) == (200, b"", str(built.size))
    _, _, stats = await threads.deferToThread(get, proxy.root_url + "+stats")
    assert json.loads(stats)["accel_redirects"] == 3
    # The internal location is no door into the cache directory for clients.
    inside = f"{front.root_url}_pypiproxy_cache/files/{sha256[:2]}/{sha256}"
    status, _, _ = await threads.deferToThread(get, inside)
    assert status == 404
