"""End to end: a real ``twistd pypiproxy`` process, a real pip, an upstream that goes away."""

from __future__ import annotations

import pytest_twisted
from twisted.internet import reactor, threads

from conftest import pip_install


@pytest_twisted.ensureDeferred
async def test_pip_installs_with_a_dependency_then_again_with_the_upstream_stopped(
    twistd, fake_index, wheels, tmp_path
):
    fake_index.add("app", wheels.wheel("app", "2.0", requires_dist=["dep-one>=1"]))
    fake_index.add("app", wheels.wheel("app", "1.0"))
    fake_index.add("dep-one", wheels.wheel("dep-one", "1.0"))
    fake_index.add("dep-one", wheels.sdist("dep-one", "0.5"))
    proxy = twistd(["--upstream", fake_index.url, "--index-ttl", "0"])
    await threads.deferToThread(proxy.wait_ready)

    first = await threads.deferToThread(pip_install, proxy.url, tmp_path / "one", "app")
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "one" / "app" / "__init__.py").read_text() == 'VERSION = "2.0"\n'
    assert (tmp_path / "one" / "dep_one" / "__init__.py").exists()
    wheel_fetches = [r for r in fake_index.requests if r.path.endswith("/app-2.0-py3-none-any.whl")]
    assert len(wheel_fetches) == 1

    await fake_index.stop()
    second = await threads.deferToThread(pip_install, proxy.url, tmp_path / "two", "app")
    assert second.returncode == 0, second.stderr + proxy.log()
    assert (tmp_path / "two" / "app" / "__init__.py").read_text() == 'VERSION = "2.0"\n'
    assert "serving stale page for app" in proxy.log()
    # One line per upstream fetch: URL, status, bytes, seconds.
    assert f"upstream fetch {fake_index.url}app/ 200" in proxy.log()
