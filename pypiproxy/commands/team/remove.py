"""``pypiproxy remove PROJECT [VERSION [FILENAME]]``: delete private files for good; their names stay used."""

from __future__ import annotations

import argparse

from ...private import NoSuchRelease
from .common import CommandError, acting_user, add_cache_dir, private_store, project_name, run_checked, team


def configure(parser: argparse.ArgumentParser) -> None:
    add_cache_dir(parser)
    parser.add_argument("project", type=project_name)
    parser.add_argument("version", nargs="?")
    parser.add_argument("filename", nargs="?")
    parser.epilog = (
        "Without VERSION every private file of PROJECT goes. A removed file's name can never be "
        "uploaded again (400), so a pinned hash never changes meaning: upload a new version instead."
    )


def run(args: argparse.Namespace) -> int:
    return run_checked("pypiproxy remove", _remove, args)


def _remove(args: argparse.Namespace) -> int:
    with private_store(args) as store:
        try:
            files = store.remove(args.project, args.version, args.filename)
        except NoSuchRelease as e:
            raise CommandError(str(e)) from None
    audit = team(args).audit
    for stored in files:
        audit.record("remove", acting_user(), project=args.project, filename=stored.filename, sha256=stored.sha256)
        print(f"removed {stored.filename}")
    return 0
