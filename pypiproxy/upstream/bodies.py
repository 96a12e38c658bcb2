"""Reading a small upstream body whole, refusing it past a cap (the rest is never read)."""

from __future__ import annotations

from .client import UpstreamError, UpstreamResponse


class BodyTooLarge(UpstreamError):
    """The upstream's body is over the size we accept for it; its reading was stopped."""


async def read_at_most(response: UpstreamResponse, limit: int, what: str) -> bytes:
    """The whole body, or BodyTooLarge as soon as it (or its Content-Length) passes ``limit``."""
    if response.length is not None and response.length > limit:
        response.abort()
        raise BodyTooLarge(f"{what} is over {limit} bytes ({response.length})")
    chunks: list[bytes] = []
    received = 0

    def collect(data: bytes) -> None:
        nonlocal received
        received += len(data)
        if received > limit:
            raise BodyTooLarge(f"{what} is over {limit} bytes")
        chunks.append(data)

    await response.stream(collect)  # a raise in collect stops the reading and fails it
    return b"".join(chunks)
