"""``pypiproxy claim NAME``: let a private project take a name that an upstream also serves."""

from __future__ import annotations

import argparse
import time

from .common import acting_user, add_cache_dir, project_name, run_checked, team


def configure(parser: argparse.ArgumentParser) -> None:
    add_cache_dir(parser)
    parser.add_argument("name", type=project_name, help="the project name")
    parser.epilog = (
        "Once a private file of NAME is uploaded, every client of this server sees only the private "
        "files of NAME, never the upstream's: claim a name only for a project that is yours."
    )


def run(args: argparse.Namespace) -> int:
    return run_checked("pypiproxy claim", _claim, args)


def _claim(args: argparse.Namespace) -> int:
    state = team(args)
    user = acting_user()
    if not state.claims.claim(args.name, user, time.time()):
        print(f"{args.name} was claimed already")
        return 0
    state.audit.record("claim", user, project=args.name)
    print(f"claimed {args.name}: uploads may now create it privately")
    return 0
