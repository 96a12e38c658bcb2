"""The upstream client is no door to internal services: file URLs to internal addresses, and
https→http redirects, are refused. Only loopback addresses ever receive traffic here."""

from __future__ import annotations

import json

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import Site

from pypiproxy.config import parse_upstream
from pypiproxy.upstream import (
    ConnectGuard, DowngradeRefused, InternalAddressRefused, UpstreamClient, address_class, fetch_project,
)
from pypiproxy.upstream.guard import NoDowngradeRedirects

from support.cache import file_path


class Secret(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    def render_GET(self, request) -> bytes:
        self.asked += 1
        return b"SECRET of the service beside the proxy"


def test_addresses_are_classed_by_where_they_lead():
    assert [address_class(a) for a in ("127.0.0.1", "::1", "0.0.0.0", "::ffff:127.0.0.1")] == ["loopback"] * 4
    assert [address_class(a) for a in ("169.254.169.254", "fe80::1")] == ["link-local"] * 2
    assert [address_class(a) for a in ("10.1.2.3", "172.16.0.1", "192.168.1.1", "fd00::1", "100.64.0.1")] == [
        "private"] * 5
    assert address_class("1.1.1.1") == "public" and address_class("2606:4700::1111") == "public"


@pytest_twisted.ensureDeferred
async def test_a_loopback_upstream_may_not_reach_private_or_link_local_addresses():
    async def resolve(host, port):  # nothing is resolved, nothing is connected to
        return {"files.lan.test": ["10.0.0.7"]}.get(host, [host])

    guard = ConnectGuard([parse_upstream("http://127.0.0.1:3141/simple/")], resolve=resolve)
    assert await guard.addresses("127.0.0.1", 3141) == ["127.0.0.1"]  # the upstream itself
    assert await guard.addresses("127.0.0.1", 8080) == ["127.0.0.1"]  # same class as the upstream
    for host in ("10.0.0.1", "169.254.169.254", "[fe80::1]", "files.lan.test", "192.168.0.1"):
        with pytest.raises(InternalAddressRefused):
            await guard.addresses(host, 80)
    assert await guard.addresses("8.8.8.8", 80) == ["8.8.8.8"]


@pytest_twisted.ensureDeferred
async def test_a_page_of_a_public_upstream_cannot_fetch_from_a_loopback_service(make_proxy, fake_index, wheels):
    secret = Secret()
    # The service beside the proxy: on another loopback address, as 10.x or 169.254.x would be.
    port = reactor.listenTCP(0, Site(secret), interface="127.0.0.2")
    try:
        # The fake index on 127.0.0.1 is taken for a public upstream; every other address for
        # what it really is.
        guard = ConnectGuard(
            [parse_upstream(fake_index.url)],
            classify=lambda a: "public" if a == "127.0.0.1" else address_class(a),
        )
        proxy = await make_proxy(fake_index.url, connect_guard=guard)
        fake_index.add_project("trav")
        url = f"http://127.0.0.2:{port.getHost().port}/secret-1.0.tar.gz"
        page = {"meta": {"api-version": "1.0"}, "name": "trav",
                "files": [{"filename": "secret-1.0.tar.gz", "url": url, "hashes": {}}]}
        fake_index.raw_pages["trav"] = (json.dumps(page).encode(), "application/vnd.pypi.simple.v1+json")
        path = await file_path(proxy, "trav", "secret-1.0.tar.gz")
        for headers in ({}, {"Range": "bytes=0-5"}):
            response, body = await proxy.get(path, headers)
            assert response.code == 502 and b"SECRET" not in body, body
            assert b"refused to fetch from 127.0.0.2" in body
        response, _ = await proxy.get(path + ".metadata")
        assert response.code == 404
        assert secret.asked == 0
    finally:
        await port.stopListening()


class _Redirecting:
    """An agent answering every https request with a redirect to plain http."""

    def __init__(self) -> None:
        self.asked: list[bytes] = []

    def request(self, method, uri, headers=None, bodyProducer=None):
        from twisted.web.client import Response

        self.asked.append(uri)
        response = Response((b"HTTP", 1, 1), 302, b"Found", Headers({b"location": [b"http://127.0.0.1:1/x"]}), None)
        return defer.succeed(response)


@pytest_twisted.ensureDeferred
async def test_https_redirects_to_http_are_refused():
    agent = _Redirecting()
    with pytest.raises(DowngradeRefused):
        await NoDowngradeRedirects(agent).request(b"GET", b"https://127.0.0.1:1/simple/x/")
    assert agent.asked == [b"https://127.0.0.1:1/simple/x/"]  # the http URL was never asked


@pytest_twisted.ensureDeferred
async def test_the_address_the_guard_chose_is_connected_to_without_resolving_it_again(fake_index, wheels):
    """The guard has the addresses already: a resolver asked once more per connection would be
    a trip through the reactor's thread pool, queued behind every download's disk writes."""
    asked: list[str] = []

    class Recording:
        def __init__(self, resolver) -> None:
            self.resolver = resolver

        def resolveHostName(self, receiver, hostName, *args, **kwargs):
            asked.append(hostName)
            return self.resolver.resolveHostName(receiver, hostName, *args, **kwargs)

    fake_index.add("demo", wheels.wheel("demo", "1.0"))
    previous = reactor.installNameResolver(Recording(reactor.nameResolver))
    client = UpstreamClient(reactor, [parse_upstream(fake_index.url)], timeout=10)
    try:
        fetched = await fetch_project(client, fake_index.url, "demo")
        assert [f.filename for f in fetched.page.files] == [wheels.wheel("demo", "1.0").filename]
        assert asked == []
    finally:
        reactor.installNameResolver(previous)
        await client.close()
