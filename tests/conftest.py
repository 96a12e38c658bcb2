"""Shared pytest fixtures: a fake upstream index, built packages, a clean client environment."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_twisted

# pytest's default "prepend" import mode already does this; keep it working under importlib mode.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from fakeindex import Built, FakeIndex, build_sdist, build_wheel  # noqa: E402


def clean_client_env() -> dict[str, str]:
    """os.environ without any pip/uv settings: this machine's own find-links must not leak in."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith(("PIP_", "UV_"))
    }
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        UV_NO_CONFIG="1",
    )
    return env


@pytest_twisted.async_yield_fixture()
async def fake_index() -> AsyncIterator[FakeIndex]:
    """A started, empty FakeIndex on 127.0.0.1; stopped (connections aborted) afterwards."""
    from twisted.internet import reactor

    index = FakeIndex()
    await index.start(reactor)
    try:
        yield index
    finally:
        await index.stop()


class WheelCache:
    """Builds each (kind, name, version, options) once per session; building is pure."""

    def __init__(self) -> None:
        self._built: dict[tuple[object, ...], Built] = {}

    def _get(self, builder: Callable[..., Built], name: str, version: str, **options: object) -> Built:
        key = (builder.__name__, name, version, tuple(sorted((k, repr(v)) for k, v in options.items())))
        if key not in self._built:
            self._built[key] = builder(name, version, **options)
        return self._built[key]

    def wheel(self, name: str, version: str, **options: object) -> Built:
        """build_wheel(name, version, **options), cached."""
        return self._get(build_wheel, name, version, **options)

    def sdist(self, name: str, version: str, **options: object) -> Built:
        """build_sdist(name, version, **options), cached."""
        return self._get(build_sdist, name, version, **options)


@pytest.fixture(scope="session")
def wheels() -> WheelCache:
    """Session-wide cache of built wheels/sdists (large extra_bytes ones are worth reusing)."""
    return WheelCache()


@pytest.fixture
def client_env() -> dict[str, str]:
    """clean_client_env() as a fixture."""
    return clean_client_env()
