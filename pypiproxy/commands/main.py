"""The ``pypiproxy`` console script: picks the subcommand and hands over to its own module."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from typing import NoReturn

# (name, module, one-line help). A command module offers ``configure(parser)``, which adds
# its options, and ``run(args) -> int``, which does the work and returns the exit status.
# Modules are imported when the parser is built, so every command's --help is complete.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("warm", "pypiproxy.commands.warm", "fill a proxy's cache from requirements files"),
    ("import", "pypiproxy.commands.importer", "move private packages in from folders or another index"),
    ("verify", "pypiproxy.commands.verify", "check every cached file against its hash; remove bad ones"),
    ("token", "pypiproxy.commands.team.token", "API tokens: create (printed once), list, revoke"),
    ("owner", "pypiproxy.commands.team.owner", "who may upload to a private project: add, remove, list"),
    ("claim", "pypiproxy.commands.team.claim", "let a private project take a name an upstream also serves"),
    ("yank", "pypiproxy.commands.team.yank", "mark a private release yanked (PEP 592)"),
    ("unyank", "pypiproxy.commands.team.unyank", "undo a yank"),
    ("remove", "pypiproxy.commands.team.remove", "delete private files for good (their names stay used)"),
)


class _Parser(argparse.ArgumentParser):
    """Bad usage is one line on stderr and exit status 2, as the server's options promise."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(commands: Sequence[tuple[str, str, str]] = COMMANDS) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pypiproxy",
        description="Commands of pypiproxy that are not the server (that is `twistd pypiproxy`).",
    )
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name, summary in commands:
        module = importlib.import_module(module_name)
        command = subcommands.add_parser(name, help=summary, description=summary)
        module.configure(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args = build_parser().parse_args(argv)
    raise SystemExit(args.run(args))


if __name__ == "__main__":
    main()
