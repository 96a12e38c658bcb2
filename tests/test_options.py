"""Command-line options: validated into one Config; every mistake is one line and exit 2 (an
address that cannot be bound: one line in the server's log and exit 1)."""

from __future__ import annotations

import socket
import subprocess

import pytest

from support.processes import REPO, TWISTD
from pypiproxy.config import parse_size, parse_upstream
from pypiproxy.server import Options


def parse(*argv: str):
    options = Options()
    options.parseOptions(list(argv))
    return options.config


def test_defaults():
    config = parse("--upstream", "https://index.example/simple")
    assert config.listen == ("tcp:3141:interface=127.0.0.1",)
    assert config.upstreams[0].url == "https://index.example/simple/"
    assert config.index_ttl == 600 and config.upstream_timeout == 15
    assert str(config.cache_dir) == "pypiproxy-data"
    assert config.auth == "upload"
    assert config.max_page_size == 64 * 1024**2 and config.accel_redirect is None
    assert parse("--upstream", "http://x/simple/", "--accel-redirect", "/_c/").accel_redirect == "/_c"
    assert parse("--upstream", "http://x/simple/", "--max-page-size", "8M").max_page_size == 8 * 1024**2


def test_repeatable_options_keep_their_order():
    config = parse(
        "--upstream", "http://a.example/simple/", "--upstream", "http://b.example/simple/",
        "--listen", "tcp:0:interface=127.0.0.1", "--listen", r"tcp:0:interface=\:\:1",
        "--allow-from", "10.0.0.0/8", "--allow-from", "::1",
    )
    assert [u.url for u in config.upstreams] == ["http://a.example/simple/", "http://b.example/simple/"]
    assert len(config.listen) == 2
    assert [str(n) for n in config.allow_from] == ["10.0.0.0/8", "::1/128"]


def test_credentials_are_split_off_the_upstream_url_and_kept_out_of_repr():
    upstream = parse_upstream("https://bob:s%40cret@index.example:8443/private/simple/")
    assert upstream.url == "https://index.example:8443/private/simple/"
    assert (upstream.username, upstream.password) == ("bob", "s@cret")
    assert "cret" not in repr(upstream)


@pytest.mark.parametrize("text, size", [("500M", 500 * 1024**2), ("20G", 20 * 1024**3), ("1.5K", 1536), ("7", 7)])
def test_sizes_are_powers_of_1024(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "argv, named",
    [
        (["--bogus"], "--bogus"),
        (["--upstream", "ftp://x/simple/"], "ftp://x/simple/"),
        (["--upstream", "https://u:topsecret@/simple/"], "https://"),
        (["--upstream", "http://x/simple/", "--index-ttl", "soon"], "soon"),
        (["--upstream", "http://x/simple/", "--upstream-timeout", "-1"], "-1"),
        (["--upstream", "http://x/simple/", "--max-cache-size", "lots"], "lots"),
        (["--upstream", "http://x/simple/", "--max-page-size", "huge"], "huge"),
        (["--upstream", "http://x/simple/", "--accel-redirect", "relative"], "relative"),
        (["--upstream", "http://x/simple/", "--max-page-size", "10"], "--max-page-size"),
        (["--upstream", "http://x/simple/", "--listen", "tcpp:80"], "tcpp:80"),
        (["--upstream", "http://x/simple/", "--listen", "ssl:0:privateKey=/nonexistent.pem"], "ssl:0"),
        (["--upstream", "http://x/simple/", "--upstream-ca", "/nonexistent/ca.pem"], "/nonexistent/ca.pem"),
        (["--upstream", "http://x/simple/", "--auth", "some"], "some"),
        (["--upstream", "http://x/simple/", "--allow-from", "10.0.0.0/99"], "10.0.0.0/99"),
        ([], "--upstream"),
    ],
)
def test_bad_options_end_with_one_line_naming_the_value(argv, named, tmp_path):
    result = subprocess.run(
        [TWISTD, "pypiproxy", *argv],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert "topsecret" not in result.stderr
    assert not (tmp_path / "pypiproxy-data").exists(), "nothing may be created before validation"


def test_an_address_in_use_ends_the_server_with_one_line_naming_it(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [TWISTD, "-n", "--pidfile=", "pypiproxy", "--upstream", "http://127.0.0.1:1/simple/",
             "--listen", f"tcp:{port}:interface=127.0.0.1", "--cache-dir", str(tmp_path / "cache")],
            capture_output=True, text=True, cwd=tmp_path, timeout=60,
            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        )
    assert result.returncode == 1, result
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stdout.splitlines() if "#error]" in line or "#critical]" in line]
    assert len(errors) == 1, result.stdout
    assert f"cannot listen on 127.0.0.1:{port}" in errors[0] and "in use" in errors[0]


@pytest.mark.parametrize("cache_dir, named", [("a-file", "a-file/files"), ("a-file/below", "a-file/below")])
def test_a_cache_directory_that_cannot_be_made_is_one_line(cache_dir, named, tmp_path):
    (tmp_path / "a-file").write_text("in the way\n")
    result = subprocess.run(
        [TWISTD, "-n", "--pidfile=", "pypiproxy", "--upstream", "http://127.0.0.1:1/simple/",
         "--listen", "tcp:0:interface=127.0.0.1", "--cache-dir", str(tmp_path / cache_dir)],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path / named) in lines[0] and "Not a directory" in lines[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_guard_options(tmp_path):
    block = tmp_path / "block.txt"
    block.write_text("evil-pkg\nlitellm==1.82.7\n")
    allow = tmp_path / "allow.txt"
    allow.write_text("Django\n")
    config = parse(
        "--upstream", "http://x/simple/", "--min-age", "7d", "--min-age-exempt", "Corp_Tool",
        "--min-age-exempt", "certifi", "--block", str(block), "--allow-only", str(allow),
    )
    assert config.min_age == 7 * 86400
    assert config.min_age_exempt == ("corp-tool", "certifi")
    assert (config.block, config.allow_only) == (block, allow)
    assert parse("--upstream", "http://x/simple/", "--min-age", "36h").min_age == 36 * 3600
    assert parse("--upstream", "http://x/simple/", "--min-age", "90").min_age == 90
    assert parse("--upstream", "http://x/simple/").min_age is None


@pytest.mark.parametrize(
    "args, named",
    [
        (["--min-age", "a week"], "--min-age: not a duration: 'a week'"),
        (["--min-age", "0d"], "--min-age: not a duration: '0d'"),
        (["--min-age-exempt", "x"], "--min-age-exempt needs --min-age"),
        (["--min-age", "1d", "--min-age-exempt", "not a name"], "not a project name: 'not a name'"),
        (["--block", "BLOCK"], "block.txt:2: markers mean nothing"),
        (["--allow-only", "ALLOW"], "allow.txt:1: not a project name"),
        (["--block", "/nonexistent/block.txt"], "/nonexistent/block.txt"),
    ],
)
def test_bad_guard_options_are_one_line(args, named, tmp_path):
    (tmp_path / "block.txt").write_text("ok\nfoo; os_name == 'nt'\n")
    (tmp_path / "allow.txt").write_text("-bad-\n")
    args = [str(tmp_path / "block.txt") if a == "BLOCK" else str(tmp_path / "allow.txt") if a == "ALLOW" else a
            for a in args]
    result = subprocess.run(
        [TWISTD, "pypiproxy", "--upstream", "http://x/simple/", *args],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr
