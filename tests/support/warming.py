"""Running ``pypiproxy warm`` in this process, and counting what it asked the fake index for."""

from __future__ import annotations

import io

from pypiproxy.commands.main import build_parser
from pypiproxy.commands.warm.command import execute

from .builders import Built
from .fakeindex import FakeIndex


def fetched(index: FakeIndex, built: Built) -> int:
    """How often the file itself (not its .metadata) was asked for."""
    path = index.entry(built.filename).path
    return sum(1 for r in index.requests if r.path == path)


def file_requests(index: FakeIndex) -> list[str]:
    """The files (not .metadata) asked for, by name, sorted."""
    return sorted(
        r.path.rsplit("/", 1)[-1]
        for r in index.requests
        if r.path.startswith("/files/") and not r.path.endswith(".metadata")
    )


async def warm(*argv: str, tty: bool = False) -> tuple[int, str, str]:
    """Run ``pypiproxy warm ARGV`` in this process's reactor: (exit status, stdout, stderr)."""
    from twisted.internet import reactor

    args = build_parser().parse_args(["warm", "--quiet", *argv] if not tty else ["warm", *argv])
    out = io.StringIO()
    err = _TTY() if tty else io.StringIO()
    code = await execute(reactor, args, out, err)
    return code, out.getvalue(), err.getvalue()


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True
