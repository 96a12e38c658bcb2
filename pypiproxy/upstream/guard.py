"""Where the upstream client may connect: no door to internal services, no https→http downgrade.

A page's file URL may name any host. Fetching it from a loopback, link-local or private
address would let whoever writes a page read the services beside us (DESIGN.md, "Supply-chain
guard"), so each connection's host is resolved first and an address is used only if it is
public, or of the same class as an upstream's own address (a LAN tier's files live on the LAN;
the upstreams themselves are always reachable: the administrator named them). The address
checked is the address connected to, so a name that resolves differently the second time
gains nothing.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Awaitable, Callable, Iterable, Sequence

from twisted.internet import threads
from twisted.web import client as webclient

from ..config import UpstreamIndex

# An address's class, as the guard sees it: "public", "loopback", "link-local" or "private".
AddressClass = Callable[[str], str]
# host, port -> the addresses it resolves to.
Resolve = Callable[[str, int], Awaitable[Sequence[str]]]


class InternalAddressRefused(ConnectionRefusedError):
    """A file URL leads to an internal address we may not connect to (a 502 for clients)."""


class DowngradeRefused(ValueError):
    """An https URL redirected to plain http: a URL we will not send (a 502 for clients)."""


def address_class(address: str) -> str:
    """The class of an IP address: where a connection to it leads."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback or ip.is_unspecified:  # 0.0.0.0 reaches this host too
        return "loopback"
    if ip.is_link_local:  # 169.254.169.254: cloud metadata services
        return "link-local"
    if ip.is_private or ip.is_reserved or ip.is_multicast or not ip.is_global:
        return "private"
    return "public"


async def resolve_host(host: str, port: int) -> Sequence[str]:
    """The addresses a host name resolves to (the system's resolver, in a thread)."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return [host]
    except ValueError:
        pass
    found = await threads.deferToThread(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in found))


class ConnectGuard:
    """Decides which of a host's addresses the upstream client may connect to."""

    def __init__(
        self,
        upstreams: Iterable[UpstreamIndex],
        resolve: Resolve = resolve_host,
        classify: AddressClass = address_class,
    ) -> None:
        self._upstreams = {(u.origin[1], u.origin[2]) for u in upstreams}
        self._resolve = resolve
        self._classify = classify
        self._upstream_classes: set[str] | None = None

    async def addresses(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` we may connect to, best first; raises
        InternalAddressRefused when there are none."""
        host = host.strip("[]").lower()
        found = list(await self._resolve(host, port))
        if (host, port) in self._upstreams:
            return found
        allowed = {"public"} | await self._classes_of_upstreams()
        usable = [a for a in found if self._classify(a) in allowed]
        if not usable:
            classes = sorted({self._classify(a) for a in found}) or ["unresolved"]
            raise InternalAddressRefused(
                f"refused to fetch from {host}: a {'/'.join(classes)} address, and no upstream is at one"
            )
        return usable

    async def _classes_of_upstreams(self) -> set[str]:
        if self._upstream_classes is None:
            classes: set[str] = set()
            for host, port in self._upstreams:
                try:
                    classes.update(self._classify(a) for a in await self._resolve(host, port))
                except OSError:
                    return classes  # learnt on a later try, once it resolves
            self._upstream_classes = classes
        return self._upstream_classes


class NoDowngradeRedirects(webclient.BrowserLikeRedirectAgent):
    """Follows redirects as browsers do, except from https to anything else."""

    def _handleRedirect(self, response, method, uri, headers, redirectCount):  # type: ignore[no-untyped-def]
        locations = response.headers.getRawHeaders(b"location", [])
        if locations and uri.lower().startswith(b"https:"):
            target = self._resolveLocation(uri, locations[0])
            if not target.lower().startswith(b"https:"):
                raise DowngradeRefused(
                    f"refused a redirect from https to {target.decode('latin-1').split(':', 1)[0]}"
                )
        return super()._handleRedirect(response, method, uri, headers, redirectCount)
