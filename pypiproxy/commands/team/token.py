"""``pypiproxy token create|list|revoke``: API tokens, shown once at creation, kept as a hash."""

from __future__ import annotations

import argparse
import sys
import time

from ...config import parse_duration
from ...private import NoSuchToken
from .common import CommandError, acting_user, add_cache_dir, project_name, run_checked, team, when


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="make a token and print it (once)")
    add_cache_dir(create)
    create.add_argument("--user", required=True, help="the htpasswd user whose rights the token carries")
    create.add_argument("--project", action="append", default=[], type=project_name,
                        help="only these projects (repeatable); default: all the user may upload to")
    create.add_argument("--read-only", action="store_true", help="a token that can never upload")
    create.add_argument("--expires", help="lifetime: 90d, 36h, 15m (default: never)")
    create.add_argument("--description", default="", help="what the token is for")
    listing = actions.add_parser("list", help="list tokens (never their secrets)")
    add_cache_dir(listing)
    listing.add_argument("--user", help="only this user's")
    revoke = actions.add_parser("revoke", help="revoke a token by id, at once in every server")
    add_cache_dir(revoke)
    revoke.add_argument("id", help="the token's id (from token list)")
    parser.epilog = (
        "Clients log in with the user name __token__ and the token as password "
        "(twine upload -u __token__, uv publish --token). The token is printed once on stdout."
    )


def run(args: argparse.Namespace) -> int:
    return run_checked(f"pypiproxy token {args.action}", _ACTIONS[args.action], args)


def _create(args: argparse.Namespace) -> int:
    try:
        lifetime = parse_duration(args.expires, "--expires") if args.expires else None
    except ValueError as e:
        raise CommandError(str(e), status=2) from None
    if not args.user or ":" in args.user:
        raise CommandError(f"--user: not a user name: {args.user!r}", status=2)
    state = team(args)
    token, secret = state.tokens.create(args.user, time.time(), args.project, args.read_only, lifetime,
                                        args.description)
    state.audit.record("token-create", acting_user(), token=token.id, for_user=token.user, scope=token.scope)
    print(f"created token {token.id} for {token.user} ({token.scope}, expires {when(token.expires)}); "
          "it is shown only now:", file=sys.stderr)
    print(secret)
    return 0


def _list(args: argparse.Namespace) -> int:
    tokens = team(args).tokens.tokens(args.user)
    rows = [("ID", "USER", "SCOPE", "CREATED", "EXPIRES", "LAST USED", "DESCRIPTION")]
    rows += [(t.id, t.user, t.scope, when(t.created), when(t.expires), when(t.last_used), t.description)
             for t in tokens]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    return 0


def _revoke(args: argparse.Namespace) -> int:
    state = team(args)
    try:
        token = state.tokens.revoke(args.id)
    except NoSuchToken:
        raise CommandError(f"no token with id {args.id!r} (see pypiproxy token list)") from None
    state.audit.record("token-revoke", acting_user(), token=token.id, for_user=token.user)
    print(f"revoked token {token.id} of {token.user}")
    return 0


_ACTIONS = {"create": _create, "list": _list, "revoke": _revoke}
