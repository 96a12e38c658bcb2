"""Small leaks: the memory of upstream 404s is bounded; 502s name the upstream by host only."""

from __future__ import annotations

import pytest_twisted

import pypiproxy.cache.pages


def page_cache(proxy):
    """The PageCache behind a proxy's /simple/ (under the wrappers of the private tier and the guard)."""
    pages = proxy.site.resource.children[b"simple"]._components.pages
    while not hasattr(pages, "_not_found"):
        pages = pages._pages
    return pages


@pytest_twisted.ensureDeferred
async def test_the_memory_of_upstream_404s_is_bounded(proxy, fake_index, monkeypatch):
    monkeypatch.setattr(pypiproxy.cache.pages, "NOT_FOUND_MAX", 5, raising=False)
    for n in range(20):
        response, _ = await proxy.get(f"simple/made-up-{n}/")
        assert response.code == 404
    remembered = page_cache(proxy)._not_found
    assert list(remembered) == [f"made-up-{n}" for n in range(15, 20)]
    asked = fake_index.count("/simple/made-up-19/")
    response, _ = await proxy.get("simple/made-up-19/")  # still remembered: not asked again
    assert response.code == 404 and fake_index.count("/simple/made-up-19/") == asked


@pytest_twisted.ensureDeferred
async def test_a_502_names_the_upstream_by_host_never_its_url(make_proxy, fake_index):
    fake_index.fail_pages = 500
    proxy = await make_proxy(fake_index.url.replace("/simple/", "/simple/?token=s3cret-path"))
    response, body = await proxy.get("simple/anything/")
    assert response.code == 502
    assert f"127.0.0.1:{fake_index.port}".encode() in body
    assert b"http://" not in body and b"s3cret" not in body and b"/simple/" not in body
    assert b"http://" not in response.phrase


@pytest_twisted.ensureDeferred
async def test_a_very_long_valid_project_name_is_a_404_without_asking_upstream(proxy, fake_index):
    name = "a" + "-b" * 2000  # a valid PEP 508 name of 4001 characters
    for path in (f"simple/{name}/", f"files/{name}/{'a' * 64}/x-1.0.tar.gz"):
        response, body = await proxy.get(path)
        assert response.code == 404, body[:200]
    assert fake_index.count(name[:50]) == 0
