"""Pages for people in a real browser (headless Chromium) against a real twistd, with real pip."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import pytest_twisted
from twisted.internet import threads

from support.browser import Browser
from support.cache import add_private
from support.clients import clean_client_env

HOSTILE = """# Release notes

<script>document.title = 'pwned-by-script'</script>

Look: <img src="x" onerror="document.title='pwned-by-img'" alt="a picture">

<a href="javascript:document.title='pwned-by-link'">click me</a> or [me](javascript:document.title='pwned').

Type `<script>` to begin.
"""


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def cache_through(proxy, project: str) -> None:
    """Download a project's files through the proxy (what pip does), so they are held."""
    import json

    page = json.loads(urllib.request.urlopen(urllib.request.Request(
        proxy.url + project + "/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}), timeout=30).read())
    for entry in page["files"]:
        fetch(urllib.parse.urljoin(proxy.url + project + "/", entry["url"]))


async def started(twistd, args: list[str], name: str = "proxy"):
    proxy = twistd(args, name=name)
    await threads.deferToThread(proxy.wait_ready)
    return proxy


def in_thread(fn, *args):
    return threads.deferToThread(fn, *args)


@pytest_twisted.ensureDeferred
async def test_the_landing_page_shows_a_pip_conf_that_real_pip_installs_with(browser: Browser, twistd, fake_index,
                                                                             wheels, tmp_path):
    fake_index.add("demo", wheels.wheel("demo", "1.0"))
    proxy = await started(twistd, ["--upstream", fake_index.url])

    await in_thread(browser.open, proxy.root_url)
    assert browser.driver.title == "Home · pypiproxy"
    heading = [e for e in browser.css(".snippet") if e.find_element("css selector", "h3").text == "pip.conf"]
    pip_conf = heading[0].find_element("css selector", "pre").text
    # The stylesheet came from this origin and applies (a CSP allowing only 'self' let it in).
    assert browser.css("header.top")[0].value_of_css_property("display") == "flex"
    shots = await in_thread(browser.screenshot, "landing")

    config = tmp_path / "pip.conf"
    config.write_text(pip_conf + "\n")
    assert f"index-url = {proxy.url}" in pip_conf
    env = clean_client_env()
    env["PIP_CONFIG_FILE"] = str(config)
    done = await in_thread(lambda: subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check",
         "--target", str(tmp_path / "target"), "demo"],
        capture_output=True, text=True, env=env, timeout=180, stdin=subprocess.DEVNULL))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "target" / "demo" / "__init__.py").exists()
    # Through the proxy, not around it: the upstream saw its one download.
    assert [r.path for r in fake_index.requests if r.path.endswith(".whl")] == ["/files/demo/demo-1.0-py3-none-any.whl"]
    assert all(shot.stat().st_size > 10_000 for shot in shots)


@pytest_twisted.ensureDeferred
async def test_search_in_the_browser_finds_a_private_and_a_cached_project(browser: Browser, twistd, fake_index,
                                                                          wheels, tmp_path):
    from selenium.webdriver.common.keys import Keys

    cache_dir = tmp_path / "proxy"
    add_private(cache_dir, wheels.wheel("corp-widget", "1.0", summary="The company's widgets"))
    fake_index.add("widget-cached", wheels.wheel("widget-cached", "1.0"))
    fake_index.add("other", wheels.wheel("other", "1.0"))
    proxy = await started(twistd, ["--upstream", fake_index.url])
    await in_thread(fetch, proxy.url + "widget-cached/")

    def search() -> list[tuple[str, str]]:
        browser.open(proxy.root_url)
        box = browser.css("#q-big")[0]
        box.send_keys("widget")
        box.send_keys(Keys.ENTER)
        browser.wait_url(proxy.root_url + "+search?q=widget")
        return [(li.find_element("css selector", "a").text, li.find_element("css selector", ".badge").text.lower())
                for li in browser.css("ol.results li")]

    found = await in_thread(search)
    assert browser.driver.current_url.endswith("/+search?q=widget")
    assert found[:2] == [("corp-widget", "private"), ("widget-cached", "cached")]
    assert "other" not in [name for name, _ in found]
    await in_thread(browser.screenshot, "search")

    # A result leads to the project's page.

    def follow_first_result() -> None:
        browser.css("ol.results li a")[0].click()
        browser.wait_url(proxy.root_url + "project/corp-widget/")

    await in_thread(follow_first_result)
    assert browser.driver.current_url == proxy.root_url + "project/corp-widget/"
    assert "The company's widgets" in browser.text()
    await in_thread(browser.screenshot, "project-private")


