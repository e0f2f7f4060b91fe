"""download_link: the MCP tool that signs links, and the link endpoint an HTTP MCP server
mounts beside /mcp, fetched through the same ASGI app against the real registry."""

import base64
import hashlib
import json
from datetime import datetime

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from fixtures.catalog import LATE_TXT
from fixtures.hostile import HostileRegistry, layer_tar, sized_image
from fixtures.mcp import PUBLIC, deployment, error, link_call, listed_bytes
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.service import Layerpeek
from layerpeek.core.settings import Settings
from layerpeek.links.endpoint import LinkServer
from layerpeek.links.settings import LinkSettings
from layerpeek.server.app import create_server
from layerpeek.server.main import _parser, build, http_options, main

# -- registration ------------------------------------------------------------------------------


async def test_the_tool_is_absent_without_link_settings(allowed, mode, monkeypatch):
    monkeypatch.setenv("LAYERPEEK_LINK_URL", PUBLIC)  # a URL without a secret is not enough
    async with Client(create_server(links=LinkSettings()), mode=mode) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert "inspect_image" in names and "download_link" not in names


async def test_the_tool_is_read_only_described_and_has_an_output_schema(link_env, mode):
    async with Client(create_server(links=LinkSettings()), mode=mode) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    tool = tools["download_link"]
    assert tool.annotations.read_only_hint and not tool.annotations.destructive_hint
    assert set(tool.output_schema["properties"]) == {"url", "expires_at", "size", "digest", "what"}
    assert set(tool.input_schema["properties"]) == {"reference", "layer", "path", "platform"}
    assert all(p.get("description") for p in tool.input_schema["properties"].values())


async def test_the_tool_list_with_download_link_still_fits_in_16_kb(link_env, mode):
    async with Client(create_server(links=LinkSettings()), mode=mode) as client:
        listed = await client.list_tools()
    assert "download_link" in {tool.name for tool in listed.tools}
    assert listed_bytes(listed) <= 16 * 1024


@pytest.mark.parametrize("argv", [[], ["--http"]])
def test_a_bad_link_setting_stops_the_server_with_one_line(monkeypatch, capsys, tmp_path, argv):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAYERPEEK_LINK_HOURS", "soon")
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("layerpeek-mcp: error: invalid LAYERPEEK_LINK_HOURS")


# -- links served by the HTTP deployment that made them ---------------------------------------


async def test_a_layer_link_streams_exactly_the_blob(link_env, plain_registry, catalog):
    image = catalog.gzip
    async with deployment() as served:
        link = await link_call(
            served.mcp, "download_link", reference=image.ref(plain_registry.host), layer=-1
        )
        response = await served.fetch(link["url"])
    blob = image.layers[1].blob
    assert link["digest"] == image.layers[1].digest and link["size"] == len(blob)
    assert response.status_code == 200 and response.content == blob
    assert hashlib.sha256(response.content).hexdigest() == link["digest"].removeprefix("sha256:")
    assert "layer 1" in link["what"] and datetime.fromisoformat(link["expires_at"]).tzinfo


async def test_a_file_link_streams_the_file_the_image_shows_or_a_layer_ships(
    link_env, plain_registry, catalog
):
    ref = catalog.gzip.ref(plain_registry.host)
    async with deployment() as served:
        merged = await link_call(
            served.mcp, "download_link", reference=ref, path="/app/data/late.txt"
        )
        lower = await link_call(
            served.mcp, "download_link", reference=ref, path="etc/hostname", layer=0
        )
        top = await link_call(served.mcp, "download_link", reference=ref, path="etc/hostname")
        bodies = [(await served.fetch(link["url"])).content for link in (merged, lower, top)]
    assert bodies == [LATE_TXT, b"layerpeek\n", b"layerpeek-2\n"]
    assert [merged["size"], lower["size"], top["size"]] == [len(LATE_TXT), 10, 12]
    assert merged["digest"] is None


