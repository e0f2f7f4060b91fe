"""The MCP server through the SDK's own Client, in-process, against the real registry.

Every test runs in both client modes: "legacy" goes through the initialize handshake and
JSON-RPC serialisation, "auto" through the SDK's direct in-process dispatch.
"""

import base64
import hashlib
import json
from contextlib import asynccontextmanager

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from fixtures.catalog import LATE_TXT, TAG_NAMES
from fixtures.images import Member, Pusher, image_config, make_layer, seeded_bytes
from fixtures.mcp import CURSOR_KEY, call, error, listed_bytes
from layerpeek.server.app import create_server
from layerpeek.server.cursor import CursorCodec
from layerpeek.server.main import _parser, build, http_options

TOOL_NAMES = {
    "inspect_image",
    "list_files",
    "read_file",
    "list_tags",
    "find_files",
    "trace_path",
    "removed_files",
    "diff_images",
    "triage_image",
    "list_packages",
    "diff_packages",
}
BIG_REPO = "mcp/big"


def resigned(cursor: str, **changes) -> str:
    """The cursor with its position edited and signed again with the server's key."""
    body = cursor.split(".")[0]
    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    data.update(changes)
    return CursorCodec(CURSOR_KEY).encode(data.pop("k"), data.pop("q"), **data)


# -- the tool list ---------------------------------------------------------------------------


async def test_tools_are_read_only_described_and_have_output_schemas(mcp):
    tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}
    assert set(tools) == TOOL_NAMES
    for tool in tools.values():
        assert tool.description and tool.output_schema["type"] == "object"
        assert tool.annotations.read_only_hint and not tool.annotations.destructive_hint
        for name, schema in tool.input_schema["properties"].items():
            assert schema.get("description"), f"{tool.name}.{name} has no description"


async def test_the_tool_list_fits_in_16_kb_and_reads_as_plain_sentences(mcp):
    listed = await mcp.list_tools()
    assert listed_bytes(listed) <= 16 * 1024
    for tool in listed.tools:
        texts = [tool.description]
        texts += [p["description"] for p in tool.input_schema["properties"].values()]
        for text in texts:
            assert "\n" not in text and "  " not in text, f"{tool.name}: {text!r}"


async def test_structured_results_validate_against_the_compact_schemas(
    mcp, plain_registry, catalog
):
    """The SDK's client checks every structured result against the tool's listed schema
    (``ClientSession.validate_tool_result``), so each successful call here is that check."""
    ref = catalog.whiteouts.ref(plain_registry.host)
    schemas = {tool.name: tool.output_schema for tool in (await mcp.list_tools()).tools}
    found = await call(mcp, "find_files", reference=ref, pattern="*.key")
    assert found["find"]["matches"][0]["history"][0]["action"] == "added"
    assert {"matches", "total"} <= set(schemas["find_files"]["properties"]["find"]["properties"])


# -- inspect_image ---------------------------------------------------------------------------


async def test_inspect_image_reports_layers_history_and_config(mcp, plain_registry, catalog):
    image = catalog.history
    result = await call(mcp, "inspect_image", reference=image.ref(plain_registry.host))
    report = result["image"]
    assert report["digest"] == image.digest and result["all_platforms"] is None
    assert len(report["layers"]) == len(image.layers)
    assert report["config"]["labels"] == image.config["config"]["Labels"]
    assert report["history"][0]["created_by"] == "ARG VERSION=1"


async def test_inspect_text_escapes_control_characters(mcp, plain_registry, catalog):
    result = await mcp.call_tool(
        "inspect_image", {"reference": catalog.history.ref(plain_registry.host)}
    )
    text = result.content[0].text
    assert "\x1b" not in text and "\\x1b" in text


async def test_long_build_steps_are_cut_and_say_so(mcp, plain_registry, catalog):
    ref = catalog.history.ref(plain_registry.host)
    result = await call(mcp, "inspect_image", reference=ref, max_step_chars=40)
    assert result["cut_steps"] >= 1
    assert any("more chars" in layer["created_by"] for layer in result["image"]["layers"])


