"""Strings from a hostile registry reach no front end raw: terminal, MCP text or Discord.

An attacker's registry on 127.0.0.1 serves an image whose config and index put escape
sequences (window title, OSC-8 link, ``ESC c`` reset, a C1 CSI) and Discord markdown (a masked
link inside a stray bracket, mentions, a heading) into every field a front end shows:
platform, ports, labels, env, user, build steps. The CLI and the MCP text show them as visible
escapes, the bot as inert text, and every JSON answer still carries them as they are.
"""

from __future__ import annotations

import json
import re

import pytest
from mcp import Client

from fixtures.bot import (
    allow_local_registry,
    click,
    live_markdown,
    message_payload,
    recorded_bot,
    shown,
)
from fixtures.hostile import OCI_MANIFEST, HostileRegistry, manifest_with_layer_digests, sha256
from fixtures.images import Member, make_layer
from layerpeek.bot.cli import main as bot_main
from layerpeek.bot.render import LOOKALIKE_BACKTICK, untrusted
from layerpeek.bot.settings import BotSettings
from layerpeek.cli.main import main
from layerpeek.core.text import printable
from layerpeek.server.app import create_server

TITLE = "\x1b]0;pwned\x07"  # sets the terminal window's title
LINK = "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"  # an OSC-8 hyperlink
RESET = "\x1bc"  # resets the terminal
CSI = "\x9b31m"  # the C1 form of ESC [
MARKDOWN = "[ [Claim](https://evil.example/p) @everyone <@123> <#456>\n# Free nitro"
# C0 and C1 controls and DEL, but for the newline that ends each line of output.
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")
NAME = "evil/app"
ZERO = "sha256:" + "0" * 64


def hostile_config(layer_digest: str) -> bytes:
    return json.dumps(
        {
            "os": "linux" + TITLE,
            "architecture": "amd64" + RESET + MARKDOWN,
            "variant": LINK + CSI,
            "config": {
                "User": "root" + TITLE,
                "Env": ["PATH=/bin" + LINK, "NOTE=" + MARKDOWN],
                "Entrypoint": ["/bin/sh" + RESET],
                "Cmd": ["-c", "echo " + MARKDOWN],
                "WorkingDir": "/srv" + CSI,
                "ExposedPorts": {"80/tcp" + TITLE: {}, "443/tcp" + LINK: {}},
                "Labels": {"maintainer" + RESET: MARKDOWN + LINK},
            },
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
            "history": [
                {"created_by": "ENV " + TITLE, "empty_layer": True},
                {"created_by": "RUN echo " + MARKDOWN + RESET + CSI},
            ],
        }
    ).encode()


@pytest.fixture
def hostile(layerpeek_env):
    """The attacker's registry with ``evil/app:single`` (one hostile image) and
    ``evil/app:multi`` (an index whose platform fields are hostile too)."""
    with HostileRegistry() as registry:
        banner = Member("etc/banner", data=(RESET + "hello\n\tworld" + CSI).encode())
        layer = make_layer([Member("etc/motd", data=b"hello\n"), banner]).blob
        child = registry.image(NAME, "single", [(sha256(layer), layer)], hostile_config(ZERO))
        size = len(registry.match("GET", f"/v2/{NAME}/manifests/{child}").body)
        registry.index(
            NAME,
            "multi",
            [
                _entry(child, size, {"os": "linux", "architecture": "amd64"}),
                _entry(child, size, {"os": "linux", "architecture": MARKDOWN, "variant": LINK}),
                _entry(child, size, {"os": TITLE, "architecture": "arm64" + RESET}),
            ],
        )
        yield registry


def _entry(digest: str, size: int, platform: dict) -> dict:
    return {"mediaType": OCI_MANIFEST, "digest": digest, "size": size, "platform": platform}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


