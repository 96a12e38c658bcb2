"""``pypiproxy warm``: the pure parts with plain asserts, the command against the fake index."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.version import Version
from twisted.internet import utils

from support.builders import Built, build_sdist, build_wheel, platform_wheel
from support.clients import clean_client_env
from support.fakeindex import FakeIndex
from support.processes import REPO, free_port
from support.warming import fetched, file_requests, warm

from pypiproxy.simple import FileEntry, ProjectPage
from pypiproxy.commands.warm.choose import (
    Selection,
    dependencies,
    is_pinned,
    metadata_from_wheel,
    plan_metadata,
    read_requires_dist,
    select,
    top_level_needs,
    why_nothing_fits,
)
from pypiproxy.commands.warm.reqfile import RequirementsError, logical_lines, parse_requirements
from pypiproxy.commands.warm.report import Report, summary_lines
from pypiproxy.commands.warm.targets import Target, compatible_platforms


# --------------------------------------------------------------------------- helpers


def entry(filename: str, **fields: Any) -> FileEntry:
    return FileEntry(filename=filename, url=f"http://index.test/files/{filename}", **fields)


def page(*entries: FileEntry) -> ProjectPage:
    return ProjectPage(name=entries[0].filename.split("-")[0] if entries else "x", files=entries)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- requirements files


def test_logical_lines_join_continuations_and_drop_comments() -> None:
    text = "# top\n\nfoo \\\n  >=1.0 \\\n  ,<2  # why\nbar#not-a-comment\n  \\\n"
    assert list(logical_lines(text)) == [(3, "foo   >=1.0   ,<2"), (6, "bar#not-a-comment")]


def test_parse_requirements_reads_pins_ranges_markers_hashes_and_includes(tmp_path: Path) -> None:
    write(tmp_path / "sub" / "more.txt", "-c ../constraints.txt\nbaz[Extra_One]==2.0\n")
    write(tmp_path / "constraints.txt", "bar<1.5\n")
    main = write(
        tmp_path / "req.txt",
        "--index-url http://example.invalid/simple/\n"
        "foo==1.0 --hash=sha256:ABCDEF \\\n    --hash sha256:012345\n"
        'bar>=1,<2 ; python_version >= "3"\n'
        "-r sub/more.txt\n"
        "--pre\n",
    )
    parsed = parse_requirements([main])
    assert [(str(r.requirement), r.origin) for r in parsed.requirements] == [
        ("foo==1.0", f"{main}:2"),
        ('bar<2,>=1; python_version >= "3"', f"{main}:4"),
        ("baz[Extra_One]==2.0", f"{tmp_path / 'sub' / 'more.txt'}:2"),
    ]
    assert parsed.requirements[0].hashes == ("sha256:abcdef", "sha256:012345")
    assert [str(c.requirement) for c in parsed.constraints] == ["bar<1.5"]
    assert parsed.pre is True
    assert parsed.notes == (f"{main}:1: ignoring --index-url (warm fetches from --index)",)


@pytest.mark.parametrize(
    "line, message",
    [
        ("foo==", "invalid requirement: foo=="),
        ("-e git+https://host/repo.git#egg=foo", "editable requirements are not supported"),
        ("foo @ https://user:secret@host/foo.whl", "direct URL requirements are not supported"),
        ("./local/foo-1.0.tar.gz", "URLs, paths and VCS links are not supported"),
        ("git+https://host/repo.git", "URLs, paths and VCS links are not supported"),
        ("--frobnicate", "unknown option --frobnicate"),
        ("foo==1.0 --hash=nope", "--hash must be ALGORITHM:HEXDIGEST"),
        ("-r missing.txt", "cannot read requirements file"),
        ("-r req.txt", "includes itself"),
    ],
)
def test_bad_lines_are_one_line_errors_naming_file_and_line(
    tmp_path: Path, line: str, message: str
) -> None:
    path = write(tmp_path / "req.txt", f"ok==1\n\n{line}\n")
    with pytest.raises(RequirementsError) as caught:
        parse_requirements([path])
    text = str(caught.value)
    assert text.startswith(f"{path}:3: "), text
    assert message in text
    assert "\n" not in text
    assert "secret" not in text


def test_markers_select_lines_and_lines_of_one_project_merge(tmp_path: Path) -> None:
    path = write(
        tmp_path / "r.txt",
        'a>=1\nb ; python_version < "3.12"\nc ; sys_platform == "win32"\na[x]<3\n',
    )
    lines = parse_requirements([path]).requirements
    needs = top_level_needs(lines, Target(python_version="3.12").environments())
    assert [(n.name, str(n.specifier), sorted(n.extras)) for n in needs] == [("a", "<3,>=1", ["x"])]
    needs = top_level_needs(lines, Target("3.11", ("win_amd64",)).environments())
    assert [n.name for n in needs] == ["a", "b", "c"]


# --------------------------------------------------------------------------- the target


def test_platform_tags_expand_as_an_installer_there_would() -> None:
    tags = compatible_platforms("manylinux_2_28_x86_64")
    assert {
        "manylinux_2_28_x86_64",
        "manylinux_2_17_x86_64",
        "manylinux2014_x86_64",
        "manylinux1_x86_64",
        "linux_x86_64",
    } <= set(tags)
    assert "manylinux_2_29_x86_64" not in tags and "manylinux_2_17_aarch64" not in tags
    assert "manylinux2014_aarch64" in compatible_platforms("manylinux2014_aarch64")
    assert "musllinux_1_1_x86_64" in compatible_platforms("musllinux_1_2_x86_64")
    assert {"macosx_11_0_arm64", "macosx_14_0_universal2"} <= set(
        compatible_platforms("macosx_14_0_arm64")
    )
    assert compatible_platforms("win_amd64") == ("win_amd64",)


@pytest.mark.parametrize(
    "filename, accepted",
    [
        ("n-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", True),
        ("n-1.0-cp38-abi3-manylinux_2_28_x86_64.whl", True),
        ("n-1.0-py3-none-any.whl", True),
        ("n-1.0.tar.gz", True),
        ("n-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", False),
        ("n-1.0-cp312-cp312-manylinux_2_31_x86_64.whl", False),
        ("n-1.0-cp312-cp312-musllinux_1_2_x86_64.whl", False),
        ("n-1.0-cp312-cp312-win_amd64.whl", False),
        ("n-1.0-py2-none-any.whl", False),
        ("not a wheel.whl", False),
    ],
)
def test_target_accepts_files_by_python_and_platform(filename: str, accepted: bool) -> None:
    assert Target("3.12", ("manylinux_2_28_x86_64",)).accepts_filename(filename) is accepted


def test_an_unfiltered_target_accepts_every_wheel_and_only_binary_drops_sdists() -> None:
    assert Target().accepts_filename("n-1.0-cp27-cp27mu-linux_armv7l.whl")
    assert Target().accepts_filename("n-1.0.zip")
    assert not Target(only_binary=True).accepts_filename("n-1.0.tar.gz")
    assert Target(platforms=("win_amd64",)).accepts_tag(Tag("cp39", "cp39", "win_amd64"))


def test_environments_follow_python_version_and_platforms() -> None:
    (only,) = Target("3.9").environments()
    assert (only["python_version"], only["python_full_version"]) == ("3.9", "3.9.0")
    envs = Target("3.13.1", ("manylinux_2_28_aarch64", "macosx_14_0_universal2")).environments()
    assert [(e["sys_platform"], e["platform_machine"]) for e in envs] == [
        ("linux", "aarch64"),
        ("darwin", "arm64"),
        ("darwin", "x86_64"),
    ]
    assert {e["python_full_version"] for e in envs} == {"3.13.1"}


# --------------------------------------------------------------------------- choosing versions


def test_select_takes_the_newest_fitting_version_and_all_its_files() -> None:
    files = (
        entry("p-1.0-py3-none-any.whl"),
        entry("p-1.1.tar.gz"),
        entry("p-1.1-py3-none-any.whl"),
        entry("p-2.0b1-py3-none-any.whl"),
        entry("p-3.0-py3-none-any.whl", requires_python=">=3.99"),
    )
    chosen = select(page(*files), SpecifierSet(">=1"), Target())
    assert chosen is not None
    assert (chosen.version, [f.filename for f in chosen.files]) == (
        Version("1.1"),
        ["p-1.1.tar.gz", "p-1.1-py3-none-any.whl"],
    )
    assert select(page(*files), SpecifierSet(">=1"), Target(), pre=True).version == Version("2.0b1")
    assert select(page(*files), SpecifierSet(">=1.5"), Target()).version == Version(
        "2.0b1"
    )  # only a pre-release fits
    assert select(page(*files), SpecifierSet("<1"), Target()) is None
    assert "no version matches <1" in why_nothing_fits(page(*files), SpecifierSet("<1"), Target())


def test_yanked_files_count_only_for_pins() -> None:
    files = (
        entry("y-1.0.tar.gz"),
        entry("y-2.0.tar.gz", is_yanked=True, yanked_reason="broken"),
        entry("y-2.1.tar.gz", is_yanked=True),
    )
    assert select(page(*files), SpecifierSet(), Target()).version == Version("1.0")
    pinned = select(page(*files), SpecifierSet("==2.0"), Target())
    assert (pinned.version, pinned.yanked) == (Version("2.0"), "broken")
    assert select(page(*files), SpecifierSet("===2.1"), Target()).yanked == ""
    assert select(page(*files), SpecifierSet(">=2"), Target()) is None
    assert "non-yanked" in why_nothing_fits(page(*files), SpecifierSet(">=2"), Target())
    assert is_pinned(SpecifierSet("==1.0")) and not is_pinned(SpecifierSet("==1.*"))


def test_a_version_without_a_file_for_the_target_is_passed_over() -> None:
    files = (
        entry("w-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"),
        entry("w-2.0-cp312-cp312-win_amd64.whl"),
        entry("w-2.0.tar.gz"),
    )
    linux = Target("3.12", ("manylinux_2_28_x86_64",), only_binary=True)
    assert select(page(*files), SpecifierSet(), linux).version == Version("1.0")
    assert select(
        page(*files), SpecifierSet(), Target("3.12", ("manylinux_2_28_x86_64",))
    ).version == Version("2.0")
    old_python = (
        entry("v-1.0.tar.gz", requires_python=">=3"),
        entry("v-2.0.tar.gz", requires_python=">=3.13"),
    )
    assert select(page(*old_python), SpecifierSet(), Target("3.12")).version == Version("1.0")


def test_plan_metadata_prefers_pep658_then_a_wheel_then_gives_up() -> None:
    whl = entry("m-1.0-py3-none-any.whl", size=10)
    big = entry("m-1.0-cp312-cp312-win_amd64.whl", size=99)
    sdist = entry("m-1.0.tar.gz")
    with_meta = entry("m-1.0-cp312-cp312-macosx_11_0_arm64.whl", has_metadata=True, metadata_hashes={"sha256": "00"})
    assert plan_metadata(page(whl, with_meta), Selection("m", Version("1"), (whl,))) == (
        "metadata",
        with_meta,
    )
    assert plan_metadata(page(big, whl), Selection("m", Version("1"), (big, whl))) == ("wheel", whl)
    assert plan_metadata(page(sdist), Selection("m", Version("1"), (sdist,))) is None


def test_requires_dist_from_wheels_and_sdists() -> None:
    metadata = (
        b"Metadata-Version: 2.1\nName: a\nVersion: 1\n"
        b"Requires-Dist: b>=1\nRequires-Dist: c[x]; extra == 'fast'\nRequires-Dist: !!\n\n"
    )
    requires, invalid = read_requires_dist(metadata)
    assert [str(r) for r in requires] == ["b>=1", 'c[x]; extra == "fast"'] and invalid == ("!!",)
    assert read_requires_dist(metadata, sdist=True) == (None, ())  # 2.1: could be dynamic
    static = metadata.replace(b"2.1", b"2.2")
    assert [str(r) for r in read_requires_dist(static, sdist=True)[0]] == [
        "b>=1",
        'c[x]; extra == "fast"',
    ]
    dynamic = static.replace(b"Name: a\n", b"Name: a\nDynamic: Requires-Dist\n")
    assert read_requires_dist(dynamic, sdist=True) == (None, ())


def test_dependencies_follow_extras_and_markers() -> None:
    requires = [
        Requirement(r)
        for r in (
            "plain",
            'fast-only; extra == "fast"',
            'old-python; python_version < "3.8"',
            'win; sys_platform == "win32"',
        )
    ]
    envs = Target("3.12", ("win_amd64",)).environments()
    assert [r.name for r in dependencies(requires, {""}, envs)[0]] == ["plain", "win"]
    assert [r.name for r in dependencies(requires, {"fast"}, envs)[0]] == ["fast-only", "win"]
    bad = [Requirement("odd; python_version ~= 'x'")]
    assert dependencies(bad, {""}, envs)[0] == [] and len(dependencies(bad, {""}, envs)[1]) == 1


def test_metadata_from_wheel_reads_the_dist_info() -> None:
    built = build_wheel("Some.Thing", "1.0", requires_dist=["b"])
    assert metadata_from_wheel(io.BytesIO(built.data), "some-thing") == built.metadata
    with pytest.raises(ValueError, match="not a readable wheel"):
        metadata_from_wheel(io.BytesIO(b"not a zip"))


def test_summary_mentions_cache_hits_only_when_the_proxy_told() -> None:
    report = Report(files=3, bytes=2500, releases=["a 1", "b 2"])
    assert summary_lines(report) == ["warmed 3 files (2.5 kB) of 2 releases"]
    report.hits, report.misses, report.sdist_only = 1, 2, ["s 1.0"]
    assert summary_lines(report) == [
        "warmed 3 files (2.5 kB) of 2 releases: 1 already cached, 2 newly cached",
        "1 sdist-only release, dependencies not followed: s 1.0",
    ]


# --------------------------------------------------------------------------- against the fake index


@pytest.fixture
def chain(fake_index: FakeIndex, tmp_path: Path) -> dict[str, Built]:
    """a -> b -> c: a's dependencies via .metadata, b's only via its wheel; and some bystanders."""
    built = {
        "a1": build_wheel("a", "1.0", requires_dist=["b>=1"]),
        "a2": build_wheel("a", "2.0", requires_dist=["b>=1", 'never; python_version < "3"']),
        "a2-sdist": build_sdist("a", "2.0"),
        "b1": build_wheel("b", "1.0", requires_dist=["c"]),
        "b15": build_wheel("b", "1.5", requires_dist=["c[fast]==1.0"]),
        "c1": build_wheel("c", "1.0", requires_dist=['d; extra == "fast"']),
        "c1-sdist": build_sdist("c", "1.0"),
        "c2": build_wheel("c", "2.0"),
        "d1": build_wheel("d", "1.0"),
        "e1": build_wheel("e", "1.0"),
        "g1": build_wheel("g", "1.0"),
        "g2": build_wheel("g", "2.0"),
    }
    for key, file in built.items():
        fake_index.add(file.name, file, metadata=not key.startswith("b"))
    write(tmp_path / "deeper" / "other.txt", "g==1.0  # a pin\n")
    write(
        tmp_path / "requirements.txt",
        "# the chain\n"
        "-r deeper/other.txt\n"
        "a>=1,<3\n"
        'e ; python_version >= "3"\n'
        'f ; sys_platform == "no-such-platform"\n',
    )
    return built


@pytest_twisted.ensureDeferred
async def test_warm_follows_the_chain_and_fetches_each_file_once(
    fake_index: FakeIndex, chain: dict[str, Built], tmp_path: Path
) -> None:
    code, out, err = await warm("-r", str(tmp_path / "requirements.txt"), "--index", fake_index.url)
    assert (code, err) == (0, "")
    wanted = ["a2", "a2-sdist", "b15", "c1", "c1-sdist", "d1", "e1", "g1"]
    assert file_requests(fake_index) == sorted(chain[k].filename for k in wanted)
    for key in wanted:
        assert fetched(fake_index, chain[key]) == 1, key
    assert fake_index.count(chain["a2"].filename + ".metadata") == 1  # PEP 658
    assert fake_index.count(chain["b15"].filename + ".metadata") == 0  # the wheel fallback
    assert (
        fake_index.count("/simple/f/") == fake_index.count("/simple/never/") == 0
    )  # false markers
    total = sum(chain[k].size for k in wanted)
    assert out == f"warmed 8 files ({total / 1000:.1f} kB) of 6 releases\n"


@pytest_twisted.ensureDeferred
async def test_no_deps_fetches_exactly_the_named_ones(
    fake_index: FakeIndex, chain: dict[str, Built], tmp_path: Path
) -> None:
    code, out, _ = await warm(
        "-r", str(tmp_path / "requirements.txt"), "--index", fake_index.url, "--no-deps"
    )
    assert code == 0
    assert file_requests(fake_index) == sorted(
        chain[k].filename for k in ("a2", "a2-sdist", "e1", "g1")
    )
    assert fake_index.count(".metadata") == 0 and fake_index.count("/simple/b/") == 0
    assert out.startswith("warmed 4 files")


@pytest_twisted.ensureDeferred
async def test_platform_filter_fetches_exactly_the_matching_wheels(fake_index: FakeIndex) -> None:
    names = [
        "n-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "n-1.0-cp312-cp312-musllinux_1_1_x86_64.whl",
        "n-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
        "n-1.0-cp312-cp312-win_amd64.whl",
        "n-1.0-cp312-cp312-macosx_11_0_arm64.whl",
        "n-1.0-cp39-abi3-manylinux_2_28_aarch64.whl",
        "n-1.0-py3-none-any.whl",
    ]
    for name in names:
        fake_index.add(
            "n",
            platform_wheel(name, requires_dist=['winonly; sys_platform == "win32"']),
            metadata=False,
        )
    fake_index.add("n", build_sdist("n", "1.0"))
    fake_index.add("winonly", platform_wheel("winonly-1.0-py3-none-any.whl"))
    args = [
        "n",
        "--index",
        fake_index.url,
        "--python-version",
        "3.12",
        "--platform",
        "manylinux_2_28_x86_64",
    ]

    code, _, err = await warm(*args, "--only-binary")
    assert (code, err) == (0, "")
    # The wheel fallback reads the smallest matching wheel; winonly's marker is false on Linux.
    assert file_requests(fake_index) == sorted([names[0], names[6]])

    fake_index.requests.clear()
    code, _, _ = await warm(*args[:-1], "win_amd64")
    assert code == 0
    assert file_requests(fake_index) == sorted(
        [names[3], names[6], "n-1.0.tar.gz", "winonly-1.0-py3-none-any.whl"]
    )


@pytest_twisted.ensureDeferred
async def test_yanked_versions_are_skipped_unless_pinned(fake_index: FakeIndex) -> None:
    good, yanked = build_wheel("y", "1.0"), build_wheel("y", "2.0")
    fake_index.add("y", good)
    fake_index.add("y", yanked, yanked="broken build")

    code, _, err = await warm("y", "--index", fake_index.url)
    assert (code, err, file_requests(fake_index)) == (0, "", [good.filename])

    code, _, err = await warm("y==2.0", "--index", fake_index.url)
    assert code == 0
    assert (
        "warning: y 2.0 is yanked (broken build); fetching it because command line pins it" in err
    )
    assert file_requests(fake_index) == sorted([good.filename, yanked.filename])

    code, _, err = await warm("y>1", "--index", fake_index.url)
    assert code == 1
    assert "y>1 (required by command line): no version matches >1 has a non-yanked file" in err


@pytest_twisted.ensureDeferred
async def test_a_malformed_line_is_exit_2_naming_file_and_line(
    fake_index: FakeIndex, tmp_path: Path
) -> None:
    path = write(tmp_path / "req.txt", "good==1.0\n\nbad===\n")
    code, out, err = await warm("-r", str(path), "--index", fake_index.url)
    assert (code, out) == (2, "")
    assert err.startswith(f"pypiproxy warm: error: {path}:3: invalid requirement: bad=== (")
    assert err.count("\n") == 1
    assert fake_index.requests == []


@pytest_twisted.ensureDeferred
async def test_an_unreachable_index_is_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}/simple/"
    code, out, err = await warm("anything", "--index", url)
    assert (code, out) == (2, "")
    assert err.startswith("pypiproxy warm: error: cannot reach the index: ")
    assert err.count("\n") == 1 and "refused" in err


@pytest_twisted.ensureDeferred
async def test_an_unknown_project_is_one_line(fake_index: FakeIndex, tmp_path: Path) -> None:
    fake_index.add("real", build_wheel("real", "1.0", requires_dist=["ghost>=1"]))
    code, _, err = await warm("real", "--index", fake_index.url)
    assert code == 2
    assert err == (
        "pypiproxy warm: error: unknown project 'ghost': the index has no page for it (404); "
        "required by real 1.0\n"
    )
    code, _, err = await warm(
        "-r", str(write(tmp_path / "r.txt", "\n\nnope\n")), "--index", fake_index.root_url
    )
    assert code == 2
    assert err == (
        "pypiproxy warm: error: unknown project 'nope': the index has no page for it (404) "
        f"(is {fake_index.root_url} a Simple API root?); required by {tmp_path / 'r.txt'}:3\n"
    )


@pytest_twisted.ensureDeferred
async def test_failures_are_listed_and_the_rest_is_still_fetched(fake_index: FakeIndex) -> None:
    ok, bad, stuck = (
        build_wheel("ok", "1.0"),
        build_wheel("bad", "1.0"),
        build_wheel("stuck", "1.0"),
    )
    fake_index.add("ok", ok)
    fake_index.add("bad", bad, behaviour="wrong-hash")
    fake_index.add("stuck", stuck, behaviour="hang")
    code, out, err = await warm("ok", "bad", "stuck", "--index", fake_index.url, "--timeout", "0.5")
    assert code == 1
    assert out.startswith("warmed 1 file (") and "2 failed" in out
    lines = err.splitlines()
    assert lines[0] == "pypiproxy warm: error: 2 failed:"
    assert sorted(line.split(":")[0].strip() for line in lines[1:]) == sorted(
        [bad.filename, stuck.filename]
    )
    assert f"sha256 mismatch: the index says {bad.sha256}" in err


@pytest_twisted.ensureDeferred
async def test_sdist_only_releases_warn_and_do_not_fail(fake_index: FakeIndex) -> None:
    sdist = build_sdist("s", "1.0", requires_dist=["hidden"])
    fake_index.add("s", sdist)
    code, out, err = await warm("s", "--index", fake_index.url)
    assert code == 0
    assert "warning: s 1.0 has only an sdist here: its dependencies are not followed" in err
    assert "1 sdist-only release, dependencies not followed: s 1.0" in out
    assert fetched(fake_index, sdist) == 1 and fake_index.count("/simple/hidden/") == 0


@pytest_twisted.ensureDeferred
async def test_credentials_in_the_index_url_are_used_and_never_shown() -> None:
    from twisted.internet import reactor

    index = FakeIndex(require_auth=("warmer", "s3cr3t:pw"), url_style="other-host")
    await index.start(reactor)
    try:
        wheel = build_wheel("private", "1.0")
        index.add("private", wheel)
        code, out, err = await warm("private", "--index", index.auth_url, tty=True)
        assert code == 0, err
        assert "s3cr3t" not in out + err
        on_file_host = [r for r in index.requests if r.port == index.other_port]
        assert sorted(r.path.rsplit("/", 1)[-1] for r in on_file_host) == [
            wheel.filename,
            wheel.filename + ".metadata",
        ]
        assert not any("authorization" in r.headers for r in on_file_host)
        assert all("authorization" in r.headers for r in index.requests if r.port == index.port)

        code, _, err = await warm("private", "--index", index.url)
        assert code == 2 and "refused access (401)" in err
    finally:
        await index.stop()


@pytest_twisted.ensureDeferred
async def test_html_pages_and_x_cache_headers(fake_index: FakeIndex) -> None:
    wheel, sdist = build_wheel("h", "1.0", requires_dist=["i"]), build_sdist("h", "1.0")
    fake_index.add("h", wheel)
    fake_index.add("h", sdist)
    fake_index.add("i", build_wheel("i", "1.0"))
    seen: set[str] = set()
    handle = fake_index._handle

    def html_only_with_x_cache(request: Any) -> Any:
        # An index that knows only PEP 503 HTML, behind a proxy that tells HIT or MISS.
        request.requestHeaders.removeHeader(b"accept")
        path = request.uri.decode()
        request.setHeader(b"X-Cache", b"HIT" if path in seen else b"MISS")
        seen.add(path)
        return handle(request)

    fake_index._handle = html_only_with_x_cache  # type: ignore[method-assign]
    code, out, _ = await warm("h", "--index", fake_index.url)
    assert code == 0
    assert out.startswith("warmed 3 files") and out.splitlines()[0].endswith(
        "0 already cached, 3 newly cached"
    )
    code, out, _ = await warm("h", "--index", fake_index.url)
    assert out.splitlines()[0].endswith("3 already cached, 0 newly cached")


@pytest_twisted.ensureDeferred
async def test_the_console_script_runs_as_a_real_process(
    fake_index: FakeIndex, tmp_path: Path
) -> None:
    wheel = build_wheel("sub", "1.0")
    fake_index.add("sub", wheel)
    good = write(tmp_path / "good.txt", "sub\n-i http://elsewhere.invalid/simple/\n")
    bad = write(tmp_path / "bad.txt", "sub\n-e .\n")
    env = {**clean_client_env(), "PYTHONPATH": str(REPO)}
    python = sys.executable

    out, err, code = await utils.getProcessOutputAndValue(
        python,
        ["-m", "pypiproxy.commands.main", "warm", "-r", str(good), "--index", fake_index.url],
        env=env,
        path=str(REPO),
    )
    assert code == 0, err
    assert out.decode().startswith("warmed 1 file (")
    assert (
        err.decode() == f"note: {good}:2: ignoring -i (warm fetches from --index)\n"
    )  # no progress bar: not a TTY
    assert fetched(fake_index, wheel) == 1

    out, err, code = await utils.getProcessOutputAndValue(
        python,
        ["-m", "pypiproxy.commands.main", "warm", "-r", str(bad), "--index", fake_index.url],
        env=env,
        path=str(REPO),
    )
    assert (code, out) == (2, b"")
    assert err.decode() == (
        f"pypiproxy warm: error: {bad}:2: editable requirements are not supported, "
        "warm fetches released files from the index: -e .\n"
    )


@pytest_twisted.ensureDeferred
async def test_jobs_bounds_the_requests_in_flight(fake_index: FakeIndex) -> None:
    fake_index.slow_delay = 0.02
    for number in range(6):
        fake_index.add(f"slow{number}", build_wheel(f"slow{number}", "1.0"), behaviour="slow")
    active, most = 0, 0
    handle = fake_index._handle

    def counting(request: Any) -> Any:
        nonlocal active, most
        active += 1
        most = max(most, active)

        def done(_: object) -> None:
            nonlocal active
            active -= 1

        request.notifyFinish().addBoth(done)
        return handle(request)

    fake_index._handle = counting  # type: ignore[method-assign]
    code, out, _ = await warm(
        *(f"slow{n}" for n in range(6)), "--no-deps", "--jobs", "2", "--index", fake_index.url
    )
    assert code == 0 and out.startswith("warmed 6 files")
    assert most == 2


@pytest_twisted.ensureDeferred
async def test_warming_through_the_proxy_fills_its_cache(fake_index: FakeIndex, proxy: Any) -> None:
    wheel, sdist, dep = (
        build_wheel("a", "1.0", requires_dist=["b"]),
        build_sdist("a", "1.0"),
        build_wheel("b", "1.0"),
    )
    fake_index.add("a", wheel)
    fake_index.add("a", sdist)
    fake_index.add("b", dep, metadata=False)
    code, out, _ = await warm("a", "--index", proxy.url)
    assert (code, out.splitlines()[0].split(": ")[1]) == (0, "0 already cached, 3 newly cached")
    assert file_requests(fake_index) == sorted([wheel.filename, sdist.filename, dep.filename])

    code, out, _ = await warm("a", "--index", proxy.url)
    assert (code, out.splitlines()[0].split(": ")[1]) == (0, "3 already cached, 0 newly cached")
    assert file_requests(fake_index) == sorted([wheel.filename, sdist.filename, dep.filename])


@pytest_twisted.ensureDeferred
async def test_metadata_over_the_cap_is_refused_not_read(fake_index: FakeIndex) -> None:
    import dataclasses

    base = build_wheel("fat", "1.0")
    fat = dataclasses.replace(base, metadata=b"Metadata-Version: 2.1\nName: fat\n\n" + b"A" * (2 << 20))
    fake_index.add("fat", fat)
    code, out, err = await warm("--index", fake_index.url, "fat")
    assert code == 1, (out, err)
    assert f"{fat.filename}.metadata: it is over 1048576 bytes" in err
