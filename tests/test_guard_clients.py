"""The guard as pip and uv meet it: real ``twistd`` processes, real installs."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urljoin

import pytest_twisted
from twisted.internet import threads

from support.clients import get, pip_install, uv_install
from support.fakeindex import days_ago as ago
from support.waiting import block_until

JSON = "application/vnd.pypi.simple.v1+json"


def installed_version(target: Path, module: str) -> str:
    """The VERSION a built test wheel's module says (build_wheel writes it)."""
    return (target / module / "__init__.py").read_text().split('"')[1]


def status_of(url: str) -> tuple[int, str]:
    status, _, body = get(url)
    return status, body.decode("utf-8", "replace")


def file_links(index: str, project: str) -> dict[str, str]:
    """filename -> absolute URL of each file on an index's JSON page."""
    page_url = f"{index}{project}/"
    status, _, body = get(page_url, {"Accept": JSON})
    assert status == 200, body
    return {f["filename"]: urljoin(page_url, f["url"]) for f in json.loads(body)["files"]}


def wait_for_status(url: str, code: int) -> str:
    """Block (in a thread) until ``url`` answers ``code``; the body. The rules files are
    looked at every 2 s, so an edit shows within a few."""
    block_until(lambda: status_of(url)[0] == code, 20.0, 0.25, f"{code} from {url}")
    return status_of(url)[1]


async def install_both(index: str, target: Path, *requirements: str) -> tuple[str, str]:
    """Install with pip and with uv into two targets; each one's stderr for the report."""
    pip = await threads.deferToThread(pip_install, index, target / "pip", *requirements)
    assert pip.returncode == 0, pip.stderr
    uv = await threads.deferToThread(uv_install, index, target / "uv", *requirements)
    assert uv.returncode == 0, uv.stderr
    return pip.stdout, uv.stderr


@pytest_twisted.ensureDeferred
async def test_pip_and_uv_get_the_older_version_through_a_cooldown_and_the_newest_when_exempt(
    twistd, fake_index, wheels, tmp_path
):
    fake_index.add("demo", wheels.wheel("demo", "1.0"), upload_time=ago(30))
    fake_index.add("demo", wheels.wheel("demo", "2.0"), upload_time=ago(1))
    held = twistd(["--upstream", fake_index.url, "--min-age", "7d"], name="held")
    exempt = twistd(["--upstream", fake_index.url, "--min-age", "7d", "--min-age-exempt", "Demo"], name="exempt")
    await threads.deferToThread(held.wait_ready)
    await threads.deferToThread(exempt.wait_ready)

    await install_both(held.url, tmp_path / "held", "demo")
    assert installed_version(tmp_path / "held" / "pip", "demo") == "1.0"
    assert installed_version(tmp_path / "held" / "uv", "demo") == "1.0"
    # Asked for by name, the held release is a resolver error, not a silent older one.
    pinned = await threads.deferToThread(pip_install, held.url, tmp_path / "pinned", "demo==2.0")
    assert pinned.returncode != 0

    await install_both(exempt.url, tmp_path / "exempt", "demo")
    assert installed_version(tmp_path / "exempt" / "pip", "demo") == "2.0"
    assert installed_version(tmp_path / "exempt" / "uv", "demo") == "2.0"


@pytest_twisted.ensureDeferred
async def test_a_release_blocked_after_it_was_cached_is_skipped_by_the_resolvers_and_403_by_url(
    twistd, fake_index, wheels, tmp_path
):
    for version in ("1.0", "1.1", "1.2"):
        fake_index.add("demo", wheels.wheel("demo", version))
    block = tmp_path / "block.txt"
    block.write_text("# compromised releases, one a line\n")
    allow = tmp_path / "allow.txt"
    allow.write_text("demo\n")
    fake_index.add("other", wheels.wheel("other", "1.0"))
    proxy = twistd(["--upstream", fake_index.url, "--block", str(block), "--allow-only", str(allow),
                    "--index-ttl", "0"])
    await threads.deferToThread(proxy.wait_ready)

    await install_both(proxy.url, tmp_path / "before", "demo")
    assert installed_version(tmp_path / "before" / "pip", "demo") == "1.2"  # now cached
    links = await threads.deferToThread(file_links, proxy.url, "demo")
    bad = links["demo-1.2-py3-none-any.whl"]

    block.write_text("# compromised releases, one a line\ndemo==1.2\n")  # no restart
    body = await threads.deferToThread(wait_for_status, bad, 403)
    assert body == f"403 demo-1.2-py3-none-any.whl is blocked by the rule 'demo==1.2' in {block}\n"
    assert (await threads.deferToThread(status_of, bad + ".metadata"))[0] == 403

    await install_both(proxy.url, tmp_path / "after", "demo")
    assert installed_version(tmp_path / "after" / "pip", "demo") == "1.1"
    assert installed_version(tmp_path / "after" / "uv", "demo") == "1.1"

    refused = await threads.deferToThread(pip_install, proxy.url, tmp_path / "other", "other")
    assert refused.returncode != 0
    code, body = await threads.deferToThread(status_of, proxy.url + "other/")
    assert (code, body) == (404, "404 project 'other' is not in this server's --allow-only list\n")
    assert fake_index.count("/simple/other/") == 0

    _, stats = await threads.deferToThread(status_of, proxy.root_url + "+stats")
    counts = json.loads(stats)
    assert counts["blocked_files"] >= 2 and counts["refused_projects"] >= 2
    assert "--block " + str(block) + " changed: added ['demo==1.2'], removed []" in proxy.log()


@pytest_twisted.ensureDeferred
async def test_a_quarantined_project_installs_nothing_and_its_cached_wheel_is_refused(
    twistd, fake_index, wheels, tmp_path
):
    built = wheels.wheel("sus", "1.0")
    fake_index.add("sus", built)
    proxy = twistd(["--upstream", fake_index.url, "--index-ttl", "0"])
    await threads.deferToThread(proxy.wait_ready)
    await install_both(proxy.url, tmp_path / "before", "sus")
    url = (await threads.deferToThread(file_links, proxy.url, "sus"))[built.filename]

    fake_index.set_status("sus", "quarantined", "malware reported")
    # The expired page is answered at once while it is revalidated (stale-while-revalidate):
    # the quarantine shows from the answer after that.
    await threads.deferToThread(block_until, lambda: file_links(proxy.url, "sus") == {}, 10.0, 0.1,
                                what="the quarantine seen")
    for installer in (pip_install, uv_install):
        result = await threads.deferToThread(installer, proxy.url, tmp_path / installer.__name__, "sus")
        assert result.returncode != 0
    assert await threads.deferToThread(file_links, proxy.url, "sus") == {}
    code, body = await threads.deferToThread(status_of, url)
    assert (code, body) == (404, "404 project 'sus' is quarantined by its index: malware reported\n")
    _, page = await threads.deferToThread(status_of, proxy.url + "sus/")
    assert built.filename not in page and 'content="quarantined"' in page
    _, stats = await threads.deferToThread(status_of, proxy.root_url + "+metrics")
    assert "pypiproxy_refused_files_total 1" in stats