# -- the terminal ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "escaped"),
    [
        (["inspect"], "\\x9b31m"),  # the variant, in the config
        (["inspect", "--all-platforms"], "\\x1b]0;pwned\\x07/arm64"),  # an index entry's os
    ],
)
def test_the_cli_shows_every_hostile_field_as_visible_escapes(capsys, hostile, argv, escaped):
    status, out, err = run(capsys, argv[0], f"{hostile.host}/{NAME}:multi", *argv[1:])
    assert (status, err) == (0, "")
    assert not CONTROL.search(out)
    assert escaped in out


def test_the_cli_table_escapes_ports_labels_and_platform_and_json_keeps_them(capsys, hostile):
    status, out, _ = run(capsys, "inspect", f"{hostile.host}/{NAME}:single")
    assert status == 0 and not CONTROL.search(out)
    assert "Ports      443/tcp\\x1b]8;;https://evil.example/" in out
    assert "80/tcp\\x1b]0;pwned\\x07" in out
    assert "Label      maintainer\\x1bc=[ [Claim](https://evil.example/p)" in out
    assert "# Free nitro" not in out.splitlines()  # the newline is shown, not obeyed
    assert "Platform   linux\\x1b]0;pwned\\x07/amd64\\x1bc" in out
    # JSON is data: the same strings, as the image has them.
    status, out, _ = run(capsys, "inspect", f"{hostile.host}/{NAME}:multi", "--json")
    report = json.loads(out)
    assert status == 0
    assert report["config"]["exposed_ports"] == ["443/tcp" + LINK, "80/tcp" + TITLE]
    assert report["layers"][0]["created_by"] == "RUN echo " + MARKDOWN + RESET + CSI
    assert "linux/" + MARKDOWN.lower() + "/" + LINK.lower() in report["platforms"]


# -- MCP text --------------------------------------------------------------------------------


@pytest.fixture
async def mcp(hostile, monkeypatch, tmp_path):
    monkeypatch.setenv("LAYERPEEK_ALLOW_PRIVATE", "127.0.0.1")
    monkeypatch.chdir(tmp_path)
    async with Client(create_server()) as client:
        yield client


@pytest.mark.parametrize("tag", ["single", "multi"])
async def test_mcp_text_shows_hostile_fields_escaped_and_keeps_the_data(mcp, hostile, tag):
    result = await mcp.call_tool("inspect_image", {"reference": f"{hostile.host}/{NAME}:{tag}"})
    assert not result.is_error, result.content[0].text
    text = result.content[0].text
    assert not CONTROL.search(text)
    assert "linux\\x1b]0;pwned\\x07/amd64\\x1bc" in text
    assert "ports 443/tcp\\x1b]8;;" in text
    report = result.structured_content["image"]
    assert report["platform"].startswith("linux" + TITLE)
    assert report["layers"][0]["created_by"] == "RUN echo " + MARKDOWN + RESET + CSI


async def test_mcp_file_text_is_escaped_line_by_line_and_the_content_kept(mcp, hostile):
    ref = f"{hostile.host}/{NAME}:single"
    result = await mcp.call_tool("read_file", {"reference": ref, "path": "/etc/banner"})
    assert not result.is_error, result.content[0].text
    assert result.content[0].text.split("\n")[1:] == ["\\x1bchello", "\\tworld\\x9b31m"]
    assert result.structured_content["content"] == RESET + "hello\n\tworld" + CSI


async def test_mcp_platform_listing_and_errors_are_escaped(mcp, hostile):
    ref = f"{hostile.host}/{NAME}:multi"
    result = await mcp.call_tool("inspect_image", {"reference": ref, "all_platforms": True})
    assert not result.is_error, result.content[0].text
    assert not CONTROL.search(result.content[0].text)
    manifest_with_layer_digests(hostile, "bad", ["sha256:" + LINK])
    failed = await mcp.call_tool("inspect_image", {"reference": f"{hostile.host}/{NAME}:bad"})
    assert failed.is_error and "layers[0].digest is not a sha256" in failed.content[0].text
    assert not CONTROL.search(failed.content[0].text)


