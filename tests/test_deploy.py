"""The deployable configurations in etc/: the systemd unit, and each tier's environment file
started the way the unit starts it (its ExecStart, its $PYPIPROXY_ARGS), with this test's
paths, ports and upstream substituted, then used by a real pip."""

from __future__ import annotations

import re
import shlex
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest
import pytest_twisted
import trustme
from twisted.internet import threads

from support.builders import build_wheel
from support.clients import clean_client_env, pip_install, twine_upload
from support.processes import REPO, TWISTD, free_port, stop_process
from support.waiting import block_until

ETC = REPO / "etc"
UNIT = ETC / "pypiproxy.service"
TIERS = ["dev-box", "company-cache", "private-index"]
# What the shipped files name, and what stands in for it here.
CACHE_DIR, CONFIG_DIR, INSTALLED_TWISTD = "/var/lib/pypiproxy", "/etc/pypiproxy", "/opt/pypiproxy/bin/twistd"
UPSTREAMS = ("http://pypi-cache.internal.example:3141/simple/", "https://public-index.example/simple/")


def unit_settings() -> dict[str, list[str]]:
    """The unit's [Service] settings, each with every value it is given."""
    settings: dict[str, list[str]] = {}
    section = None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif line and not line.startswith("#") and section == "[Service]":
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def tier_args(tier: str) -> list[str]:
    """$PYPIPROXY_ARGS of a tier as systemd passes it: the one quoted value, split at spaces."""
    assignments = [
        line for line in (ETC / f"{tier}.env").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert len(assignments) == 1 and assignments[0].startswith('PYPIPROXY_ARGS="'), assignments
    (assignment,) = shlex.split(assignments[0])
    return assignment.removeprefix("PYPIPROXY_ARGS=").split()


def localise(args: list[str], cache_dir: Path, config_dir: Path, upstream: str, port: int) -> list[str]:
    """The tier's options with this test's directories, upstream and a loopback port."""
    out = []
    for previous, arg in zip([None, *args], args):
        arg = arg.replace(CACHE_DIR, str(cache_dir)).replace(CONFIG_DIR, str(config_dir))
        if previous == "--upstream":
            assert arg in UPSTREAMS, f"an upstream the test does not know: {arg}"
            arg = upstream
        if previous == "--listen":
            arg = re.sub(r"^(tcp|ssl):\d+", rf"\g<1>:{port}", arg)
            arg = re.sub(r":interface=[^:]*", "", arg) + ":interface=127.0.0.1"
        out.append(arg)
    return out


class Service:
    """The unit's ExecStart, run as systemd would: in the cache dir, logging to stdout."""

    def __init__(self, args: list[str], workdir: Path, port: int, scheme: str = "http") -> None:
        (exec_start,) = unit_settings()["ExecStart"]
        argv = shlex.split(exec_start)
        assert argv[0] == INSTALLED_TWISTD and argv[-1] == "$PYPIPROXY_ARGS", exec_start
        self.argv = [TWISTD, *argv[1:-1], *args]
        self.port = port
        self.root_url = f"{scheme}://127.0.0.1:{port}/"
        self.url = self.root_url + "simple/"
        self.log_path = workdir.parent / f"journal-{port}.log"
        env = clean_client_env()
        env["PYTHONPATH"] = str(REPO)
        with open(self.log_path, "wb") as journal:
            self.process = subprocess.Popen(self.argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                                            stdout=journal, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, context: ssl.SSLContext | None = None, timeout: float = 20.0) -> None:
        def answers() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"exited {self.process.returncode}: {self.argv}\n{self.log()}")
            try:
                with urllib.request.urlopen(self.root_url + "+health", timeout=2, context=context):
                    return True
            except OSError:
                return False

        block_until(answers, timeout, 0.1, what=lambda: f"the service to come up: {self.log()}")

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture
def service():
    started: list[Service] = []

    def start(*args, **kwargs) -> Service:
        started.append(Service(*args, **kwargs))
        return started[-1]

    yield start
    for each in started:
        each.stop()


# --------------------------------------------------------------------------- the unit


