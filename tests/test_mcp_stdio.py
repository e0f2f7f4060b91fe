"""``layerpeek-mcp`` as a client spawns it: a child process speaking MCP over stdio."""

import shutil

import pytest
from mcp import Client, StdioServerParameters

from layerpeek.server.main import main


def server_command() -> str:
    """The installed console script; the suite installs the project before it runs."""
    command = shutil.which("layerpeek-mcp")
    assert command, "layerpeek-mcp is not on PATH: pip install -e ."
    return command


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