# -- Discord ---------------------------------------------------------------------------------


def test_the_discord_function_escapes_markdown_marks_code_and_clips_whole_escapes():
    assert shown(untrusted("[a](https://x) @here", 100)) == "[a](https://x) @here"
    assert untrusted("x" * 8 + "[[", 10) == "x" * 8 + "…"  # never a lone backslash at the cut
    tick = LOOKALIKE_BACKTICK
    assert untrusted("a```b`" + TITLE, 100, "code") == f"a{tick * 3}b{tick}\\x1b]0;pwned\\x07"
    assert untrusted("**" + CSI, 100, "plain") == "**\\x9b31m"
    assert printable("tag\U000e0041") == "tag\\U000e0041"  # invisible tag characters


MASKED_LINK = re.compile(r"\[[^\]]*\]\s*\(")
MENTION = re.compile(r"@everyone|@here|<[@#]")
HEADING = re.compile(r"^\s*(#{1,3}|-#)\s", re.MULTILINE)


def assert_inert(markdown: str) -> None:
    """No link, masked link, mention, heading or control character that Discord would show."""
    live = live_markdown(markdown)
    assert not MASKED_LINK.search(live), markdown
    assert "://" not in live, markdown
    assert not MENTION.search(live), markdown
    assert not HEADING.search(live), markdown
    assert not CONTROL.search(markdown), markdown


def assert_message_inert(message: dict) -> None:
    assert message["allowed_mentions"] == {"parse": []}
    assert_inert(message.get("content") or "")
    for embed in message.get("embeds", []):
        assert_inert(embed.get("title", ""))
        assert_inert(embed.get("description", ""))
        for field in embed.get("fields", []):
            assert_inert(field["name"] + "\n" + field["value"])
        assert not CONTROL.search(embed.get("footer", {}).get("text", ""))
    for row in message.get("components", []):
        for item in row["components"]:
            labels = [item.get("label", "")] + [o["label"] for o in item.get("options", [])]
            assert not CONTROL.search("".join(labels))


def preview(capsys, line: str) -> tuple[int, dict]:
    status = bot_main(["preview", line])
    out, _ = capsys.readouterr()
    return status, json.loads(out)


@pytest.mark.parametrize("command", ["/peek", "/history"])
def test_discord_messages_hold_no_link_mention_or_heading(
    capsys, hostile, monkeypatch, layerpeek_env, command
):
    allow_local_registry(monkeypatch, layerpeek_env)
    status, message = preview(capsys, f"{command} image:{hostile.host}/{NAME}:multi")
    assert status == 0
    assert_message_inert(message)
    summary = message["embeds"][0]["description"]
    assert "Claim" in summary and "evil.example" in summary  # shown, as text


def test_a_discord_error_quoting_the_image_is_inert(capsys, hostile, monkeypatch, layerpeek_env):
    allow_local_registry(monkeypatch, layerpeek_env)
    manifest_with_layer_digests(hostile, "bad", ["sha256:[x](https://evil.example/) @everyone"])
    status, message = preview(capsys, f"/history image:{hostile.host}/{NAME}:bad")
    assert status == 1 and message["flags"] == 64
    assert_message_inert(message)
    assert "layers[0].digest is not a sha256" in shown(message["content"])


async def test_what_discord_py_sends_allows_no_mentions(layerpeek_env, monkeypatch):
    """Through discord.py's own dispatch and HTTP payload, not just the preview."""
    allow_local_registry(monkeypatch, layerpeek_env)
    async with recorded_bot(BotSettings(page_size=5)) as (bot, adapter):
        old = {"type": 2, "style": 2, "label": "▶", "custom_id": "lp:ZZZZZZZZZZZ:a:1:n"}
        await click(bot, old, message_payload([{"type": 1, "components": [old]}]))
    [(_, _, answer)] = adapter.requests
    assert answer["data"]["allowed_mentions"] == {"parse": []}
