"""The access log's buffered writer: lines go out together, within half a second, none lost."""

from __future__ import annotations

from twisted.internet.task import Clock

from pypiproxy.web.accesslog import FLUSH_DELAY, FLUSH_SIZE, BufferedLines


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
