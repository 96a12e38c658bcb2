"""Three tiers chained, as real processes, with real pip, uv and twine.

A = internet-facing private index (TLS, --auth all, a private package uploaded with twine,
upstream = the fake public index); B = company cache (upstream = A over https with
credentials and --upstream-ca); C = dev box (upstream = B over plain http).
"""

from __future__ import annotations

import hashlib
import json
import re
import ssl
import sys
import urllib.request
from pathlib import Path
from urllib.parse import urljoin

import bcrypt
import pytest
import pytest_twisted
import trustme
from twisted.internet import threads

from support.clients import pip_install, run_client, uv_install
from support.processes import free_port
from support.waiting import wait_until

JSON = "application/vnd.pypi.simple.v1+json"
TWINE = str(Path(sys.executable).with_name("twine"))


def fetch(url: str, accept: str = "*/*", context: ssl.SSLContext | None = None,
          auth: tuple[str, str] | None = None) -> tuple[str, bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept})
    if auth:
        import base64

        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        return response.headers["Content-Type"], response.read()


def file_links(index: str, project: str, **kwargs) -> dict[str, str]:
    """filename -> absolute URL of each file on an index's JSON page."""
    page_url = f"{index}{project}/"
    _, body = fetch(page_url, JSON, **kwargs)
    return {f["filename"]: urljoin(page_url, f["url"]) for f in json.loads(body)["files"]}


@pytest.fixture
def tls(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = {"ca": tmp_path / "ca.pem", "key": tmp_path / "key.pem", "cert": tmp_path / "cert.pem"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    context = ssl.create_default_context(cafile=str(paths["ca"]))
    return paths, context


@pytest_twisted.ensureDeferred
async def test_three_tiers_chain_for_pip_and_uv_and_survive_the_top_going_away(
    twistd, fake_index, wheels, tls, tmp_path
):
    paths, context = tls
    user, password = "deploy", "s3cret-Pa55"
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}\n")

    # The public world: an app with a dependency, one of whose versions is yanked.
    public = {
        "pubapp": [wheels.wheel("pubapp", "2.0", requires_dist=["pubdep>=1"]), wheels.wheel("pubapp", "1.0")],
        "pubdep": [wheels.wheel("pubdep", "1.0"), wheels.sdist("pubdep", "1.0")],
    }
    for project, files in public.items():
        for built in files:
            fake_index.add(project, built)
    yanked = wheels.wheel("pubdep", "1.1")
    fake_index.add("pubdep", yanked, yanked="broken release")

    port = free_port()
    a = twistd(
        ["--upstream", fake_index.url, "--htpasswd", str(htpasswd), "--auth", "all"],
        name="a", scheme="https", port=port,
        listen=f"ssl:{port}:privateKey={paths['key']}:certKey={paths['cert']}:interface=127.0.0.1",
    )
    await threads.deferToThread(a.wait_ready, 20.0, context)

    # A private package, published with twine the way a team would.
    private = wheels.wheel("privpkg", "1.0", requires_dist=["pubapp"])
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / private.filename).write_bytes(private.data)
    upload = await threads.deferToThread(run_client, [
        TWINE, "upload", "--non-interactive", "--repository-url", a.root_url + "legacy/",
        "--cert", str(paths["ca"]), "-u", user, "-p", password, str(dist / private.filename),
    ])
    assert upload.returncode == 0, upload.stdout + upload.stderr

    b = twistd(
        ["--upstream", f"https://{user}:{password}@127.0.0.1:{a.port}/simple/", "--upstream-ca", str(paths["ca"]),
         "--index-ttl", "0"],
        name="b",
    )
    await threads.deferToThread(b.wait_ready)
    c = twistd(["--upstream", b.url, "--index-ttl", "0"], name="c")
    await threads.deferToThread(c.wait_ready)

    installed = await threads.deferToThread(pip_install, c.url, tmp_path / "pip", "privpkg")
    assert installed.returncode == 0, installed.stderr
    for module in ("privpkg", "pubapp", "pubdep"):
        assert (tmp_path / "pip" / module / "__init__.py").exists()
    assert 'VERSION = "1.0"' in (tmp_path / "pip" / "pubdep" / "__init__.py").read_text(), "yanked 1.1 must not be chosen"

    installed = await threads.deferToThread(uv_install, c.url, tmp_path / "uv", "privpkg")
    assert installed.returncode == 0, installed.stderr
    assert 'VERSION = "2.0"' in (tmp_path / "uv" / "pubapp" / "__init__.py").read_text()
    assert 'VERSION = "1.0"' in (tmp_path / "uv" / "pubdep" / "__init__.py").read_text()

    # Every tier serves the same bytes, with the same metadata and the same yank.
    a_auth = {"context": context, "auth": (user, password)}
    for project, built in [("privpkg", private), ("pubapp", public["pubapp"][0]), ("pubdep", public["pubdep"][0])]:
        for index, kwargs in [(a.url, a_auth), (b.url, {}), (c.url, {})]:
            links = await threads.deferToThread(file_links, index, project, **kwargs)
            _, body = await threads.deferToThread(fetch, links[built.filename], "*/*", **kwargs)
            assert hashlib.sha256(body).hexdigest() == built.sha256, (index, built.filename)
            _, metadata = await threads.deferToThread(fetch, links[built.filename] + ".metadata", "*/*", **kwargs)
            assert metadata == built.metadata, (index, built.filename)
    _, page = await threads.deferToThread(fetch, c.url + "pubdep/", JSON)
    entries = {f["filename"]: f for f in json.loads(page)["files"]}
    assert entries[yanked.filename]["yanked"] == "broken release"
    content_type, html = await threads.deferToThread(fetch, c.url + "pubdep/", "text/html")
    assert content_type.startswith("text/html")
    assert re.search(rf'data-yanked="broken release"[^>]*>{re.escape(yanked.filename)}<', html.decode())
    assert f"#sha256={yanked.sha256}".encode() in html

    # Clients resolved through PEP 658 metadata, not by downloading wheels to read them.
    # (Access lines reach the server's log in batches, within half a second.)
    await wait_until(lambda: c.log().count('.metadata HTTP/1.1" 200') >= 6, what="the metadata requests logged")
    log = c.log()
    for built in (private, public["pubapp"][0], public["pubdep"][0]):
        for client in ("pip/", "uv/"):
            assert re.search(rf'{re.escape(built.filename)}\.metadata HTTP/1.1" 200 .*"{client}', log), (
                built.filename, client)

    # The private tier refuses anonymous reads, and never lets B's password out.
    with pytest.raises(urllib.error.HTTPError) as refused:
        await threads.deferToThread(fetch, a.url + "privpkg/", JSON, context)
    assert refused.value.code == 401
    for tier in (b, c):
        assert password not in tier.log()

    # The top goes away: C still installs everything it has seen, with pip and with uv.
    a.stop()
    await fake_index.stop()
    again = await threads.deferToThread(pip_install, c.url, tmp_path / "pip-offline", "privpkg")
    assert again.returncode == 0, again.stderr + c.log()[-3000:]
    again = await threads.deferToThread(uv_install, c.url, tmp_path / "uv-offline", "privpkg")
    assert again.returncode == 0, again.stderr + c.log()[-3000:]