async def test_inspect_all_platforms_side_by_side(mcp, plain_registry, catalog):
    ref = catalog.multi.ref(plain_registry.host)
    result = await call(mcp, "inspect_image", reference=ref, all_platforms=True)
    assert result["image"] is None
    platforms = [p["platform"] for p in result["all_platforms"]["platforms"]]
    assert platforms == catalog.multi.platforms


async def test_platform_chooses_the_child_image(mcp, plain_registry, catalog):
    child = catalog.multi.children["linux/arm64/v8"]
    ref = catalog.multi.ref(plain_registry.host)
    result = await call(mcp, "inspect_image", reference=ref, platform="linux/arm64/v8")
    assert result["image"]["manifest_digest"] == child.digest


# -- list_files ------------------------------------------------------------------------------


async def test_list_files_pages_to_the_end_and_a_cursor_can_be_reused(mcp, plain_registry, catalog):
    ref = catalog.gzip.ref(plain_registry.host)
    pages, cursor = [], None
    while True:
        arguments = {"reference": ref, "limit": 4} | ({"cursor": cursor} if cursor else {})
        page = await call(mcp, "list_files", **arguments)
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    listed = [(e["layer"], e["path"]) for page in pages for e in page["entries"]]
    expected = [(i, e.path) for i, layer in enumerate(catalog.gzip.layers) for e in layer.entries]
    assert listed == expected
    assert all(len(page["entries"]) == 4 for page in pages[:-1]) and pages[-1]["entries"]
    again = await call(mcp, "list_files", reference=ref, limit=4, cursor=pages[0]["next_cursor"])
    assert again == pages[1]


async def test_list_files_filters_by_prefix_and_glob(mcp, plain_registry, catalog):
    ref = catalog.gzip.ref(plain_registry.host)
    page = await call(mcp, "list_files", reference=ref, path_prefix="/app/data/", glob="*.txt")
    assert [(e["layer"], e["path"]) for e in page["entries"]] == [
        (1, "app/data/early.txt"),
        (1, "app/data/late.txt"),
    ]
    assert page["next_cursor"] is None


async def test_hostile_names_arrive_intact_and_escaped_in_the_text(mcp, plain_registry, catalog):
    ref = catalog.bad.hostile_names.ref(plain_registry.host)
    result = await mcp.call_tool("list_files", {"reference": ref})
    assert not result.is_error, result.content[0].text
    paths = [e["path"] for e in result.structured_content["entries"]]
    assert "new\nline" in paths and len(paths) == len(catalog.bad.hostile_names.layers[0].entries)
    assert "new\\nline" in result.content[0].text and "\x1b" not in result.content[0].text


async def test_list_files_of_one_layer_counts_from_the_top(mcp, plain_registry, catalog):
    ref = catalog.whiteouts.ref(plain_registry.host)
    page = await call(mcp, "list_files", reference=ref, layer=-1)
    assert page["layer"] == 1
    types = {e["path"]: e["type"] for e in page["entries"]}
    assert types["etc/.wh.secret.key"] == "whiteout" and types["opt/app/.wh..wh..opq"] == "opaque"


async def test_progress_is_reported_while_a_layer_is_scanned(mcp, plain_registry, catalog):
    updates = []

    async def on_progress(progress, total, message):
        updates.append((progress, total, message))

    ref = catalog.gzip.ref(plain_registry.host)
    result = await mcp.call_tool(
        "list_files", {"reference": ref, "layer": 1, "limit": 200}, progress_callback=on_progress
    )
    assert not result.is_error
    assert updates, "no progress notification arrived"
    values = [u[0] for u in updates]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert all(total == catalog.gzip.layers[1].size for _, total, _ in updates)
    assert values[-1] == catalog.gzip.layers[1].size
    assert "layer 1" in updates[-1][2]


async def test_progress_over_every_layer_only_grows(mcp, plain_registry, catalog):
    updates = []

    async def on_progress(progress, total, message):
        updates.append((progress, total))

    ref = catalog.gzip.ref(plain_registry.host)
    result = await mcp.call_tool(
        "list_files", {"reference": ref, "limit": 200}, progress_callback=on_progress
    )
    assert not result.is_error
    values = [progress for progress, _ in updates]
    assert values == sorted(values) and len(set(values)) == len(values)
    whole = sum(layer.size for layer in catalog.gzip.layers)
    assert {total for _, total in updates} == {whole} and values[-1] == whole


