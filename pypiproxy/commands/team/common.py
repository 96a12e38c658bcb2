"""What the housekeeping commands share: the cache directory, project names, who is acting."""

from __future__ import annotations

import argparse
import getpass
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from packaging.utils import canonicalize_name

from ...cache import FileStore
from ...private import PrivateStore, StateError, Team
from ...simple import VALID_NAME


class CommandError(Exception):
    """Bad input or state: one line on stderr and exit status 1 (2 for bad usage)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def add_cache_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", required=True, type=Path, help="the servers' --cache-dir")


def project_name(text: str) -> str:
    """An argparse type: a PEP 508 name, normalised."""
    if not VALID_NAME.match(text):
        raise argparse.ArgumentTypeError(f"not a project name: {text!r}")
    return canonicalize_name(text)


def team(args: argparse.Namespace) -> Team:
    return Team.open(_cache_dir(args))


@contextmanager
def private_store(args: argparse.Namespace) -> Iterator[PrivateStore]:
    """The private store of the cache directory, with a temporary folder of this process."""
    files = FileStore(_cache_dir(args))
    try:
        yield PrivateStore(args.cache_dir / "private", files.temporary)
    finally:
        try:
            files.tmp.rmdir()
        except OSError:
            pass


def acting_user() -> str:
    """Who runs the command, for the audit log: console commands need no login."""
    try:
        return f"{getpass.getuser()} (console)"
    except (KeyError, OSError):
        return "console"


def when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M")


def run_checked(prog: str, work, args: argparse.Namespace) -> int:
    """Run a command's work, turning its errors into one line on stderr."""
    try:
        return work(args)
    except CommandError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return e.status
    except StateError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"{prog}: error: {e.filename or ''}: {e.strerror}", file=sys.stderr)
        return 1


def _cache_dir(args: argparse.Namespace) -> Path:
    cache_dir: Path = args.cache_dir
    if not cache_dir.is_dir():
        raise CommandError(f"--cache-dir {str(cache_dir)!r} is not a directory", status=2)
    return cache_dir
