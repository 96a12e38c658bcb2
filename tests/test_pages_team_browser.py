"""Owners' and users' actions in a real browser: yank through the page (real pip skips it), a token
made on /+tokens working with real twine until it is revoked on the same page."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pytest_twisted
from twisted.internet import threads

from support.browser import Browser
from support.builders import Built, build_wheel
from support.clients import htpasswd, pip_install, twine_upload


def write(folder: Path, built: Built) -> Path:
    path = folder / built.filename
    path.write_bytes(built.data)
    return path


def in_thread(fn, *args):
    return threads.deferToThread(fn, *args)


async def started(twistd, tmp_path):
    users = htpasswd(tmp_path / "users", alice="alice-pw", bob="bob-pw")
    proxy = twistd(["--no-upstream", "--htpasswd", str(users)])
    await in_thread(proxy.wait_ready)
    return proxy


def log_in(browser: Browser, proxy, user: str, password: str, then: str) -> None:
    """What typing into the browser's prompt does: /+login asks (401), the browser answers
    with the login (here from the URL, as headless Chromium shows no prompt) and keeps it
    for the site; /+login sends it on to ``then``, which is opened again without it."""
    browser.open(proxy.root_url.replace("http://", f"http://{user}:{password}@") + "+login?"
                 + urlencode({"next": then}))
    assert browser.driver.current_url.endswith("@" + proxy.root_url.split("//")[1] + then.lstrip("/"))
    browser.open(proxy.root_url + then.lstrip("/"))


@pytest_twisted.ensureDeferred
async def test_an_owner_yanks_a_version_on_its_page_and_real_pip_skips_it(browser: Browser, twistd, tmp_path):
    proxy = await started(twistd, tmp_path)
    for version in ("1.0", "2.0"):
        done = await in_thread(twine_upload, proxy.root_url, "alice", "alice-pw",
                               write(tmp_path, build_wheel("corp-tool", version, summary="Company tooling")))
        assert done.returncode == 0, done.stdout + done.stderr

    await in_thread(browser.open, proxy.root_url + "project/corp-tool/")
    assert browser.css("form.manage") == []  # not logged in: nothing to press
    assert [a.text for a in browser.css("nav.who a")] == ["Log in"]

    await in_thread(log_in, browser, proxy, "alice", "alice-pw", "/project/corp-tool/")
    assert browser.driver.current_url == proxy.root_url + "project/corp-tool/"
    assert browser.css("nav.who .user")[0].text == "alice"

    def yank() -> None:
        form = browser.css("#v2\\.0 form.manage")[0]
        form.find_element("css selector", "input[name=reason]").send_keys("eats data")
        form.find_element("css selector", "button").click()
        browser.wait_for(lambda driver: "Yanked: eats data" in browser.wait_css("#v2\\.0")[0].text)

    await in_thread(yank)
    assert browser.driver.current_url == proxy.root_url + "project/corp-tool/#v2.0"
    version = browser.css("#v2\\.0")[0].text
    assert "Yanked: eats data" in version and "Unyank 2.0" in version
    await in_thread(browser.screenshot, "yanked-by-owner")

    done = await in_thread(pip_install, proxy.url, tmp_path / "latest", "corp-tool")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "latest" / "corp_tool" / "__init__.py").read_text() == 'VERSION = "1.0"\n'
    pinned = await in_thread(pip_install, proxy.url, tmp_path / "pinned", "corp-tool==2.0")
    assert pinned.returncode == 0 and "eats data" in pinned.stdout + pinned.stderr


@pytest_twisted.ensureDeferred
async def test_a_token_made_on_the_tokens_page_uploads_with_twine_until_revoked_there(browser: Browser, twistd,
                                                                                     tmp_path):
    proxy = await started(twistd, tmp_path)
    await in_thread(log_in, browser, proxy, "alice", "alice-pw", "/+tokens")
    assert browser.driver.current_url == proxy.root_url + "+tokens"
    assert "You have no tokens." in browser.text()

    def create() -> str:
        browser.css("#description")[0].send_keys("CI of corp-app")
        browser.css("form.create-token button")[0].click()
        return browser.wait_css("#new-token")[0].text

    secret = await in_thread(create)
    assert secret.startswith("pypx-")
    await in_thread(browser.screenshot, "token-created")

    done = await in_thread(twine_upload, proxy.root_url, "__token__", secret,
                           write(tmp_path, build_wheel("corp-app", "1.0")))
    assert done.returncode == 0, done.stdout + done.stderr

    await in_thread(browser.open, proxy.root_url + "+tokens")
    assert secret not in browser.driver.page_source  # shown once only
    token_id = secret.split("-")[1]
    assert "CI of corp-app" in browser.css(f"#token-{token_id}")[0].text
    await in_thread(browser.screenshot, "tokens")

    def revoke() -> None:
        browser.css(f"#token-{token_id} form.revoke button")[0].click()
        browser.wait_for(lambda driver: not browser.css(f"#token-{token_id}"))

    await in_thread(revoke)
    assert browser.driver.current_url == proxy.root_url + "+tokens"
    assert "You have no tokens." in browser.text()

    refused = await in_thread(twine_upload, proxy.root_url, "__token__", secret,
                              write(tmp_path, build_wheel("corp-app", "1.1")))
    assert refused.returncode != 0
    assert "401" in refused.stdout + refused.stderr or "403" in refused.stdout + refused.stderr