async def test_an_altered_cursor_is_refused(mcp, plain_registry, catalog):
    ref = catalog.gzip.ref(plain_registry.host)
    cursor = (await call(mcp, "list_files", reference=ref, limit=2))["next_cursor"]
    body, signature = cursor.split(".")
    forged = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged["p"] = 0
    forged_body = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
    message = await error(
        mcp, "list_files", reference=ref, limit=2, cursor=forged_body + "." + signature
    )
    assert "invalid cursor" in message and "without a cursor" in message
    assert "malformed cursor" in await error(mcp, "list_files", reference=ref, cursor="junk")


async def test_a_cursor_only_fits_its_own_listing(mcp, plain_registry, catalog):
    ref = catalog.gzip.ref(plain_registry.host)
    cursor = (await call(mcp, "list_files", reference=ref, limit=2))["next_cursor"]
    message = await error(mcp, "list_files", reference=ref, layer=0, cursor=cursor)
    assert "other arguments" in message
    tags_ref = f"{plain_registry.host}/{catalog.tags.repo}"
    assert "another tool" in await error(mcp, "list_tags", repository=tags_ref, cursor=cursor)


async def test_a_stale_cursor_says_the_image_changed(mcp, plain_registry, catalog):
    ref = catalog.gzip.ref(plain_registry.host)
    cursor = (await call(mcp, "list_files", reference=ref, limit=2))["next_cursor"]
    old = "sha256:" + "0" * 64
    message = await error(mcp, "list_files", reference=ref, limit=2, cursor=resigned(cursor, d=old))
    assert "stale cursor" in message and old in message


# -- read_file -------------------------------------------------------------------------------


async def test_read_file_returns_text_with_size_and_sha256(mcp, plain_registry, catalog):
    ref = catalog.gzip.ref(plain_registry.host)
    top = await call(mcp, "read_file", reference=ref, path="/etc/hostname")
    assert (top["content"], top["kind"], top["encoding"]) == ("layerpeek-2\n", "text", "utf-8")
    assert top["size"] == 12 and top["sha256"] == hashlib.sha256(b"layerpeek-2\n").hexdigest()
    assert not top["truncated"]
    lower = await call(mcp, "read_file", reference=ref, path="etc/hostname", layer=0)
    assert lower["content"] == "layerpeek\n"


async def test_read_file_truncates_text_at_max_bytes(mcp, plain_registry, catalog):
    ref = catalog.gzip.ref(plain_registry.host)
    result = await call(mcp, "read_file", reference=ref, path="app/data/late.txt", max_bytes=10)
    assert result["content"] == LATE_TXT[:10].decode() and result["truncated"]
    assert result["size"] == len(LATE_TXT)
    assert result["sha256"] == hashlib.sha256(LATE_TXT).hexdigest()


async def test_read_file_previews_a_binary_in_hex_or_base64(mcp, plain_registry, catalog):
    ref = catalog.gzip.ref(plain_registry.host)
    data = seeded_bytes(0, 512 << 10)
    hexed = await call(mcp, "read_file", reference=ref, path="app/data/filler-0.bin")
    assert (hexed["kind"], hexed["encoding"], hexed["returned_bytes"]) == ("binary", "hex", 256)
    assert hexed["content"] == data[:256].hex() and hexed["truncated"]
    assert hexed["size"] == len(data) and hexed["sha256"] == hashlib.sha256(data).hexdigest()
    b64 = await call(
        mcp,
        "read_file",
        reference=ref,
        path="app/data/filler-0.bin",
        binary_preview_bytes=30,
        binary_encoding="base64",
    )
    assert base64.b64decode(b64["content"]) == data[:30]


