"""``pypiproxy yank|unyank PROJECT VERSION``: mark a private release yanked (PEP 592), or not."""

from __future__ import annotations

import argparse

from ...private import NoSuchRelease
from .common import CommandError, acting_user, add_cache_dir, private_store, project_name, run_checked, team


def configure(parser: argparse.ArgumentParser) -> None:
    add_cache_dir(parser)
    parser.add_argument("project", type=project_name)
    parser.add_argument("version")
    parser.add_argument("--reason", help="why (shown by pip and uv when the version is still chosen)")
    parser.epilog = "Installers skip a yanked version unless it is pinned exactly (==VERSION)."


def run(args: argparse.Namespace) -> int:
    return run_checked("pypiproxy yank", lambda a: change(a, yanked=True), args)


def change(args: argparse.Namespace, yanked: bool) -> int:
    with private_store(args) as store:
        try:
            files = store.set_yanked(args.project, args.version, yanked, args.reason)
        except NoSuchRelease as e:
            raise CommandError(str(e)) from None
    event = "yank" if yanked else "unyank"
    team(args).audit.record(event, acting_user(), project=args.project, version=args.version,
                            reason=args.reason if yanked else None, files=len(files))
    for stored in files:
        print(f"{event}ed {stored.filename}")
    return 0
