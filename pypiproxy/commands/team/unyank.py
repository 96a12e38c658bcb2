"""``pypiproxy unyank PROJECT VERSION``: undo a yank."""

from __future__ import annotations

import argparse

from .common import add_cache_dir, project_name, run_checked
from .yank import change


def configure(parser: argparse.ArgumentParser) -> None:
    add_cache_dir(parser)
    parser.add_argument("project", type=project_name)
    parser.add_argument("version")


def run(args: argparse.Namespace) -> int:
    args.reason = None
    return run_checked("pypiproxy unyank", lambda a: change(a, yanked=False), args)