@pytest_twisted.ensureDeferred
async def test_a_project_page_shows_a_yanked_version_with_its_reason_and_the_summary(browser: Browser, twistd,
                                                                                      fake_index, wheels):
    fake_index.add("demo", wheels.wheel("demo", "1.0"), yanked="broken build: do not use",
                   upload_time="2024-01-02T03:04:05Z")
    fake_index.add("demo", wheels.wheel("demo", "1.1", summary="Demonstrates things", requires_python=">=3.8",
                                        requires_dist=["attrs>=21", "idna; extra == 'web'"],
                                        description="Demo\n====\n\nThe *demo* package.\n"),
                   upload_time="2024-03-04T05:06:07Z")
    proxy = await started(twistd, ["--upstream", fake_index.url])
    await in_thread(cache_through, proxy, "demo")

    await in_thread(browser.open, proxy.root_url + "project/Demo/")
    assert browser.driver.current_url == proxy.root_url + "project/demo/"  # redirected, normalised
    versions = [e.get_attribute("id") for e in browser.css("section.version")]
    assert versions == ["v1.1", "v1.0"]
    yanked = browser.css("#v1\\.0")[0].text
    assert "yanked" in yanked.lower() and "broken build: do not use" in yanked
    assert "yanked" not in browser.css("#v1\\.1")[0].text.lower()
    assert browser.css("p.summary")[0].text == "Demonstrates things"
    text = browser.text()
    assert "attrs>=21" in text and ">=3.8" in text and "2024-03-04 05:06 UTC" in text
    assert browser.css(".description em")[0].text == "demo"
    assert f"pip install --index-url {proxy.url} demo" in text
    await in_thread(browser.screenshot, "project")


@pytest_twisted.ensureDeferred
async def test_a_hostile_description_shows_as_text_and_runs_nothing(browser: Browser, twistd, fake_index, wheels):
    fake_index.add("evil-readme", wheels.wheel(
        "evil-readme", "1.0", summary="<script>document.title='pwned-by-summary'</script>",
        description=HOSTILE, description_content_type="text/markdown"))
    fake_index.add("evil-text", wheels.wheel(
        "evil-text", "1.0", description="<script>document.title='pwned'</script> javascript:alert(1)",
        description_content_type="text/plain"))
    proxy = await started(twistd, ["--upstream", fake_index.url])
    for name in ("evil-readme", "evil-text"):
        await in_thread(cache_through, proxy, name)

    await in_thread(browser.open, proxy.root_url + "project/evil-readme/")
    assert browser.driver.title == "evil-readme · pypiproxy"  # no script changed it
    assert browser.css("script") == []
    description = browser.css(".description")[0]
    assert "<script>document.title = 'pwned-by-script'</script>" in description.text
    assert "<script>" in browser.css(".description code")[0].text
    assert browser.css("p.summary")[0].text == "<script>document.title='pwned-by-summary'</script>"
    for link in browser.css("a"):
        assert not (link.get_attribute("href") or "").startswith("javascript:")
    assert browser.css(".description img") == []
    await in_thread(browser.screenshot, "hostile-markdown")
    # Clicking what was a javascript: link goes nowhere and runs nothing.
    words = [e for e in browser.css(".description span") if e.text == "click me"]
    await in_thread(words[0].click)
    assert browser.driver.title == "evil-readme · pypiproxy"

    await in_thread(browser.open, proxy.root_url + "project/evil-text/")
    assert browser.driver.title == "evil-text · pypiproxy"
    assert "<script>document.title='pwned'</script> javascript:alert(1)" in browser.css(".description")[0].text
    await in_thread(browser.screenshot, "hostile-text")


@pytest_twisted.ensureDeferred
async def test_an_unknown_project_is_a_404_page(browser: Browser, twistd, fake_index):
    proxy = await started(twistd, ["--upstream", fake_index.url])
    await in_thread(browser.open, proxy.root_url + "project/no-such-thing/")
    assert "404" in browser.driver.title
    assert "no project named 'no-such-thing'" in browser.text()
    await in_thread(browser.screenshot, "not-found")
