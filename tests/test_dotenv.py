"""One ``.env`` rule for every front end: a copied ``.env.example`` (every value empty or a
default) starts each of them, and a value set in ``.env`` reaches the long-running ones."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from fixtures.commands import server_command
from fixtures.tools import LogDrain, stop_child
from layerpeek.bot.cli import main as bot_main
from layerpeek.cli.main import main as cli_main
from layerpeek.core.settings import Settings, load_settings
from layerpeek.links.settings import LinkSettings

EXAMPLE = Path(__file__).parent.parent / ".env.example"
LISTENING = re.compile(r"Uvicorn running on (http://\S+)")


@pytest.fixture
def example_dir(layerpeek_env, monkeypatch, tmp_path) -> Path:
    """A working directory holding a copy of ``.env.example`` as ``.env``; the registry is
    reached through the environment (which wins over ``.env``)."""
    workdir = tmp_path / "deploy"
    workdir.mkdir()
    (workdir / ".env").write_text(EXAMPLE.read_text())
    monkeypatch.setenv("LAYERPEEK_ALLOW_PRIVATE", "127.0.0.1")
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    monkeypatch.chdir(workdir)
    return workdir


async def tool_names(client: Client) -> set[str]:
    return {tool.name for tool in (await client.list_tools()).tools}


def test_a_copied_env_example_starts_every_front_end(example_dir, capsys, plain_registry, catalog):
    ref = catalog.gzip.ref(plain_registry.host)
    # The CLI (which reads only the environment) and the bot's preview.
    assert cli_main(["tags", f"{plain_registry.host}/{catalog.tags.repo}"]) == 0
    assert bot_main(["preview", f"/history image:{ref}"]) == 0, capsys.readouterr().err
    # The link endpoint's settings: valid, and links off until a URL and a secret are set.
    assert not load_settings(LinkSettings).enabled
    anyio.run(mcp_server_starts, example_dir)


async def mcp_server_starts(example_dir: Path) -> None:
    """The MCP server over stdio, as a client spawns it in that directory, and over HTTP."""
    params = StdioServerParameters(command=server_command(), env=dict(os.environ), cwd=example_dir)
    async with Client(params, mode="legacy") as client:
        assert "list_files" in await tool_names(client)
    child = subprocess.Popen(
        [server_command(), "--http", "--port", "0"], stderr=subprocess.PIPE, cwd=example_dir
    )
    drain = LogDrain(child.stderr, LISTENING.search)
    try:
        drain.ready.wait()
        url = next((m[1] for m in map(LISTENING.search, drain.lines) if m), None)
        assert url is not None, "\n".join(drain.lines)
        async with httpx2.AsyncClient() as http:
            endpoint = streamable_http_client(f"{url}/mcp", http_client=http)
            async with Client(endpoint, mode="legacy") as client:
                assert "list_files" in await tool_names(client)
    finally:
        stop_child(child, drain, child.stderr)


async def test_a_value_in_env_reaches_the_mcp_server_over_stdio(
    example_dir, monkeypatch, plain_registry, catalog
):
    """The registry is private: only ``.env`` allows it, and the stdio server reads that."""
    monkeypatch.delenv("LAYERPEEK_ALLOW_PRIVATE")
    (example_dir / ".env").write_text(f"LAYERPEEK_ALLOW_PRIVATE={plain_registry.host}\n")
    params = StdioServerParameters(command=server_command(), env=dict(os.environ), cwd=example_dir)
    async with Client(params, mode="legacy") as client:
        reference = catalog.gzip.ref(plain_registry.host)
        found = await client.call_tool(
            "read_file", {"reference": reference, "path": "etc/hostname"}
        )
    assert not found.is_error, found.content[0].text
    assert found.structured_content["content"] == "layerpeek-2\n"


def test_the_cli_reads_the_environment_alone(example_dir, monkeypatch):
    """A ``.env`` in the directory the command runs in does not steer the CLI."""
    (example_dir / ".env").write_text("LAYERPEEK_PLAIN_HTTP=registry.example:5000\n")
    monkeypatch.delenv("LAYERPEEK_PLAIN_HTTP")
    assert load_settings(Settings, dotenv=False).plain_http == ()
    assert load_settings(Settings).plain_http == ("registry.example:5000",)


def test_an_empty_value_in_the_environment_is_unset(monkeypatch):
    monkeypatch.setenv("LAYERPEEK_CA_BUNDLE", "")
    monkeypatch.setenv("LAYERPEEK_TIMEOUT", "")
    settings = load_settings(Settings, dotenv=False)
    assert settings.ca_bundle is None and settings.timeout == 30.0
    assert json.loads(settings.model_dump_json())["ca_bundle"] is None
