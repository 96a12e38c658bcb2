#!/usr/bin/env python3
"""The floor under (S3): a bare Twisted ``Site`` answering every GET with one fixed body and
its content type, with no access log and nothing else. A script of its own, run with the
pypiproxy venv's Python (it needs Twisted, which the benchmark itself does not), started by
``scale.Floor``:

    python benchmarks/floor.py PORT BODY_FILE CONTENT_TYPE

What it reaches is what any page served through twisted.web costs on this machine: the warm
page path of pypiproxy is measured against it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import Site


class Fixed(Resource):
    isLeaf = True

    def __init__(self, body: bytes, content_type: bytes) -> None:
        super().__init__()
        self.body, self.content_type = body, content_type

    def render_GET(self, request):  # type: ignore[no-untyped-def]
        request.setHeader(b"content-type", self.content_type)
        return self.body


def main(port: int, body: bytes, content_type: bytes) -> None:
    site = Site(Fixed(body, content_type))
    site.log = lambda request: None  # no access line at all
    reactor.listenTCP(port, site, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]).read_bytes(), sys.argv[3].encode())
