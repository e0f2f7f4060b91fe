"""The one-line forms every front end shares (``core.text``): build steps, command lines and
the user an image runs as read the same in the CLI, the MCP text and the bot."""

from __future__ import annotations

from layerpeek.cli.main import render_platforms
from layerpeek.core.models import PlatformsReport, PlatformSummary
from layerpeek.core.text import STEP_WIDTH, clip, command_line, counted, one_line, user_or_root
from layerpeek.server.render import platforms_text


def test_a_step_is_escaped_then_cut_at_one_width_with_a_mark():
    step = "RUN \x1b]0;title\x07 " + "x" * 200
    shown = one_line(step)
    assert len(shown) == STEP_WIDTH and shown.endswith("…")
    assert "\x1b" not in shown and shown.startswith("RUN \\x1b]0;title\\x07 ")
    assert one_line("") == "-" and one_line("short") == "short"
    assert clip("abc", 3) == "abc" and clip("abcd", 3) == "ab…"


def test_an_unset_user_is_root_and_a_missing_command_is_a_dash():
    assert user_or_root(None) == user_or_root("") == "root"
    assert user_or_root("1000:1000") == "1000:1000"
    assert command_line(None) == command_line([]) == "-"
    assert command_line(["sh", "-c", "true"]) == "sh -c true"


def test_the_cli_and_the_mcp_text_cut_a_command_line_alike(capsys):
    summary = PlatformSummary(
        platform="linux/amd64",
        manifest_digest="sha256:" + "ab" * 32,
        layer_count=1,
        total_size=1,
        user="",
        entrypoint=["/bin/sh", "-c"],
        cmd=["echo " + "y" * 200],
        created="",
    )
    report = PlatformsReport(reference="r", digest="d", platforms=[summary])
    render_platforms(report)
    expected = one_line("/bin/sh -c echo " + "y" * 200)
    assert expected in capsys.readouterr().out
    assert expected in "\n".join(platforms_text(report))


def test_a_count_takes_the_singular_for_one_in_every_front_end():
    assert counted(1, "match", "matches") == "1 match"
    assert counted(0, "match", "matches") == "0 matches"
    assert counted(2, "layer") == "2 layers"
    assert counted(1200, "entry", "entries") == "1,200 entries"
