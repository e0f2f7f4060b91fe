"""``layerpeek-mcp`` as a client spawns it: a child process speaking MCP over stdio."""

import base64
import json
import stat

import pytest
from mcp import Client, StdioServerParameters

from fixtures.catalog import TAG_NAMES
from fixtures.commands import server_command
from layerpeek.server.cursor import KEY_FILE
from layerpeek.server.main import main


def child_env(layerpeek_env, **extra: str) -> dict[str, str]:
    """What a client config's "env" would hold; the SDK adds only HOME, PATH and the like."""
    return {
        "DOCKER_CONFIG": str(layerpeek_env),
        "LAYERPEEK_PLAIN_HTTP": "127.0.0.1",
        "LAYERPEEK_CACHE_DIR": str(layerpeek_env.parent / "mcp-cache"),
        **extra,
    }


async def test_stdio_round_trip(layerpeek_env, plain_registry, catalog):
    env = child_env(layerpeek_env, LAYERPEEK_ALLOW_PRIVATE=plain_registry.host)
    params = StdioServerParameters(command=server_command(), env=env)
    async with Client(params, mode="legacy") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"inspect_image", "list_files", "read_file", "list_tags"} <= names
        result = await client.call_tool(
            "read_file",
            {"reference": catalog.gzip.ref(plain_registry.host), "path": "etc/hostname"},
        )
        assert not result.is_error, result.content[0].text
        assert result.structured_content["content"] == "layerpeek-2\n"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LAYERPEEK_ALLOW_PRIVATE", "not a host", "entry 'not a host' is not a host"),
        ("LAYERPEEK_CA_BUNDLE", "/nonexistent/ca.pem", "cannot load CA bundle"),
        ("LAYERPEEK_TIMEOUT", "soon", "invalid LAYERPEEK_TIMEOUT"),
        ("LAYERPEEK_CACHE_URL", "ftp://cache", "invalid LAYERPEEK_CACHE_URL: unsupported"),
    ],
)
@pytest.mark.parametrize("argv", [[], ["--http"]])
def test_a_bad_setting_stops_the_server_with_one_line(
    monkeypatch, capsys, tmp_path, argv, name, value, message
):
    monkeypatch.chdir(tmp_path)  # no .env but ours
    monkeypatch.setenv(name, value)
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert err.startswith("layerpeek-mcp: error: ") and message in err


async def tags_page(params: StdioServerParameters, repository: str, cursor: str | None) -> dict:
    """One page of list_tags from a server process started for this one call (as the
    Inspector's CLI starts one per call), or the error text."""
    arguments = {"repository": repository, "limit": 7} | ({"cursor": cursor} if cursor else {})
    async with Client(params, mode="legacy") as client:
        result = await client.call_tool("list_tags", arguments)
    return {"error": result.content[0].text} if result.is_error else result.structured_content


ALTERED = (
    "invalid cursor: it was altered, or issued by a server with another key; call again "
    "without a cursor to start from the first page"
)


async def test_a_cursor_outlives_the_server_that_returned_it(
    layerpeek_env, plain_registry, catalog, tmp_path
):
    env = child_env(layerpeek_env, LAYERPEEK_ALLOW_PRIVATE=plain_registry.host)
    params = StdioServerParameters(command=server_command(), env=env)
    repository = f"{plain_registry.host}/{catalog.tags.repo}"
    first = await tags_page(params, repository, None)
    second = await tags_page(params, repository, first["next_cursor"])
    assert second.get("tags") == sorted(TAG_NAMES)[7:14], second
    key_file = layerpeek_env.parent / "mcp-cache" / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # Still refused: a cursor edited by hand, and one from a server with another key.
    body, _, signature = first["next_cursor"].partition(".")
    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    edited = base64.urlsafe_b64encode(json.dumps(data | {"a": "t20"}).encode()).decode()
    altered = await tags_page(params, repository, f"{edited.rstrip('=')}.{signature}")
    assert altered["error"].endswith(ALTERED)
    elsewhere = StdioServerParameters(
        command=server_command(), env=env | {"LAYERPEEK_CACHE_DIR": str(tmp_path / "other")}
    )
    foreign = await tags_page(elsewhere, repository, first["next_cursor"])
    assert foreign["error"].endswith(ALTERED)