@pytest.mark.parametrize(
    ("tool", "arguments", "hint"),
    [
        ("read_file", {"image": "whiteouts", "path": "etc/secret.key"}, "; read it with layer=0"),
        ("read_file", {"image": "whiteouts", "path": "opt/app/a"}, "; read it with layer=0"),
        (
            "read_file",
            {"image": "overlay", "path": "etc/os-release", "layer": 0},
            "without the layer argument,",
        ),
        (
            "inspect_image",
            {"image": "multi", "platform": "linux/s390x"},
            "choose one with platform=linux/amd64",
        ),
    ],
)
async def test_error_hints_name_the_tools_own_arguments(
    mcp, plain_registry, catalog, fs_images, tool, arguments, hint
):
    arguments = dict(arguments)  # the parameters are shared by both transports' runs
    name = arguments.pop("image")
    image = getattr(fs_images if name == "overlay" else catalog, name)
    message = await error(mcp, tool, reference=image.ref(plain_registry.host), **arguments)
    assert hint in message
    assert not [other for other in ("--", "layer:", "platform:", "option") if other in message]


async def test_read_file_of_a_deleted_file_names_the_layer_to_read(mcp, plain_registry, catalog):
    ref = catalog.whiteouts.ref(plain_registry.host)
    message = await error(mcp, "read_file", reference=ref, path="etc/secret.key")
    assert "deleted in layer 1" in message
    kept = await call(mcp, "read_file", reference=ref, path="etc/secret.key", layer=0)
    assert kept["content"].startswith("-----BEGIN PRIVATE KEY-----")


async def test_read_file_without_follow_names_the_symlinks_target(mcp, plain_registry, catalog):
    ref = catalog.gzip.ref(plain_registry.host)
    message = await error(mcp, "read_file", reference=ref, path="app/current", follow=False)
    assert "app/current is a symlink to bin in layer 0, not followed" in message


# -- list_tags -------------------------------------------------------------------------------


async def test_list_tags_pages_to_the_end(mcp, plain_registry, catalog):
    repository = f"{plain_registry.host}/{catalog.tags.repo}"
    tags, cursor, first_cursor = [], None, None
    while True:
        arguments = {"repository": repository, "limit": 7} | ({"cursor": cursor} if cursor else {})
        page = await call(mcp, "list_tags", **arguments)
        assert page["total"] == len(TAG_NAMES)
        tags += page["tags"]
        cursor = page["next_cursor"]
        first_cursor = first_cursor or cursor
        if cursor is None:
            break
    assert tags == sorted(TAG_NAMES)
    again = await call(mcp, "list_tags", repository=repository, limit=7, cursor=first_cursor)
    assert again["tags"] == sorted(TAG_NAMES)[7:14]


# -- the merged filesystem -----------------------------------------------------------------------


async def test_list_files_merged_shows_the_final_filesystem_in_pages(mcp, plain_registry, catalog):
    ref = catalog.whiteouts.ref(plain_registry.host)
    first = await call(mcp, "list_files", reference=ref, merged=True, limit=3)
    rest = await call(
        mcp, "list_files", reference=ref, merged=True, limit=3, cursor=first["next_cursor"]
    )
    assert first["merged"] and rest["next_cursor"] is None
    paths = [e["path"] for e in first["entries"] + rest["entries"]]
    assert paths == sorted(catalog.whiteouts.merged_paths)


async def test_merged_and_layer_exclude_each_other(mcp, plain_registry, catalog):
    ref = catalog.whiteouts.ref(plain_registry.host)
    assert "not both" in await error(mcp, "list_files", reference=ref, merged=True, layer=0)


async def test_find_files_finds_a_deleted_secret_in_its_layer(mcp, plain_registry, catalog):
    ref = catalog.whiteouts.ref(plain_registry.host)
    found = (await call(mcp, "find_files", reference=ref, pattern="*.key", types=["file"]))["find"]
    assert [(m["layer"], m["path"]) for m in found["matches"]] == [(0, "etc/secret.key")]
    assert [e["action"] for e in found["matches"][0]["history"]] == ["added", "deleted"]
    merged = await call(mcp, "find_files", reference=ref, pattern="*.key", merged=True)
    assert merged["find"]["matches"] == []


async def test_find_files_pages_to_the_end(mcp, plain_registry, catalog):
    ref = catalog.gzip.ref(plain_registry.host)
    first = await call(mcp, "find_files", reference=ref, pattern="app/data/*", limit=4)
    total = first["find"]["total"]
    paths, cursor = [m["path"] for m in first["find"]["matches"]], first["next_cursor"]
    while cursor:
        more = await call(
            mcp, "find_files", reference=ref, pattern="app/data/*", limit=4, cursor=cursor
        )
        paths += [m["path"] for m in more["find"]["matches"]]
        cursor = more["next_cursor"]
    assert len(paths) == total == 6