async def test_a_link_keeps_serving_the_image_it_was_made_for(link_env, plain_registry, catalog):
    """Links pin the manifest digest: the tag name alone is not what they serve."""
    ref = catalog.gzip.ref(plain_registry.host)
    async with deployment() as served:
        link = await link_call(served.mcp, "download_link", reference=ref, path="etc/hostname")
        token = link["url"].rpartition("/")[2]
    body = token.partition(".")[0]
    assert catalog.gzip.digest.encode() in _unb64(body)


async def test_a_link_edited_to_serve_something_else_is_refused(link_env, plain_registry, catalog):
    ref = catalog.gzip.ref(plain_registry.host)
    async with deployment() as served:
        link = await link_call(served.mcp, "download_link", reference=ref, layer=0)
        base, _, token = link["url"].rpartition("/")
        body, _, signature = token.partition(".")
        fields = json.loads(_unb64(body))
        fields["l"] = 1  # the other layer, under the signature for layer 0
        edited = _b64(json.dumps(fields).encode())
        refused = await served.fetch(f"{base}/{edited}.{signature}")
    assert refused.status_code == 403 and "not valid" in refused.text


async def test_an_expired_link_is_refused(link_env, monkeypatch, plain_registry, catalog):
    # Valid for about a microsecond: its expiry (whole seconds, rounded down) has passed
    # before anyone can follow it.
    monkeypatch.setenv("LAYERPEEK_LINK_HOURS", "1e-9")
    ref = catalog.gzip.ref(plain_registry.host)
    async with deployment() as served:
        link = await link_call(served.mcp, "download_link", reference=ref, layer=0)
        refused = await served.fetch(link["url"])
    assert refused.status_code == 410 and "expired" in refused.text


async def test_the_link_route_needs_no_bearer_token_but_mcp_still_does(
    link_env, monkeypatch, plain_registry, catalog
):
    monkeypatch.setenv("LAYERPEEK_MCP_TOKEN", "team-token")
    args = _parser().parse_args(["--http"])
    server, server_settings = build(args)
    app = server.streamable_http_app(host=args.host, **http_options(args, server_settings))
    ref = catalog.gzip.ref(plain_registry.host)
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        bearer = {"Authorization": "Bearer team-token"}
        async with httpx2.AsyncClient(transport=transport, headers=bearer) as http:
            endpoint = streamable_http_client("http://127.0.0.1:8000/mcp", http_client=http)
            async with Client(endpoint, mode="legacy") as mcp:
                link = await link_call(mcp, "download_link", reference=ref, layer=0)
        async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as raw:
            anonymous = await raw.get(link["url"].removeprefix(PUBLIC))
            no_token = await raw.post(
                "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
            )
    assert anonymous.status_code == 200 and anonymous.content == catalog.gzip.layers[0].blob
    assert no_token.status_code == 401


# -- whose downloads a link counts against ------------------------------------------------------


async def test_without_a_bearer_token_each_link_has_its_own_download_quota(
    link_env, monkeypatch, plain_registry, catalog
):
    monkeypatch.setenv("LAYERPEEK_LINK_USER_RATE", "1")
    ref = catalog.gzip.ref(plain_registry.host)
    async with deployment() as served:
        layer = await link_call(served.mcp, "download_link", reference=ref, layer=0)
        file = await link_call(served.mcp, "download_link", reference=ref, path="etc/hostname")
        statuses = [(await served.fetch(link["url"])).status_code for link in (layer, layer, file)]
    assert statuses == [200, 429, 200]
    assert "u" not in json.loads(_unb64(layer["url"].rpartition("/")[2].partition(".")[0]))


