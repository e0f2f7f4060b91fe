"""``layerpeek-bot preview`` prints the exact payload without a Discord token, within every
limit; the state store behind the buttons keeps and expires rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.bot import allow_local_registry, assert_within_limits
from layerpeek.bot.cli import UsageError, main, parse_line
from layerpeek.bot.settings import BotSettings
from layerpeek.bot.state import StateStore


@pytest.fixture
def env(layerpeek_env, monkeypatch):
    allow_local_registry(monkeypatch, layerpeek_env)


def preview(capsys, line: str) -> tuple[int, dict, str]:
    status = main(["preview", line])
    out, err = capsys.readouterr()
    return status, json.loads(out) if out else {}, err


def test_peek_preview_is_the_message_payload(env, capsys, plain_registry, catalog):
    status, message, err = preview(capsys, f"/peek image:{catalog.gzip.ref(plain_registry.host)}")
    assert status == 0 and err == ""
    assert_within_limits(message)
    assert set(message) >= {"embeds", "components", "attachments"}
    assert message["attachments"] == [{"id": 0, "filename": "layers.png"}]
    kinds = [[c["type"] for c in row["components"]] for row in message["components"]]
    assert kinds == [[2, 2, 2, 2, 2], [3]]


def test_every_command_previews_within_limits(env, capsys, plain_registry, catalog):
    host = plain_registry.host
    hostile = catalog.bad.hostile_names.ref(host)
    lines = [
        f"/peek image:{catalog.multi.ref(host)} platform:linux/arm64/v8 layer:0 private:true",
        f"/peek image:{hostile}",
        f"/history image:{catalog.history.ref(host)}",
        f"/cat image:{catalog.zstd.ref(host)} 'path:unicode/日本語.txt'",
        f"/tags repository:{host}/{catalog.tags.repo}",
    ]
    for line in lines:
        status, message, err = preview(capsys, line)
        assert (status, err) == (0, ""), line
        assert_within_limits(message)
    assert "\\n" in json.dumps(preview(capsys, lines[1])[1])  # the newline name, escaped


def test_an_error_previews_as_one_ephemeral_line(env, capsys, plain_registry):
    status, message, _ = preview(capsys, f"/history image:{plain_registry.host}/no/such:tag")
    assert status == 1
    assert message["flags"] == 64 and "not found" in message["content"]
    assert message["embeds"] == []


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("peek image:x", "as typed in Discord"),
        ("/nope", "unknown command /nope"),
        ("/peek image:x color:red", "has no option 'color'"),
        ("/peek layer:1", "/peek needs image:…"),
        ("/peek image:x layer:top", "whole number"),
        ("/peek image:x private:maybe", "true or false"),
    ],
)
def test_a_bad_preview_line_is_a_clear_error(line, error):
    with pytest.raises(UsageError, match=error):
        parse_line(line)


def test_options_are_converted_as_discord_would(capsys):
    assert parse_line("/peek image:127.0.0.1:5000/a/b:1 layer:-1 private:TRUE") == (
        "peek",
        {"image": "127.0.0.1:5000/a/b:1", "layer": -1, "private": True},
    )


def test_preview_out_writes_the_attachments_the_payload_names(
    env, capsys, plain_registry, catalog, tmp_path
):
    line = f"/peek image:{catalog.gzip.ref(plain_registry.host)}"
    status = main(["preview", line, "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    named = [a["filename"] for a in json.loads(out)["attachments"]]
    assert status == 0 and named == ["layers.png"]
    chart = (tmp_path / "out" / "layers.png").read_bytes()
    assert chart.startswith(b"\x89PNG\r\n\x1a\n")
    assert err == f"layerpeek-bot: wrote {tmp_path / 'out' / 'layers.png'}\n"


def test_the_console_script_runs_without_a_token(env, plain_registry, catalog):
    ref = catalog.history.ref(plain_registry.host)
    done = subprocess.run(
        [sys.executable, "-m", "layerpeek.bot.cli", "preview", f"/history image:{ref}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["embeds"][0]["title"].startswith("History of")


def test_running_without_a_token_says_what_to_set(env, capsys):
    assert main([]) == 1
    assert "set DISCORD_TOKEN" in capsys.readouterr().err


def test_a_bad_cache_setting_stops_the_bot_before_it_connects(env, capsys, monkeypatch):
    monkeypatch.setenv("DISCORD_TOKEN", "not.a.token")
    monkeypatch.setenv("LAYERPEEK_CACHE_URL", "ftp://cache")
    assert main([]) == 1
    err = capsys.readouterr().err
    assert err.startswith("layerpeek-bot: error: invalid LAYERPEEK_CACHE_URL: unsupported")
    assert len(err.splitlines()) == 1


async def test_state_is_kept_by_key_and_expires(tmp_path):
    store = StateStore(tmp_path / "state.sqlite3", days=1)
    key = await store.put({"pinned": "r@sha256:x"})
    assert await store.get(key) == {"pinned": "r@sha256:x"}
    assert await store.get("AAAAAAAAAAA") is None
    expired = StateStore(tmp_path / "state.sqlite3", days=-1)
    old = await expired.put({"gone": True})
    assert await expired.get(old) is None
    assert await StateStore(tmp_path / "state.sqlite3", days=1).get(key) is not None


def test_settings_come_from_a_dotenv_and_a_copied_example_is_valid(tmp_path, monkeypatch):
    for name in ("DISCORD_TOKEN", "LAYERPEEK_PLAIN_HTTP", "LAYERPEEK_BOT_PAGE_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    example = Path(__file__).parent.parent / ".env.example"
    (tmp_path / ".env").write_text(example.read_text())
    assert BotSettings().token is None and BotSettings().page_size == 20
    (tmp_path / ".env").write_text(
        "DISCORD_TOKEN=abc.def\nLAYERPEEK_PLAIN_HTTP=reg.lan:5000\nLAYERPEEK_BOT_PAGE_SIZE=7\n"
    )
    settings = BotSettings()
    assert settings.token.get_secret_value() == "abc.def" and settings.page_size == 7
    assert BotSettings.core().plain_http == ("reg.lan:5000",)