async def test_a_bad_find_pattern_is_a_tool_error(mcp, plain_registry, catalog):
    ref = catalog.gzip.ref(plain_registry.host)
    assert "size" in await error(mcp, "find_files", reference=ref, pattern="*", min_size="lots")


async def test_trace_path_tells_where_a_file_came_from(mcp, plain_registry, catalog):
    ref = catalog.whiteouts.ref(plain_registry.host)
    trace = await call(mcp, "trace_path", reference=ref, path="/etc/secret.key")
    assert not trace["exists"] and trace["readable_layers"] == [0]
    assert [(e["layer"], e["action"]) for e in trace["events"]] == [(0, "added"), (1, "deleted")]


async def test_removed_files_lists_what_still_ships(mcp, plain_registry, catalog):
    ref = catalog.whiteouts.ref(plain_registry.host)
    first = await call(mcp, "removed_files", reference=ref, limit=2)
    rest = await call(mcp, "removed_files", reference=ref, limit=2, cursor=first["next_cursor"])
    paths = {f["path"] for f in first["removed"]["files"] + rest["removed"]["files"]}
    assert {"etc/secret.key", "opt/app/a", "opt/app/b"} <= paths
    assert first["total_files"] == len(paths)


async def test_diff_images_pages_through_added_then_removed(mcp, plain_registry, catalog):
    a = catalog.whiteouts.ref(plain_registry.host)
    b = catalog.history.ref(plain_registry.host)
    added, removed, cursor = [], [], None
    while True:
        page = await call(
            mcp, "diff_images", a=a, b=b, limit=3, **({"cursor": cursor} if cursor else {})
        )
        added += [e["path"] for e in page["diff"]["added"]]
        removed += [e["path"] for e in page["diff"]["removed"]]
        assert len(page["diff"]["added"]) + len(page["diff"]["removed"]) <= 3
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert added == ["srv", "srv/app.py", "srv/hi.txt"]
    assert removed == sorted(catalog.whiteouts.merged_paths)
    assert (page["total_added"], page["total_removed"]) == (len(added), len(removed))


async def test_diff_images_compares_the_platforms_of_one_tag(mcp, plain_registry, catalog):
    ref = catalog.multi.ref(plain_registry.host)
    page = await call(mcp, "diff_images", a=ref, platform_b="linux/arm64/v8")
    assert [e["path"] for e in page["diff"]["added"]] == ["only-arm64v8.txt"]
    assert [e["path"] for e in page["diff"]["removed"]] == ["only-amd64.txt"]


async def test_the_diff_text_names_the_platform_of_each_side(mcp, plain_registry, catalog):
    ref = catalog.multi.ref(plain_registry.host)
    result = await mcp.call_tool("diff_images", {"a": ref, "platform_b": "linux/arm64/v8"})
    head = result.content[0].text.splitlines()[0]
    assert head.startswith(f"{ref} (linux/amd64) -> {ref} (linux/arm64/v8): ")


async def test_the_merged_listing_text_says_merged(mcp, plain_registry, catalog):
    ref = catalog.whiteouts.ref(plain_registry.host)
    result = await mcp.call_tool("list_files", {"reference": ref, "merged": True})
    head = result.content[0].text.splitlines()[0]
    assert head.endswith(f"of {ref} (linux/amd64, merged)")


async def test_triage_image_flags_a_deleted_secret(mcp, plain_registry, catalog):
    ref = catalog.whiteouts.ref(plain_registry.host)
    triage = await call(mcp, "triage_image", reference=ref)
    kinds = {(f["kind"], f["path"]) for f in triage["triage"]["findings"]}
    assert ("deleted-secret", "etc/secret.key") in kinds
    assert triage["total_findings"] == len(triage["triage"]["findings"])
    assert triage["triage"]["runs_as_root"]


# -- errors a model can fix --------------------------------------------------------------------


async def test_a_bad_reference_names_the_expected_form(mcp):
    message = await error(mcp, "inspect_image", reference="Not A/Valid:ref!")
    assert "expected [REGISTRY/]REPOSITORY[:TAG]" in message
    assert "Traceback" not in message


