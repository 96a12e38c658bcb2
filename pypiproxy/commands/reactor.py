"""Running a console command's coroutine in a reactor of its own: the one runner every command uses."""

from __future__ import annotations

import sys
import traceback
from typing import Any, Awaitable, Callable

from twisted.internet import defer, task


def run_command(prog: str, main: Callable[[Any], Awaitable[int]]) -> int:
    """Run ``main(reactor)`` (``task.react``); what it returns is the exit status.

    Ctrl-C stops the reactor, which cancels the work (so a progress bar is taken down) and
    gives 130; a bug is shown with its traceback (a console command has no log) and gives 1.
    """
    status: list[int] = []

    async def run(reactor: Any) -> None:
        work = defer.ensureDeferred(main(reactor))
        reactor.addSystemEventTrigger("before", "shutdown", work.cancel)
        try:
            status.append(await work)
        except defer.CancelledError:
            pass
        except Exception:
            traceback.print_exc()
            status.append(1)

    try:
        task.react(run)
    except SystemExit:
        pass  # react always exits; the status is ours
    if not status:
        sys.stderr.write(f"{prog}: interrupted\n")
        return 130
    return status[0]