def test_the_unit_runs_twistd_in_the_foreground_as_its_own_user_hardened():
    settings = unit_settings()
    assert settings["User"] == ["pypiproxy"] and settings["Restart"] == ["on-failure"]
    assert settings["EnvironmentFile"] == [f"{CONFIG_DIR}/pypiproxy.env"]
    (exec_start,) = settings["ExecStart"]
    assert shlex.split(exec_start)[1:4] == ["--nodaemon", "--pidfile=", "pypiproxy"]
    for hardening in ("NoNewPrivileges", "PrivateTmp", "ProtectHome", "PrivateDevices", "RestrictSUIDSGID"):
        assert settings[hardening] == ["yes"], hardening
    assert settings["ProtectSystem"] == ["strict"]
    assert settings["ReadWritePaths"] == [CACHE_DIR]
    for tier in TIERS:
        args = tier_args(tier)
        assert args[args.index("--cache-dir") + 1] == CACHE_DIR, f"{tier}: the unit lets it write only there"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_finds_nothing_wrong_with_the_unit(tmp_path):
    # verify wants the command to exist; everything else is checked as shipped.
    unit = tmp_path / "pypiproxy.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED_TWISTD, TWISTD))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)],
                              capture_output=True, text=True, timeout=60)
    exposure = re.search(r"Overall exposure level for pypiproxy.service: ([\d.]+)", security.stdout + security.stderr)
    if security.returncode == 0 and exposure:  # --offline needs systemd 252 or later
        assert float(exposure.group(1)) <= 2.5, security.stdout


# --------------------------------------------------------------------------- the tiers


def tier_dirs(tmp_path: Path) -> tuple[Path, Path]:
    cache_dir, config_dir = tmp_path / "var-lib-pypiproxy", tmp_path / "etc-pypiproxy"
    cache_dir.mkdir()
    config_dir.mkdir()
    # The upstream logins file the company cache's config names (its host is not ours here).
    (config_dir / "upstream.netrc").write_text((ETC / "upstream.netrc").read_text())
    return cache_dir, config_dir


@pytest.mark.parametrize("tier", ["dev-box", "company-cache"])
@pytest_twisted.ensureDeferred
async def test_a_tier_without_tls_installs_through_its_config(tier, service, fake_index, wheels, tmp_path):
    fake_index.add("app", wheels.wheel("app", "2.0", requires_dist=["dep-one>=1"]))
    fake_index.add("dep-one", wheels.wheel("dep-one", "1.0"))
    cache_dir, config_dir = tier_dirs(tmp_path)
    port = free_port()
    args = localise(tier_args(tier), cache_dir, config_dir, fake_index.url, port)
    proxy = service(args, cache_dir, port)
    await threads.deferToThread(proxy.wait_ready)

    done = await threads.deferToThread(pip_install, proxy.url, tmp_path / "target", "app")
    assert done.returncode == 0, done.stdout + done.stderr + proxy.log()
    assert (tmp_path / "target" / "app" / "__init__.py").read_text() == 'VERSION = "2.0"\n'
    assert (tmp_path / "target" / "dep_one").is_dir()
    assert list((cache_dir / "files").glob("*/*")), "the files were cached in the cache dir"
    assert "pypiproxy serving" in proxy.log()  # logs go to stdout: the journal


@pytest_twisted.ensureDeferred
async def test_the_private_index_tier_takes_uploads_and_logins_over_tls(service, fake_index, tmp_path):
    fake_index.add("public-dep", build_wheel("public-dep", "1.0"))
    cache_dir, config_dir = tier_dirs(tmp_path)
    # What an operator puts in /etc/pypiproxy: a certificate chain and bcrypt users.
    ca = trustme.CA()
    intermediate = ca.create_child_ca()
    leaf = intermediate.issue_cert("127.0.0.1", "localhost")
    tls = config_dir / "tls"
    tls.mkdir()
    leaf.private_key_pem.write_to_path(str(tls / "key.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(tls / "cert.pem"))
    leaf.cert_chain_pems[1].write_to_path(str(tls / "chain.pem"))
    ca_pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    password = "correct-horse-7d1e"
    (config_dir / "htpasswd").write_text(
        f"alice:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}\n"
    )
    port = free_port()
    args = localise(tier_args("private-index"), cache_dir, config_dir, fake_index.url, port)
    proxy = service(args, cache_dir, port, scheme="https")
    context = ssl.create_default_context(cafile=str(ca_pem))
    await threads.deferToThread(proxy.wait_ready, context)

    private = build_wheel("corp-tool", "1.0", requires_dist=["public-dep"])
    done = await threads.deferToThread(
        twine_upload, proxy.root_url + "legacy/", "alice", password, private.save(tmp_path), cert=ca_pem
    )
    assert done.returncode == 0, done.stdout + done.stderr + proxy.log()

    def anonymous_status() -> int:
        try:
            with urllib.request.urlopen(proxy.url, timeout=10, context=context) as response:
                return response.status
        except urllib.error.HTTPError as e:
            return e.code

    assert await threads.deferToThread(anonymous_status) == 401
    with_login = proxy.url.replace("https://", f"https://alice:{password}@")
    installed = await threads.deferToThread(
        pip_install, with_login, tmp_path / "target", "corp-tool", extra=["--cert", str(ca_pem)]
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr + proxy.log()
    assert (tmp_path / "target" / "corp_tool" / "__init__.py").exists()
    assert (tmp_path / "target" / "public_dep").is_dir()
    assert password not in proxy.log()