async def test_a_missing_platform_lists_the_available_ones(mcp, plain_registry, catalog):
    ref = catalog.multi.ref(plain_registry.host)
    message = await error(mcp, "inspect_image", reference=ref, platform="linux/s390x")
    assert all(platform in message for platform in catalog.multi.platforms)


async def test_a_layer_out_of_range_says_how_many_there_are(mcp, plain_registry, catalog):
    ref = catalog.gzip.ref(plain_registry.host)
    assert "has 2 layers" in await error(mcp, "list_files", reference=ref, layer=7)


async def test_unauthorized_says_which_credentials_were_looked_up(
    mcp, basic_registry, catalog, layerpeek_env
):
    ref = catalog.gzip.ref(basic_registry.host)
    message = await error(mcp, "inspect_image", reference=ref)
    assert "refused anonymous access" in message
    assert str(layerpeek_env / "config.json") in message


async def test_wrong_credentials_name_the_user_and_where_they_came_from(
    mcp, basic_registry, catalog, layerpeek_env
):
    auth = base64.b64encode(b"alice:not-the-password").decode()
    config = layerpeek_env / "config.json"
    config.write_text(json.dumps({"auths": {basic_registry.host: {"auth": auth}}}))
    message = await error(mcp, "inspect_image", reference=catalog.gzip.ref(basic_registry.host))
    assert "refused the credentials for user alice" in message and str(config) in message
    assert "not-the-password" not in message and auth not in message


async def test_invalid_arguments_are_tool_errors(mcp, plain_registry, catalog):
    ref = catalog.gzip.ref(plain_registry.host)
    assert "limit" in await error(mcp, "list_files", reference=ref, limit=0)


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("list_files", {"limit": 500}, "limit=500 is out of range: limit takes 1 to 200"),
        ("list_tags", {"limit": 0}, "limit=0 is out of range: limit takes 1 to 1000"),
        ("read_file", {"path": "a", "binary_encoding": "b64"}, 'binary_encoding="b64": '),
        ("find_files", {}, "pattern is required"),
    ],
)
async def test_a_refused_argument_is_one_line_naming_it_and_what_it_takes(
    mcp, tool, arguments, message
):
    arguments = {"reference": "alpine", "repository": "alpine", **arguments}
    text = await error(mcp, tool, **arguments)
    assert text.startswith(message)
    assert "\n" not in text and "pydantic" not in text and "Error executing" not in text


# -- the network guard -------------------------------------------------------------------------


async def test_the_guard_refuses_loopback_unless_allowed(
    layerpeek_env, mode, plain_registry, catalog
):
    async with Client(create_server(), mode=mode) as client:
        message = await error(
            client, "inspect_image", reference=catalog.gzip.ref(plain_registry.host)
        )
    assert f"set LAYERPEEK_ALLOW_PRIVATE={plain_registry.host}" in message
    assert "operator setting" in message


async def test_the_guard_allows_exactly_the_listed_host_and_port(
    layerpeek_env, monkeypatch, mode, plain_registry, basic_registry, catalog
):
    monkeypatch.setenv("LAYERPEEK_ALLOW_PRIVATE", plain_registry.host)
    async with Client(create_server(), mode=mode) as client:
        await call(client, "inspect_image", reference=catalog.gzip.ref(plain_registry.host))
        other = await error(
            client, "inspect_image", reference=catalog.gzip.ref(basic_registry.host)
        )
    assert "refused to connect" in other


# -- cancellation ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_images(plain_registry):
    """Two 16 MiB single-frame zstd layers (no random access: a listing reads all of one)."""
    layers = []
    with Pusher(plain_registry.url) as pusher:
        for seed in (7, 8):
            layer = make_layer([Member("big.bin", data=seeded_bytes(seed, 16 << 20))], "zstd")
            layers.append(layer)
            blobs = [(layer.blob, layer.media_type)]
            pusher.image(BIG_REPO, [f"seed{seed}"], blobs, image_config([layer]))
    return layers


