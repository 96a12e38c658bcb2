"""``pypiproxy owner add|remove|list``: who may upload to a private project (besides admins)."""

from __future__ import annotations

import argparse

from .common import CommandError, acting_user, add_cache_dir, project_name, run_checked, team


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action, summary in (("add", "make USER an owner of PROJECT"), ("remove", "take USER's ownership away")):
        sub = actions.add_parser(action, help=summary)
        add_cache_dir(sub)
        sub.add_argument("project", type=project_name)
        sub.add_argument("user")
    listing = actions.add_parser("list", help="the owners of one project, or of every project")
    add_cache_dir(listing)
    listing.add_argument("project", nargs="?", type=project_name)


def run(args: argparse.Namespace) -> int:
    return run_checked(f"pypiproxy owner {args.action}", _ACTIONS[args.action], args)


def _add(args: argparse.Namespace) -> int:
    state = team(args)
    if not state.owners.add(args.project, args.user):
        raise CommandError(f"{args.user!r} already owns {args.project!r}")
    state.audit.record("owner-add", acting_user(), project=args.project, owner=args.user)
    print(f"{args.user} now owns {args.project}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    state = team(args)
    if not state.owners.remove(args.project, args.user):
        raise CommandError(f"{args.user!r} does not own {args.project!r}")
    state.audit.record("owner-remove", acting_user(), project=args.project, owner=args.user)
    print(f"{args.user} no longer owns {args.project}")
    return 0


def _list(args: argparse.Namespace) -> int:
    owners = team(args).owners.all()
    if args.project is not None:
        owners = {args.project: owners.get(args.project, ())}
    for project, users in owners.items():
        print(f"{project}: {' '.join(users) if users else '(no owner: only admins may upload)'}")
    return 0


_ACTIONS = {"add": _add, "remove": _remove, "list": _list}
