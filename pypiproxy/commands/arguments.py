"""argparse types the commands share, over the server's own parsers, so errors read the same."""

from __future__ import annotations

import argparse
from typing import Callable

from ..config import UpstreamIndex, parse_number, parse_upstream


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