async def test_cancelling_a_call_stops_the_layer_download(
    allowed, mode, fault_proxy, plain_registry, big_images
):
    cancelled = big_images[0]
    async with Client(create_server(), mode=mode) as client:
        with anyio.CancelScope() as scope:

            async def cancel_on_first_progress(progress, total, message):
                scope.cancel()

            await client.call_tool(
                "list_files",
                {"reference": f"{fault_proxy.host}/{BIG_REPO}:seed7"},
                progress_callback=cancel_on_first_progress,
            )
        assert scope.cancelled_caught
        # A full scan of another layer as big: had the cancelled scan gone on, it would have
        # finished meanwhile and the proxy would have counted every byte of it.
        await call(client, "list_files", reference=f"{plain_registry.host}/{BIG_REPO}:seed8")
    assert fault_proxy.body_bytes(cancelled.digest) < cancelled.size // 2


# -- the HTTP transport ------------------------------------------------------------------------

MCP_ACCEPT = {"Accept": "application/json, text/event-stream"}
LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


@asynccontextmanager
async def served(*argv: str):
    """What ``layerpeek-mcp --http ARGV`` serves, on an in-process ASGI transport."""
    args = _parser().parse_args(["--http", *argv])
    server, server_settings = build(args)
    app = server.streamable_http_app(host=args.host, **http_options(args, server_settings))
    async with app.router.lifespan_context(app):
        yield httpx2.ASGITransport(app=app)


async def test_http_needs_the_bearer_token(monkeypatch, plain_registry, catalog, allowed):
    monkeypatch.setenv("LAYERPEEK_MCP_TOKEN", "team-token")
    async with served() as transport:
        async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as raw:
            refused = await raw.post("/mcp", json=LIST_TOOLS, headers=MCP_ACCEPT)
            wrong = MCP_ACCEPT | {"Authorization": "Bearer guess"}
            guessed = await raw.post("/mcp", json=LIST_TOOLS, headers=wrong)
        assert refused.status_code == guessed.status_code == 401
        bearer = {"Authorization": "Bearer team-token"}
        async with httpx2.AsyncClient(transport=transport, headers=bearer) as http:
            endpoint = streamable_http_client("http://127.0.0.1:8000/mcp", http_client=http)
            async with Client(endpoint, mode="legacy") as client:
                ref = catalog.gzip.ref(plain_registry.host)
                found = await call(client, "read_file", reference=ref, path="etc/hostname")
    assert found["content"] == "layerpeek-2\n"


async def test_http_on_loopback_refuses_a_foreign_host_header(allowed):
    async with (
        served() as transport,
        httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as raw,
    ):
        response = await raw.post(
            "/mcp", json=LIST_TOOLS, headers=MCP_ACCEPT | {"Host": "attacker.example"}
        )
    assert response.status_code == 421


async def test_http_allowed_hosts_are_the_only_hosts(monkeypatch, allowed):
    monkeypatch.setenv("LAYERPEEK_MCP_ALLOWED_HOSTS", "mcp.example.com, mcp.example.com:*")
    async with (
        served("--host", "0.0.0.0") as transport,
        httpx2.AsyncClient(transport=transport, base_url="http://x") as raw,
    ):
        answers = {
            host: await raw.post("/mcp", json=LIST_TOOLS, headers=MCP_ACCEPT | {"Host": host})
            for host in ("mcp.example.com", "mcp.example.com:8443", "10.0.0.5:8000")
        }
    assert answers["mcp.example.com"].status_code == 200
    assert answers["mcp.example.com:8443"].status_code == 200
    assert answers["10.0.0.5:8000"].status_code == 421


async def test_http_beyond_loopback_without_a_token_warns_at_start(monkeypatch, capsys, allowed):
    monkeypatch.setenv("LAYERPEEK_MCP_ALLOWED_HOSTS", "mcp.example.com")
    async with served("--host", "0.0.0.0"):
        pass
    assert "warning: serving 0.0.0.0 without LAYERPEEK_MCP_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("LAYERPEEK_MCP_TOKEN", "team-token")
    async with served("--host", "0.0.0.0"), served():
        pass
    assert "warning" not in capsys.readouterr().err


async def test_a_list_refused_item_by_item_is_named_in_a_bounded_line(mcp):
    text = await error(mcp, "find_files", reference="alpine", pattern="*", types=["nope"] * 500)
    assert text.count("types.") == 3 and text.endswith("; and 497 more")
    assert "\n" not in text and len(text) < 1000
