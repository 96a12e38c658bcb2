"""argparse types the commands share, over the server's own parsers, so errors read the same."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from ..config import UpstreamIndex, parse_number, parse_upstream, with_credentials_from


def index_url(option: str) -> Callable[[str], UpstreamIndex]:
    """An http(s) Simple API root, credentials split off (``https://user:pass@host/simple/``)."""

    def parse(value: str) -> UpstreamIndex:
        try:
            return parse_upstream(value, option)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return parse


def positive(kind: type = float) -> Callable[[str], float]:
    """A number above zero (``int`` or ``float``)."""

    def parse(value: str) -> float:
        try:
            return parse_number(value, "value", kind=kind)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).removeprefix("value: ")) from None

    return parse


def add_credentials_option(parser: argparse.ArgumentParser) -> None:
    """``--upstream-credentials FILE``, as the server has it."""
    parser.add_argument(
        "--upstream-credentials",
        type=Path,
        metavar="FILE",
        help="netrc file with the index's login, matched by host (keeps the password out of ps)",
    )


def index_with_credentials(index: UpstreamIndex | None, credentials: Path | None) -> UpstreamIndex | None:
    """The index, with the login the ``--upstream-credentials`` file has for its host;
    ValueError (one line) for a file that cannot be read."""
    if index is None or credentials is None:
        return index
    return with_credentials_from(credentials, [index], "--upstream-credentials")[0]