async def test_links_made_with_a_bearer_token_share_its_quota_and_do_not_show_it(
    link_env, monkeypatch, plain_registry, catalog
):
    monkeypatch.setenv("LAYERPEEK_LINK_USER_RATE", "1")
    monkeypatch.setenv("LAYERPEEK_MCP_TOKEN", "team-token")
    ref = catalog.gzip.ref(plain_registry.host)
    async with Client(create_server(links=LinkSettings()), mode="auto") as stdio:
        own = await link_call(stdio, "download_link", reference=ref, layer=1)
    async with deployment(bearer="team-token") as served:
        first = await link_call(served.mcp, "download_link", reference=ref, layer=0)
        second = await link_call(served.mcp, "download_link", reference=ref, path="etc/hostname")
        statuses = [(await served.fetch(link["url"])).status_code for link in (first, second, own)]
    assert statuses == [200, 429, 200]
    fields = json.loads(_unb64(first["url"].rpartition("/")[2].partition(".")[0]))
    assert fields["u"] == LinkSettings().quota_key("team-token")
    assert "team-token" not in json.dumps(fields)


# -- stdio: sign here, serve elsewhere ---------------------------------------------------------


async def test_links_signed_over_stdio_are_served_by_another_endpoint_with_the_secret(
    link_env, mode, plain_registry, catalog
):
    """An MCP server without HTTP only signs; e.g. the bot's link server serves its links."""
    async with Client(create_server(links=LinkSettings()), mode=mode) as client:
        link = await link_call(
            client, "download_link", reference=catalog.gzip.ref(plain_registry.host), layer=0
        )
    async with RegistryClient(Settings(), guarded=True) as registry:
        elsewhere = LinkServer(Layerpeek(registry), LinkSettings())
        transport = httpx.ASGITransport(app=elsewhere.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://links") as http:
            response = await http.get(link["url"].removeprefix(PUBLIC))
    assert response.status_code == 200 and response.content == catalog.gzip.layers[0].blob


# -- what the tool refuses ---------------------------------------------------------------------


@pytest.fixture
async def linked(link_env, mode):
    async with Client(create_server(links=LinkSettings()), mode=mode) as client:
        yield client


async def test_a_link_names_a_layer_or_a_file(linked, plain_registry, catalog):
    message = await error(linked, "download_link", reference=catalog.gzip.ref(plain_registry.host))
    assert "layer=N" in message and "path=" in message


async def test_a_missing_file_is_refused_before_a_link_is_made(linked, plain_registry, catalog):
    ref = catalog.gzip.ref(plain_registry.host)
    assert "not a file in any layer" in await error(
        linked, "download_link", reference=ref, path="no/such"
    )
    assert "not a file in layer 0" in await error(
        linked, "download_link", reference=ref, path="app/data/late.txt", layer=0
    )
    symlink = await error(linked, "download_link", reference=ref, path="app/current", layer=0)
    assert "symlink to bin" in symlink


async def test_a_layer_out_of_range_says_how_many_there_are(linked, plain_registry, catalog):
    ref = catalog.gzip.ref(plain_registry.host)
    assert "has 2 layers" in await error(linked, "download_link", reference=ref, layer=5)


async def test_more_than_the_size_cap_is_refused_with_the_setting_named(
    link_env, monkeypatch, plain_registry, catalog
):
    monkeypatch.setenv("LAYERPEEK_LINK_MAX_BYTES", "1000")
    ref = catalog.gzip.ref(plain_registry.host)
    async with Client(create_server(links=LinkSettings()), mode="auto") as client:
        message = await error(client, "download_link", reference=ref, layer=1)
        small = await link_call(client, "download_link", reference=ref, path="etc/hostname")
    assert "LAYERPEEK_LINK_MAX_BYTES" in message and small["size"] == 12


async def test_a_layer_whose_manifest_size_is_not_positive_gets_no_link(linked):
    with HostileRegistry() as hostile:
        digest = sized_image(hostile, "odd/size", layer_tar({"etc/motd": b"hi\n"}), 0)
        message = await error(
            linked, "download_link", reference=f"{hostile.host}/odd/size@{digest}", layer=0
        )
    assert message == (
        "Error executing tool download_link: "
        "layer 0: the manifest gives its size as 0 bytes; a layer blob has at least one, so "
        "the image's manifest is wrong"
    )


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
