"""The access log: its lines are Twisted's combined format; its buffered writer sends them
together, within half a second, none lost."""

from __future__ import annotations

import pytest
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.task import Clock
from twisted.web.http import Request, combinedLogFormatter
from twisted.web.test.requesthelper import DummyChannel

from pypiproxy.web.accesslog import FLUSH_DELAY, FLUSH_SIZE, BufferedLines, combined_line

PIP_AGENT = b'pip/24.0 {"ci":null,"cpu":"x86_64","implementation":{"name":"CPython","version":"3.11.7"}}'


def _request(uri=b"/simple/demo/", agent=PIP_AGENT, referrer=None, method=b"GET", protocol=b"HTTP/1.1",
             client=IPv4Address("TCP", "10.1.2.3", 50000), code=200, sent=4737) -> Request:
    request = Request(DummyChannel(), False)
    request.method, request.uri, request.clientproto, request.client = method, uri, protocol, client
    request.code, request.sentLength = code, sent
    for name, value in ((b"user-agent", agent), (b"referer", referrer)):
        if value is not None:
            request.requestHeaders.setRawHeaders(name, [value])
    return request


@pytest.mark.parametrize("request_", [
    _request(),
    _request(agent=None, code=304, sent=0),  # no agent, nothing sent: both "-"
    _request(uri=b"/simple/it's/?format=json", referrer=b"http://corp.test/+search?q=a'b"),
    _request(agent=b'evil "quoted" agent'),
    _request(agent=b'it\'s "both"', referrer=b"\"'\"'"),
    _request(agent=b"back\\slash", referrer=b"tab\there"),
    _request(uri=b"/simple/caf\xc3\xa9/", agent=b"\x1b[31mred\x1b[0m"),
    _request(method=b"PROPFIND", protocol=b"HTTP/1.0", client=IPv6Address("TCP", "fe80::1%eth0", 50000)),
    _request(client=UNIXAddress(b"/run/pypiproxy.sock")),
], ids=["pip", "empty", "apostrophes", "quotes", "both-quotes", "backslash-tab", "non-ascii", "ipv6", "unix"])
def test_a_line_is_twisteds_combined_format_to_the_byte(request_):
    stamp = "[01/Dec/2026:14:41:22 +0000]"
    assert combined_line(stamp, request_) == combinedLogFormatter(stamp, request_)


def test_lines_are_written_together_after_a_short_delay_or_when_many():
    clock, written, closed = Clock(), [], []
    lines = BufferedLines(lambda batch: written.append("".join(batch)), clock, close=lambda: closed.append(True))
    lines.write("one\n")
    lines.write("two\n")
    assert written == []
    clock.advance(FLUSH_DELAY)
    assert written == ["one\ntwo\n"]
    big = "x" * (FLUSH_SIZE // 2) + "\n"
    lines.write(big)
    lines.write(big)  # over the size: written at once, no timer needed
    assert written[1:] == [big + big]
    assert clock.getDelayedCalls() == []
    lines.write("last\n")
    lines.close()  # at stop: nothing is lost
    assert written[2:] == ["last\n"] and closed == [True]
    assert clock.getDelayedCalls() == []
