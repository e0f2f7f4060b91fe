"""MCP ``list_packages`` through the SDK's own Client, on the package images, against the
truth of the package tools (test_packages holds those comparisons)."""

import pytest
from mcp import Client

from fixtures.mcp import CURSOR_KEY, call
from fixtures.package_images import dpkg_installed
from layerpeek.server.app import create_server

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["legacy", "auto"])
async def mcp(request, layerpeek_env, monkeypatch, tmp_path):
    """The server as test_mcp_server runs it (local registries allowed), in both modes."""
    monkeypatch.setenv("LAYERPEEK_ALLOW_PRIVATE", "127.0.0.1")
    monkeypatch.chdir(tmp_path)
    async with Client(create_server(cursor_key=CURSOR_KEY), mode=request.param) as client:
        yield client


async def test_list_packages_pages_through_the_dpkg_inventory(mcp, plain_registry, package_images):
    ref = package_images.debian.ref(plain_registry.host)
    found, cursor, pages = [], None, 0
    while True:
        page = await call(
            mcp, "list_packages", reference=ref, kinds=["deb"], limit=300, cursor=cursor
        )
        found += page["packages"]["packages"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    truth = dpkg_installed(package_images.trees.dpkg_admin)
    assert {(p["name"], p["version"], p["arch"]) for p in found} == truth
    assert page["total"] == len(truth) == len(found) and page["counts"] == {"deb": len(truth)}
    assert pages == -(-len(truth) // 300)


async def test_list_packages_filters_by_name_and_says_what_it_did_not_read(
    mcp, plain_registry, package_images
):
    ref = package_images.broken.ref(plain_registry.host)
    result = await mcp.call_tool("list_packages", {"reference": ref, "name": "GOO"})
    page = result.structured_content
    assert [p["name"] for p in page["packages"]["packages"]] == ["good"]
    assert page["total"] == 1 and page["counts"] == {"npm": 1}
    text = result.content[0].text
    assert "NOT READ: var/lib/rpm/Packages (layer 0): a BerkeleyDB rpmdb" in text
    assert "1 packages in" in text and "npm good 1.0.0  layer 0" in text


async def test_list_packages_refuses_an_unknown_kind(mcp, plain_registry, package_images):
    ref = package_images.alpine.ref(plain_registry.host)
    result = await mcp.call_tool("list_packages", {"reference": ref, "kinds": ["gem"]})
    assert result.is_error


async def test_diff_packages_pages_through_the_changes(mcp, plain_registry, package_images):
    step1 = package_images.dpkg_step1.ref(plain_registry.host)
    latest = package_images.dpkg_layers.ref(plain_registry.host)
    first = await call(mcp, "diff_packages", a=step1, b=latest, limit=2)
    rest = await call(mcp, "diff_packages", a=step1, b=latest, cursor=first["next_cursor"])
    changes = first["changes"]["changes"] + rest["changes"]["changes"]
    assert [(c["change"], c["name"], c["before"], c["after"]) for c in changes] == [
        ("added", "extra", None, "0.1"),
        ("removed", "gone", "1.0", None),
        ("upgraded", "tiny", "1.0", "2.0"),
    ]
    assert first["total"] == 3 and first["counts"] == {"added": 1, "removed": 1, "upgraded": 1}
    assert rest["next_cursor"] is None and first["unread"] == []
    base = len(dpkg_installed(package_images.trees.dpkg_admin))
    assert first["changes"]["unchanged"] == base