@pytest_twisted.ensureDeferred
async def test_warm_through_a_chain_then_install_offline(twistd, fake_index, wheels, tmp_path):
    fake_index.add("top", wheels.wheel("top", "1.2", requires_dist=["middle>=1"]))
    fake_index.add("top", wheels.wheel("top", "2.0"))
    fake_index.add("middle", wheels.wheel("middle", "1.5", requires_dist=["bottom"]))
    fake_index.add("bottom", wheels.wheel("bottom", "3.0"))
    fake_index.add("ranged", wheels.wheel("ranged", "0.9"))
    fake_index.add("ranged", wheels.wheel("ranged", "1.4"))
    fake_index.add("ranged", wheels.wheel("ranged", "2.1"))
    fake_index.add("nevermind", wheels.wheel("nevermind", "1.0"))
    (tmp_path / "more.txt").write_text("ranged>=1,<2  # a range\n")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "top==1.2\n"
        "-r more.txt\n"
        'nevermind; python_version < "3"\n'
    )
    b = twistd(["--upstream", fake_index.url], name="b")
    await threads.deferToThread(b.wait_ready)
    c = twistd(["--upstream", b.url, "--index-ttl", "0"], name="c")
    await threads.deferToThread(c.wait_ready)

    warmed = await threads.deferToThread(run_client, [
        sys.executable, "-m", "pypiproxy.commands.main", "warm", "--quiet", "-r", str(requirements), "--index", c.url,
    ])
    assert warmed.returncode == 0, warmed.stdout + warmed.stderr
    assert fake_index.count("/files/nevermind/") == 0, "a marker that does not hold is not warmed"

    b.stop()
    await fake_index.stop()
    installed = await threads.deferToThread(
        pip_install, c.url, tmp_path / "offline", "-r", str(requirements)
    )
    assert installed.returncode == 0, installed.stderr + c.log()[-3000:]
    versions = {m: (tmp_path / "offline" / m / "__init__.py").read_text() for m in ("top", "middle", "bottom", "ranged")}
    assert versions["top"] == 'VERSION = "1.2"\n'
    assert versions["ranged"] == 'VERSION = "1.4"\n'
