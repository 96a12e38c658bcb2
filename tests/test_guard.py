"""The supply-chain guard: rules files, the decisions, the tier, and a proxy that applies them."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import pytest_twisted
from twisted.internet import defer, task, threads
from twisted.internet.defer import Deferred
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from zope.interface import implementer

from pypiproxy import simple
from pypiproxy.cache import CachedPage, ProjectNotFound
from pypiproxy.guard import Clearance, Guard, GuardedPages, RuleError, WatchedFile, parse_allow, parse_block
from pypiproxy.interfaces import IProjectPages
from pypiproxy.stats import Stats

from support.cache import file_path
from support.clients import get, upload
from support.fakeindex import FakeIndex, days_ago as ago, upload_time as iso
from support.waiting import block_until
from support.warming import file_requests, warm

JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
DAY = 86400.0


def inline(f, *args, **kwargs):
    return defer.maybeDeferred(f, *args, **kwargs)


def result(coroutine):
    """The outcome of a coroutine that never waits (the tier over stub pages)."""
    outcome = []
    defer.ensureDeferred(coroutine).addBoth(outcome.append)
    (value,) = outcome
    if isinstance(value, Failure):
        value.raiseException()
    return value


# --------------------------------------------------------------------------- the rules files


def test_block_lines_are_requirements_and_match_names_and_versions():
    rules = parse_block(
        "# compromised releases\n"
        "Evil_Pkg\n"
        "litellm==1.82.7   # the bad one\n"
        "foo<2\n"
        "bar==1.*\n"
        "\n",
        "block.txt",
    )
    assert [r.line for r in rules] == ["Evil_Pkg", "litellm==1.82.7", "foo<2", "bar==1.*"]
    evil, litellm, foo, bar = rules
    assert evil.matches("evil-pkg", "0.1") and evil.matches("evil-pkg", None)
    assert litellm.matches("litellm", "1.82.7") and not litellm.matches("litellm", "1.82.8")
    assert foo.matches("foo", "1.9") and foo.matches("foo", "2.0rc1") is False
    assert foo.matches("foo", "1.5b1") and not foo.matches("foo", "2.0")
    assert bar.matches("bar", "1.4.2") and not bar.matches("bar", "2.0")
    assert not litellm.matches("other", "1.82.7")


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ('foo; python_version < "3.9"', "markers mean nothing"),
        ("foo @ https://example.invalid/foo.whl", "a URL means nothing"),
        ("foo[extra]==1", "extras mean nothing"),
        ("foo===", "not a requirement"),
    ],
)
def test_a_bad_block_line_is_an_error_naming_file_and_line(line, says):
    with pytest.raises(RuleError) as caught:
        parse_block(f"ok\n{line}\n", "block.txt")
    assert str(caught.value).startswith("block.txt:2: ") and says in str(caught.value)


def test_allow_lines_are_project_names_normalised():
    assert parse_allow("Django\nrequests # http\n\nzope.interface\n", "allow") == {
        "django", "requests", "zope-interface"
    }
    with pytest.raises(RuleError, match=r"allow:1: not a project name: 'not a name'"):
        parse_allow("not a name\n", "allow")


def test_a_watched_file_is_reread_when_it_changes_and_keeps_its_rules_when_it_breaks(tmp_path):
    path = tmp_path / "block.txt"
    path.write_text("evil\n")
    clock = task.Clock()
    watched = WatchedFile(path, parse_block, clock, "--block", interval=2.0)
    first = watched.current()
    assert [r.line for r in first] == ["evil"]

    path.write_text("evil\nfoo==1.0\n")
    assert watched.current() is first  # not looked at before the interval is over
    clock.advance(2.0)
    with capturedLogs() as events:
        second = watched.current()
    assert [r.line for r in second] == ["evil", "foo==1.0"]
    (changed,) = events
    assert changed["added"] == ["foo==1.0"] and changed["removed"] == []
    clock.advance(2.0)
    assert watched.current() is second  # unchanged: the same object, no log line

    path.write_text("evil\nfoo==1.0; os_name == 'nt'\n")
    clock.advance(2.0)
    with capturedLogs() as events:
        assert watched.current() is second
    (error,) = events
    assert "block.txt:2: markers mean nothing" in error["error"]

    path.write_text("other\n")
    clock.advance(2.0)
    assert [r.line for r in watched.current()] == ["other"]


# --------------------------------------------------------------------------- the decisions


def entry(filename: str, uploaded: float | None = None, **fields) -> simple.FileEntry:
    return simple.FileEntry(
        filename, f"https://files.example/{filename}", {"sha256": filename.encode().hex()[:64].ljust(64, "0")},
        upload_time=iso(uploaded) if uploaded is not None else None, **fields,
    )


NOW = 1_800_000_000.0


def demo_page() -> simple.ProjectPage:
    return simple.ProjectPage(
        "demo",
        (
            entry("demo-1.0.tar.gz", NOW - 30 * DAY),
            entry("demo-1.0-py3-none-any.whl", NOW - 30 * DAY),
            entry("demo-2.0-py3-none-any.whl", NOW - 1 * DAY),
            entry("demo-2.0.tar.gz", None),  # no upload time: offered
            entry("demo-3.0-py3-none-any.whl", NOW - 2 * DAY),
        ),
        versions=("1.0", "2.0", "3.0"),
    )


def test_min_age_holds_new_files_and_their_versions_until_they_come_of_age():
    clock = task.Clock()
    clock.advance(NOW)
    guard = Guard(clock, min_age=7 * DAY)
    applied = guard.apply(demo_page())
    assert [e.filename for e in applied.page.files] == ["demo-1.0.tar.gz", "demo-1.0-py3-none-any.whl",
                                                         "demo-2.0.tar.gz"]
    assert applied.page.versions == ("1.0", "2.0")  # 2.0 keeps its sdist; 3.0 has nothing left
    held = applied.withheld["demo-3.0-py3-none-any.whl"]
    assert held.status == 404 and held.counter == "held_files"
    assert held.reason == (
        f"demo-3.0-py3-none-any.whl is held back by --min-age 7d: uploaded {iso(NOW - 2 * DAY)}, "
        f"available from {datetime.fromtimestamp(NOW + 5 * DAY, timezone.utc):%Y-%m-%dT%H:%M:%SZ}"
    )
    assert applied.valid_until == NOW + 5 * DAY  # the 3.0 wheel comes of age first

    clock.advance(5 * DAY)
    later = guard.apply(demo_page())
    assert "demo-3.0-py3-none-any.whl" in [e.filename for e in later.page.files]
    assert list(later.withheld) == ["demo-2.0-py3-none-any.whl"]


def test_exempt_projects_and_pages_without_rules_are_offered_whole():
    clock = task.Clock()
    clock.advance(NOW)
    page = demo_page()
    assert Guard(clock, min_age=7 * DAY, exempt=("Demo",)).apply(page).page is page
    assert Guard(clock).apply(page).page is page


def test_a_block_rule_withholds_its_files_with_403_naming_the_rule(tmp_path):
    block = tmp_path / "block.txt"
    block.write_text("demo==3.0\n")
    clock = task.Clock()
    clock.advance(NOW)
    applied = Guard(clock, block=block).apply(demo_page())
    assert applied.page.versions == ("1.0", "2.0")
    blocked = applied.withheld["demo-3.0-py3-none-any.whl"]
    assert (blocked.status, blocked.counter) == (403, "blocked_files")
    assert blocked.reason == f"demo-3.0-py3-none-any.whl is blocked by the rule 'demo==3.0' in {block}"


def test_a_quarantined_page_offers_no_file_and_says_why():
    page = simple.ProjectPage("demo", demo_page().files, status="quarantined", status_reason="malware")
    applied = Guard(task.Clock()).apply(page)
    assert applied.page.files == () and applied.page.versions == ()
    assert applied.page.status == "quarantined"
    assert applied.closed == "project 'demo' is quarantined by its index: malware"
    assert {w.status for w in applied.withheld.values()} == {404}
    archived = simple.ProjectPage("demo", demo_page().files, status="archived")
    assert Guard(task.Clock()).apply(archived).page is archived


# --------------------------------------------------------------------------- the tier


@implementer(IProjectPages)
class StubPages:
    """Pages held in memory, each fresh forever: what the guard sees of the page cache."""

    def __init__(self, **pages: CachedPage) -> None:
        self.pages = pages

    def fresh(self, name):
        return self.pages.get(name)

    async def project(self, name):
        if name not in self.pages:
            raise ProjectNotFound(name)
        return self.pages[name]

    async def cached(self, name):
        return self.pages.get(name)


def test_a_held_file_appears_when_its_time_comes_without_an_upstream_change(tmp_path):
    clock = task.Clock()
    clock.advance(NOW)
    guard = Guard(clock, min_age=7 * DAY)
    source = CachedPage(page=demo_page(), source="https://up.example/simple/", fetched_at=NOW)
    stub = StubPages(demo=source)
    pages = GuardedPages(stub, guard, Clearance(guard), clock, Stats(), inline)

    assert pages.fresh("demo") is None  # nothing guarded yet: the warm path does no work
    offered = result((pages.project("demo")))
    assert pages.fresh("demo") is offered  # the same object while nothing changes
    assert offered.page.versions == ("1.0", "2.0")
    assert "demo-3.0-py3-none-any.whl" in offered.withheld

    clock.advance(5 * DAY)
    assert pages.fresh("demo") is None  # the 3.0 wheel came of age: guarded again
    again = result((pages.project("demo")))
    assert "demo-3.0-py3-none-any.whl" in [e.filename for e in again.page.files]
    clock.advance(1 * DAY)
    whole = result((pages.project("demo")))
    assert whole is source  # nothing left to hold: the page cache's own page (and its bodies)


def test_a_page_with_many_files_is_guarded_beside_the_reactor():
    clock = task.Clock()
    clock.advance(NOW)
    guard = Guard(clock, min_age=7 * DAY)
    files = tuple(entry(f"big-1.{n}-py3-none-any.whl", NOW - (n % 10) * DAY) for n in range(500))
    source = CachedPage(page=simple.ProjectPage("big", files), source="u", fetched_at=NOW)
    ran = []

    def to_thread(f, *args):
        ran.append(f)
        return inline(f, *args)

    pages = GuardedPages(StubPages(big=source), guard, Clearance(guard), clock, Stats(), to_thread)
    offered = result(pages.project("big"))
    assert len(ran) == 1
    assert len(offered.page.files) == 150 and len(offered.withheld) == 350
    assert len(offered.page.versions) == 150


def test_allow_only_refuses_other_projects(tmp_path):  # the list: see the proxy test below
    allow = tmp_path / "allow.txt"
    allow.write_text("demo\n")
    clock = task.Clock()
    guard = Guard(clock, allow_only=allow)
    page = CachedPage(page=simple.ProjectPage("other"), source="u", fetched_at=0)
    stats = Stats()
    pages = GuardedPages(StubPages(demo=page, other=page), guard, Clearance(guard), clock, stats, inline)
    with pytest.raises(ProjectNotFound) as caught:
        result((pages.project("other")))
    assert caught.value.reason == "project 'other' is not in this server's --allow-only list"
    assert stats["refused_projects"] == 1
    assert pages.fresh("other") is None
    assert result((pages.cached("other"))) is None


# --------------------------------------------------------------------------- a proxy applying them


async def page_json(proxy, project: str) -> dict:
    response, body = await proxy.get(f"simple/{project}/", JSON)
    assert response.code == 200, body
    return json.loads(body)


def wait_for_status(proxy, path: str, code: int) -> Deferred:
    """Until ``path`` answers ``code`` (the rules files are looked at every 2 s): polled from
    a thread, so the proxy in this reactor keeps answering."""
    url = proxy.root_url + path
    return threads.deferToThread(block_until, lambda: get(url)[0] == code, 15.0, 0.2, f"{code} from {url}")


@pytest_twisted.ensureDeferred
async def test_min_age_on_pages_files_and_metadata_and_never_on_private_files(make_proxy, fake_index, wheels):
    old, new = wheels.wheel("demo", "1.0"), wheels.wheel("demo", "2.0")
    fake_index.add("demo", old, upload_time=ago(30))
    fake_index.add("demo", new, upload_time=ago(1))
    proxy = await make_proxy(fake_index.url, min_age=7 * DAY, allow_anonymous_upload=True)
    for headers in (JSON, {}):
        response, body = await proxy.get("simple/demo/", headers)
        assert old.filename.encode() in body and new.filename.encode() not in body
    page = await page_json(proxy, "demo")
    assert page["versions"] == ["1.0"]
    # A tier below sees the original upload-time, so it can hold back on its own.
    assert page["files"][0]["upload-time"] == fake_index.entry(old.filename).upload_time

    base = f"files/demo/{new.sha256}/{new.filename}"
    for path in (base, base + ".metadata"):
        response, body = await proxy.get(path)
        assert response.code == 404
        assert b"is held back by --min-age 7d" in body and b"available from" in body
    assert fake_index.count(new.filename) == 0
    assert proxy.stats["held_files"] == 2

    private = wheels.wheel("corp-app", "1.0")  # uploaded just now
    response, _ = await upload(proxy, private)
    assert response.code == 200
    assert [f["filename"] for f in (await page_json(proxy, "corp-app"))["files"]] == [private.filename]
    response, body = await proxy.get(await file_path(proxy, "corp-app", private.filename))
    assert response.code == 200 and body == private.data


@pytest_twisted.ensureDeferred
async def test_a_blocked_file_is_403_even_when_cached_before_the_rule_and_edits_need_no_restart(
    make_proxy, fake_index, wheels, tmp_path
):
    good, bad = wheels.wheel("demo", "1.0"), wheels.wheel("demo", "1.1")
    fake_index.add("demo", good)
    fake_index.add("demo", bad)
    block = tmp_path / "block.txt"
    block.write_text("# nothing blocked yet\n")
    proxy = await make_proxy(fake_index.url, block=block, index_ttl=0.0)
    path = await file_path(proxy, "demo", bad.filename)
    response, body = await proxy.get(path)
    assert response.code == 200 and body == bad.data  # now in the cache

    block.write_text("demo==1.1  # compromised\n")

    await wait_for_status(proxy, path, 403)
    for each in (path, path + ".metadata"):
        response, body = await proxy.get(each)
        assert response.code == 403
        assert body.decode() == f"403 {bad.filename} is blocked by the rule 'demo==1.1' in {block}\n"
    page = await page_json(proxy, "demo")
    assert [f["filename"] for f in page["files"]] == [good.filename] and page["versions"] == ["1.0"]
    response, _ = await proxy.get(await file_path(proxy, "demo", good.filename))
    assert response.code == 200
    assert proxy.stats["blocked_files"] >= 2

    block.write_text("demo==1.1\nthis is not a requirement\n")  # a broken edit keeps the rules
    from twisted.internet import reactor

    await task.deferLater(reactor, 2.5, lambda: None)
    response, _ = await proxy.get(path)
    assert response.code == 403

    block.write_text("")

    await wait_for_status(proxy, path, 200)


@pytest_twisted.ensureDeferred
async def test_allow_only_serves_only_the_listed_upstream_projects_and_every_private_one(
    make_proxy, fake_index, wheels, tmp_path
):
    fake_index.add("demo", wheels.wheel("demo", "1.0"))
    other = wheels.wheel("other", "1.0")
    fake_index.add("other", other)
    allow = tmp_path / "allow.txt"
    allow.write_text("Demo\n")
    proxy = await make_proxy(fake_index.url, allow_only=allow, allow_anonymous_upload=True)
    await page_json(proxy, "demo")
    for path in ("simple/other/", f"files/other/{other.sha256}/{other.filename}"):
        response, body = await proxy.get(path)
        assert response.code == 404
        assert b"'other' is not in this server's --allow-only list" in body
    assert fake_index.count("/simple/other/") == 0 and fake_index.count(other.filename) == 0
    response, _ = await upload(proxy, wheels.wheel("corp-app", "1.0"))
    assert response.code == 200
    _, body = await proxy.get("simple/", JSON)
    assert sorted(p["name"] for p in json.loads(body)["projects"]) == ["corp-app", "demo"]
    assert proxy.stats["refused_projects"] == 2


async def until_revalidated(ask, done, tries: int = 100):
    """What ``ask()`` answers once ``done`` says so: an expired page is answered at once from
    cache while one background request revalidates it, so a change upstream shows a little
    later (bounded, so a bug fails instead of hanging)."""
    for _ in range(tries):
        answer = await ask()
        if done(answer):
            return answer
        from twisted.internet import reactor

        await task.deferLater(reactor, 0.05, lambda: None)
    return answer


@pytest_twisted.ensureDeferred
async def test_a_quarantined_project_has_no_files_in_either_format_and_its_cached_wheel_is_refused(
    make_proxy, fake_index, wheels
):
    built = wheels.wheel("sus", "1.0")
    fake_index.add("sus", built)
    fake_index.add("kept", wheels.wheel("kept", "1.0"))
    fake_index.set_status("kept", "archived", "moved to kept2")
    proxy = await make_proxy(fake_index.url, index_ttl=0.0)
    path = await file_path(proxy, "sus", built.filename)
    response, _ = await proxy.get(path)
    assert response.code == 200  # cached

    fake_index.set_status("sus", "quarantined", "malware reported")
    # An expired page is answered at once while it is revalidated (stale-while-revalidate):
    # the status shows from the answer after that revalidation.
    page = await until_revalidated(lambda: page_json(proxy, "sus"), lambda page: page["files"] == [])
    assert page["files"] == [] and page["versions"] == []
    assert page["project-status"] == {"status": "quarantined", "reason": "malware reported"}
    _, html = await proxy.get("simple/sus/")
    assert b'<meta name="pypi:project-status" content="quarantined">' in html
    assert b'<meta name="pypi:project-status-reason" content="malware reported">' in html
    assert built.filename.encode() not in html
    for each in (path, path + ".metadata"):
        response, body = await proxy.get(each)
        assert response.code == 404
        assert body == b"404 project 'sus' is quarantined by its index: malware reported\n"
    assert proxy.stats["refused_files"] == 2

    kept = await page_json(proxy, "kept")  # archived: shown, files offered
    assert kept["project-status"] == {"status": "archived", "reason": "moved to kept2"}
    assert len(kept["files"]) == 1

    fake_index.set_status("sus", None)  # lifted upstream: served again
    response, body = await until_revalidated(lambda: proxy.get(path), lambda answer: answer[0].code == 200)
    assert response.code == 200 and body == built.data


@pytest_twisted.ensureDeferred
async def test_provenance_status_and_unknown_keys_survive_two_chained_tiers(make_proxy, fake_index, wheels):
    built = wheels.wheel("demo", "1.0")
    provenance = "https://integrity.example/integrity/demo/1.0/demo-1.0-py3-none-any.whl/provenance"
    fake_index.api_version = "1.4"
    fake_index.add("demo", built, provenance=provenance, extra={"x-origin": {"mirror": 3}, "_private": 1})
    fake_index.set_status("demo", "deprecated", "use demo2")
    company = await make_proxy(fake_index.url)
    dev = await make_proxy(company.url)
    for proxy in (company, dev):
        page = await page_json(proxy, "demo")
        assert page["meta"] == {"api-version": "1.4"}
        assert page["project-status"] == {"status": "deprecated", "reason": "use demo2"}
        (file,) = page["files"]
        assert file["provenance"] == provenance
        assert file["x-origin"] == {"mirror": 3} and "_private" not in file
        _, html = await proxy.get("simple/demo/")
        assert f'data-provenance="{provenance}"'.encode() in html
        assert b'<meta name="pypi:repository-version" content="1.4">' in html
        assert b'<meta name="pypi:project-status" content="deprecated">' in html


@pytest_twisted.ensureDeferred
async def test_each_page_says_its_own_upstreams_api_version(make_proxy, fake_index, wheels):
    fake_index.add("old", wheels.wheel("old", "1.0"))
    from twisted.internet import reactor

    newer = FakeIndex(api_version="1.4")
    await newer.start(reactor)
    try:
        newer.add("new", wheels.wheel("new", "1.0"))
        proxy = await make_proxy(fake_index.url, newer.url)
        assert (await page_json(proxy, "old"))["meta"]["api-version"] == "1.1"
        assert (await page_json(proxy, "new"))["meta"]["api-version"] == "1.4"
        newer.api_version = "1.9"  # a later minor version: we say only what we carry
        proxy2 = await make_proxy(newer.url)
        assert (await page_json(proxy2, "new"))["meta"]["api-version"] == "1.4"
    finally:
        await newer.stop()


@pytest_twisted.ensureDeferred
async def test_warm_through_a_guarded_tier_warms_only_what_it_offers(make_proxy, fake_index, wheels, tmp_path):
    old, new, evil = wheels.wheel("demo", "1.0"), wheels.wheel("demo", "2.0"), wheels.wheel("demo", "1.5")
    fake_index.add("demo", old, upload_time=ago(30))
    fake_index.add("demo", evil, upload_time=ago(20))
    fake_index.add("demo", new, upload_time=ago(1))
    fake_index.add("other", wheels.wheel("other", "1.0"))
    block = tmp_path / "block.txt"
    block.write_text("demo==1.5\n")
    allow = tmp_path / "allow.txt"
    allow.write_text("demo\n")
    proxy = await make_proxy(fake_index.url, min_age=7 * DAY, block=block, allow_only=allow)
    code, out, err = await warm("demo", "--index", proxy.url)
    assert code == 0, (out, err)
    assert file_requests(fake_index) == [old.filename]  # 2.0 held, 1.5 blocked
    code, out, err = await warm("demo==1.5", "--index", proxy.url)
    assert code != 0 and "demo==1.5 (required by command line): no version matches ==1.5" in err
    assert fake_index.count(evil.filename) == 0
    code, out, err = await warm("other", "--index", proxy.url)
    assert code != 0 and "unknown project 'other'" in err
    assert fake_index.count("/simple/other/") == 0
