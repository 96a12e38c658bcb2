"""``pypiproxy import``: folders of files and another index, checked as uploads are; then pip."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest_twisted
from twisted.internet import threads

from support.builders import build_sdist, build_wheel
from support.clients import clean_client_env, pip_install
from support.fakeindex import FakeIndex
from support.processes import REPO

from pypiproxy.commands.main import build_parser


def run_import(capsys, *argv: str) -> tuple[int, str, str]:
    args = build_parser().parse_args(["import", *argv])
    code = args.run(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_import_from_folders_walks_them_skips_what_is_there_and_lists_refusals(tmp_path, capsys):
    source = tmp_path / "packages"
    (source / "deep" / "er").mkdir(parents=True)
    wheel, sdist, other = build_wheel("Foo", "1.0"), build_sdist("foo", "1.0"), build_wheel("bar", "2.0")
    (source / "deep" / "er" / wheel.filename).write_bytes(wheel.data)
    (source / sdist.filename).write_bytes(sdist.data)
    (source / "deep" / other.filename).write_bytes(other.data)
    (source / "README.txt").write_text("not a package")
    (source / "broken-1.0-py3-none-any.whl").write_bytes(b"this is no zip")
    cache = tmp_path / "cache"

    code, out, err = run_import(capsys, "--cache-dir", str(cache), str(source))
    assert code == 1
    for built in (wheel, sdist, other):
        assert f"imported {built.filename}" in out
    assert "imported 3, skipped 0 (already there), refused 1, ignored 1 other files" in out
    assert "broken-1.0-py3-none-any.whl: broken-1.0-py3-none-any.whl is not a valid wheel" in err
    sidecar = json.loads((cache / "private" / "foo" / f"{wheel.filename}.json").read_text())
    assert sidecar["sha256"] == wheel.sha256 and sidecar["size"] == wheel.size

    (source / "broken-1.0-py3-none-any.whl").unlink()
    code, out, err = run_import(capsys, "--cache-dir", str(cache), str(source))
    assert code == 0, err
    assert "imported 0, skipped 3 (already there), refused 0" in out

    # The same name with other bytes is not the same file: refused, and the stored one kept.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / wheel.filename).write_bytes(build_wheel("foo", "1.0", summary="changed").data)
    code, out, err = run_import(capsys, "--cache-dir", str(cache), str(elsewhere), str(tmp_path / "missing"))
    assert code == 1
    assert f"a different file named {wheel.filename} is already in the private store" in err
    assert "missing: no such file or folder" in err
    assert (cache / "private" / "foo" / wheel.filename).read_bytes() == wheel.data


def test_bad_usage_is_one_line_and_exit_2(tmp_path, capsys):
    code, _, err = run_import(capsys, "--cache-dir", str(tmp_path))
    assert code == 2 and err.count("\n") == 1
    code, _, err = run_import(capsys, "--cache-dir", str(tmp_path), "--project", "x", str(tmp_path))
    assert code == 2 and "--project needs --from-index" in err


def import_command(*argv: str) -> subprocess.CompletedProcess[str]:
    env = clean_client_env()
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "pypiproxy.commands.main", "import", *argv], capture_output=True,
                          text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)


@pytest_twisted.ensureDeferred
async def test_import_from_an_index_with_credentials_then_pip_installs_it(twistd, tmp_path):
    from twisted.internet import reactor

    index = FakeIndex(require_auth=("mover", "pa55-w0rd"))
    await index.start(reactor)
    try:
        alpha, alpha_sdist = build_wheel("alpha", "1.0", requires_dist=["beta"]), build_sdist("alpha", "1.0")
        beta = build_wheel("beta", "3.0", requires_python=">=3.8")
        index.add("alpha", alpha)
        index.add("alpha", alpha_sdist)
        index.add("beta", beta)
        cache = tmp_path / "cache"

        only = await threads.deferToThread(
            import_command, "--cache-dir", str(cache), "--from-index", index.auth_url, "--project", "Alpha"
        )
        assert only.returncode == 0, only.stdout + only.stderr
        assert "imported 2, skipped 0" in only.stdout
        assert not (cache / "private" / "beta").exists()

        everything = await threads.deferToThread(
            import_command, "--cache-dir", str(cache), "--from-index", index.auth_url
        )
        assert everything.returncode == 0, everything.stdout + everything.stderr
        assert "imported 1, skipped 2" in everything.stdout
        missing = await threads.deferToThread(
            import_command, "--cache-dir", str(cache), "--from-index", index.auth_url, "--project", "gamma"
        )
        assert missing.returncode == 1 and "gamma: no such project" in missing.stderr
        for done in (only, everything, missing):
            assert "pa55-w0rd" not in done.stdout + done.stderr
    finally:
        await index.stop()

    folder = tmp_path / "pypiserver-packages"
    folder.mkdir()
    delta = build_wheel("delta", "0.1")
    (folder / delta.filename).write_bytes(delta.data)
    from_folder = await threads.deferToThread(import_command, "--cache-dir", str(cache), str(folder))
    assert from_folder.returncode == 0, from_folder.stdout + from_folder.stderr

    # The imported files are a private index of their own now.
    proxy = twistd(["--no-upstream"], name=cache.name)
    await threads.deferToThread(proxy.wait_ready)
    installed = await threads.deferToThread(pip_install, proxy.url, tmp_path / "target", "alpha", "delta")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    for name in ("alpha", "beta", "delta"):
        assert (tmp_path / "target" / name).is_dir()
    page = json.loads((await threads.deferToThread(_get_json, proxy.url + "beta/")))
    assert page["files"][0]["requires-python"] == ">=3.8"


def _get_json(url: str) -> bytes:
    import urllib.request

    request = urllib.request.Request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=20) as response:
        return response.read()


def test_a_junk_file_named_like_a_wheel_is_named_and_the_exit_is_1(tmp_path):
    source = tmp_path / "packages"
    source.mkdir()
    good = build_wheel("good", "1.0")
    (source / good.filename).write_bytes(good.data)
    (source / "junk.whl").write_bytes(b"not a zip, not a wheel name")
    done = import_command("--cache-dir", str(tmp_path / "cache"), str(source))
    assert done.returncode == 1, done
    assert f"{source / 'junk.whl'}: not a valid wheel or sdist file name" in done.stderr
    assert f"imported {good.filename}" in done.stdout
    assert (tmp_path / "cache" / "private" / "good" / good.filename).read_bytes() == good.data
