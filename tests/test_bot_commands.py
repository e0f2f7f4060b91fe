"""Slash commands: the payload the tree syncs, and callbacks run against the real registry
with a minimal fake Interaction that records what the bot answers."""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import discord
import pytest

from fixtures.bot import (
    FakeInteraction,
    assert_within_limits,
    invoke,
    running_bot,
    sent_payload,
    shown,
    tree_payload,
)
from fixtures.catalog import LATE_TXT, TAG_NAMES
from fixtures.fs_images import OS_RELEASE
from layerpeek.bot import commands
from layerpeek.bot import discord_limits as limits
from layerpeek.bot.answers import EXPIRED
from layerpeek.bot.ratelimit import RateLimits, TooManyRequests
from layerpeek.bot.reply import NO_MENTIONS
from layerpeek.bot.scope import Scope
from layerpeek.core.layers.progress import Progress
from layerpeek.links.window import SlidingWindow

EXPECTED = {
    "peek": ["image", "platform", "layer", "private"],
    "history": ["image", "platform", "private"],
    "cat": ["image", "path", "layer", "private"],
    "tags": ["repository", "private"],
    "find": ["image", "pattern", "regex", "merged", "private"],
    "diff": ["base", "target", "packages", "private"],
    "triage": ["image", "platform", "private"],
    "packages": ["image", "filter", "platform", "private"],
}


def test_the_sync_payload_names_describes_and_types_every_option():
    synced = {c["name"]: c for c in tree_payload()}
    assert {name: [o["name"] for o in c["options"]] for name, c in synced.items()} == EXPECTED
    for command in synced.values():
        assert 1 <= len(command["description"]) <= limits.COMMAND_DESCRIPTION
        for option in command["options"]:
            assert 1 <= len(option["description"]) <= limits.COMMAND_DESCRIPTION
    peek = {o["name"]: o for o in synced["peek"]["options"]}
    assert peek["image"]["required"] and peek["image"]["autocomplete"]
    assert peek["layer"]["type"] == discord.AppCommandOptionType.integer.value
    assert peek["private"]["type"] == discord.AppCommandOptionType.boolean.value
    assert peek["platform"]["autocomplete"] and not peek["platform"]["required"]


async def test_peek_defers_then_sends_summary_chart_listing_and_buttons(
    bot_settings, plain_registry, catalog
):
    async with running_bot(bot_settings) as bot:
        done = await invoke(bot, commands.peek, image=catalog.gzip.ref(plain_registry.host))
    assert [name for name, _ in done.calls] == ["defer", "edit_original"]
    assert done.named("defer")[0] == {"thinking": True, "ephemeral": False}
    message = sent_payload(done.named("edit_original")[0])
    assert_within_limits(message)
    assert message["attachments"] == [{"id": 0, "filename": "layers.png"}]
    summary, listing = message["embeds"]
    assert summary["image"]["url"] == "attachment://layers.png"
    assert "page 1+" in listing["title"] and "app/bin" in listing["description"]
    assert "flags" not in message  # public: the whole channel sees it


async def test_peek_of_one_layer_offers_a_download_link_and_can_be_private(
    bot_settings, plain_registry, catalog
):
    async with running_bot(bot_settings) as bot:
        done = await invoke(
            bot, commands.peek, image=catalog.gzip.ref(plain_registry.host), layer=1, private=True
        )
    assert done.named("defer")[0]["ephemeral"] is True
    message = sent_payload(done.named("edit_original")[0])
    buttons = [c for row in message["components"] for c in row["components"]]
    links = [b for b in buttons if b.get("url")]
    assert [b["label"] for b in links] == ["Download layer 1 (2.0 MiB)"]
    assert links[0]["url"].startswith("https://links.example/d/")


async def test_history_tags_and_cat_answer_within_limits(bot_settings, plain_registry, catalog):
    host = plain_registry.host
    async with running_bot(bot_settings) as bot:
        history = await invoke(bot, commands.history, image=catalog.history.ref(host))
        tags = await invoke(bot, commands.tags, repository=f"{host}/{catalog.tags.repo}")
        cat = await invoke(
            bot, commands.cat, image=catalog.gzip.ref(host), path="app/data/late.txt"
        )
    attached = cat.named("edit_original")[0]["attachments"][0]
    assert attached.filename == "late.txt" and attached.fp.read() == LATE_TXT
    attached.fp.seek(0)
    for done in (history, tags, cat):
        assert [name for name, _ in done.calls] == ["defer", "edit_original"]
        assert_within_limits(sent_payload(done.named("edit_original")[0]))
    assert "\\x1b" in history.named("edit_original")[0]["embeds"][0].description
    assert f"{len(TAG_NAMES)} tags" in tags.named("edit_original")[0]["embeds"][0].title


async def test_an_error_is_one_ephemeral_line_and_the_public_thinking_message_goes(
    bot_settings, plain_registry
):
    async with running_bot(bot_settings) as bot:
        done = await invoke(bot, commands.peek, image=f"{plain_registry.host}/no/such:image")
    assert [name for name, _ in done.calls] == ["defer", "delete_original", "followup"]
    sent = done.named("followup")[0]
    assert sent["ephemeral"] is True and "not found" in sent["content"]
    assert "\n" not in sent["content"]


@pytest.mark.parametrize(
    ("command", "options", "hint"),
    [
        ("cat", {"image": "whiteouts", "path": "etc/secret.key"}, "; read it with layer:0"),
        ("cat", {"image": "whiteouts", "path": "opt/app/a"}, "; read it with layer:0"),
        (
            "cat",
            {"image": "overlay", "path": "etc/os-release", "layer": 0},
            "without the layer option,",
        ),
        ("peek", {"image": "multi", "platform": "linux/s390x"}, "with platform:linux/amd64"),
    ],
)
async def test_error_hints_name_the_commands_own_options(
    bot_settings, plain_registry, catalog, fs_images, command, options, hint
):
    options = dict(options)  # the parameters are shared by every run
    name = options.pop("image")
    image = getattr(fs_images if name == "overlay" else catalog, name)
    async with running_bot(bot_settings) as bot:
        done = await invoke(
            bot, getattr(commands, command), image=image.ref(plain_registry.host), **options
        )
    said = shown(done.named("followup")[0]["content"])
    assert hint in said
    assert not [other for other in ("--", "layer=", "platform=", "argument") if other in said]


async def test_the_guard_refuses_a_private_address_not_allowed(bot_settings, monkeypatch):
    monkeypatch.delenv("LAYERPEEK_ALLOW_PRIVATE")
    async with running_bot(bot_settings) as bot:
        done = await invoke(bot, commands.history, image="10.1.2.3:5000/app:1")
    assert "LAYERPEEK_ALLOW_PRIVATE" in shown(done.named("followup")[0]["content"])


async def test_rate_limits_refuse_before_deferring(bot_settings, plain_registry, catalog):
    settings = bot_settings.model_copy(update={"user_rate": 1})
    async with running_bot(settings) as bot:
        image = catalog.history.ref(plain_registry.host)
        first = await invoke(bot, commands.history, image=image)
        second = await invoke(bot, commands.history, image=image)
    assert [name for name, _ in first.calls] == ["defer", "edit_original"]
    assert second.calls == [
        (
            "send_message",
            {
                "content": second.calls[0][1]["content"],
                "ephemeral": True,
                "allowed_mentions": NO_MENTIONS,
            },
        )
    ]
    assert "try again in" in second.calls[0][1]["content"]


def test_sliding_windows_count_per_user_and_per_guild():
    now = [0.0]
    limits_ = RateLimits(per_user=2, per_guild=3, clock=lambda: now[0])
    limits_.check(1, 10)
    limits_.check(1, 10)
    with pytest.raises(TooManyRequests, match="you are going fast"):
        limits_.check(1, 10)
    limits_.check(2, 10)
    with pytest.raises(TooManyRequests, match="this server is busy"):
        limits_.check(3, 10)
    now[0] = 61.0
    limits_.check(1, 10)
    window = SlidingWindow(1, 10.0, clock=lambda: now[0])
    assert window.wait("k") == 0.0 and window.wait("k") == pytest.approx(10.0)


async def test_autocomplete_offers_tags_platforms_and_layers(bot_settings, plain_registry, catalog):
    host = plain_registry.host
    async with running_bot(bot_settings) as bot:
        tags = await commands.complete_image(
            FakeInteraction(client=bot), f"{host}/{catalog.tags.repo}:t1"
        )
        multi = FakeInteraction(
            client=bot, namespace=SimpleNamespace(image=catalog.multi.ref(host))
        )
        platforms = await commands.complete_platform(multi, "")
        arm = await commands.complete_platform(multi, "arm")
        gzip = SimpleNamespace(image=catalog.gzip.ref(host), platform=None)
        layers = await commands.complete_layer(FakeInteraction(client=bot, namespace=gzip), "")
        nothing = await commands.complete_image(FakeInteraction(client=bot), f"{host}/no/such:")
    assert [c.name.rpartition(":")[2] for c in tags] == [t for t in TAG_NAMES if t.startswith("t1")]
    assert [c.value for c in platforms] == catalog.multi.platforms
    assert all("arm" in c.value for c in arm) and arm
    assert [c.value for c in layers] == [0, 1] and layers[0].name.startswith("#0 ")
    assert nothing == []
    assert all(len(c.name) <= limits.CHOICE_NAME for c in [*tags, *platforms, *layers])


async def test_a_click_on_unknown_state_gets_a_one_line_ephemeral_reply(bot_settings):
    async with running_bot(bot_settings) as bot:
        click = FakeInteraction(client=bot, type=discord.InteractionType.component)
        await bot.turn_page(click, "AAAAAAAAAAA", Scope(), 1, "n")
    assert click.calls == [
        ("send_message", {"content": EXPIRED, "ephemeral": True, "allowed_mentions": NO_MENTIONS})
    ]


async def test_find_diff_and_triage_answer_from_the_merged_filesystem(
    bot_settings, plain_registry, catalog
):
    host = plain_registry.host
    whiteouts = catalog.whiteouts.ref(host)
    async with running_bot(bot_settings) as bot:
        found = await invoke(bot, commands.find, image=catalog.gzip.ref(host), pattern="*.bin")
        deleted = await invoke(bot, commands.find, image=whiteouts, pattern="*.key")
        diff = await invoke(bot, commands.diff, base=catalog.gzip.ref(host), target=whiteouts)
        triage = await invoke(bot, commands.triage, image=whiteouts)
        bad = await invoke(bot, commands.find, image=whiteouts, pattern="(", regex=True)
    messages = [sent_payload(d.named("edit_original")[0]) for d in (found, deleted, diff, triage)]
    for message in messages:
        assert_within_limits(message)
    found_, deleted_, diff_, triage_ = (m["embeds"][0] for m in messages)
    assert shown(found_["title"]) == "4 matches for *.bin"
    assert "etc/secret.key" in deleted_["description"]
    added = [p for p in catalog.whiteouts.merged_paths if p != "etc"]  # etc is in both
    assert f"**{len(added)}** added" in diff_["description"]
    assert all(f"+ {path}\n" in diff_["description"] for path in added)
    assert "deleted-secret" in triage_["description"] and "etc/secret.key" in triage_["description"]
    assert (
        bad.calls[-1][1]["ephemeral"] is True
        and "regular expression" in bad.calls[-1][1]["content"]
    )


async def test_scan_progress_edits_are_spaced_and_never_overlap():
    now = [0.0]
    interaction = FakeInteraction(client=None)
    progress = commands.ScanProgress(interaction, every=3.0, clock=lambda: now[0])
    step = Progress(bytes_read=1536, total=4096, entries=7)
    for moment in (1.0, 3.5, 4.0):  # too soon; due; due but one edit is still in flight
        now[0] = moment
        progress(step)
    await progress.settle()
    for moment in (5.0, 7.0):  # too soon after 3.5; due
        now[0] = moment
        progress(step)
    await progress.settle()
    edits = interaction.named("edit_original")
    assert edits == [{"content": "reading the layer: 1.5 KiB of 4.0 KiB, 7 entries so far…"}] * 2


async def test_peek_shows_scan_progress_before_the_answer_replaces_it(
    bot_settings, plain_registry, catalog, monkeypatch
):
    monkeypatch.setattr(commands, "ScanProgress", partial(commands.ScanProgress, every=0.0))
    async with running_bot(bot_settings) as bot:
        done = await invoke(bot, commands.peek, image=catalog.gzip.ref(plain_registry.host))
    *progress, answer = done.named("edit_original")
    assert progress and all(e["content"].startswith("reading the layer: ") for e in progress)
    assert answer["content"] is None and len(answer["embeds"]) == 2


async def test_cat_shows_a_text_file_line_by_line(bot_settings, plain_registry, fs_images):
    async with running_bot(bot_settings) as bot:
        done = await invoke(
            bot,
            commands.cat,
            image=fs_images.overlay.ref(plain_registry.host),
            path="/etc/os-release",
        )
    description = sent_payload(done.named("edit_original")[0])["embeds"][0]["description"]
    assert description == "```\n" + OS_RELEASE.decode() + "```"  # its last line ends the block


async def test_peek_names_each_layers_short_digest(bot_settings, plain_registry, catalog):
    async with running_bot(bot_settings) as bot:
        done = await invoke(bot, commands.peek, image=catalog.gzip.ref(plain_registry.host))
    summary = sent_payload(done.named("edit_original")[0])["embeds"][0]["description"]
    for layer in catalog.gzip.layers:
        assert f"`{layer.digest[:19]}`" in summary  # sha256: and 12 hex digits


async def test_find_searches_every_layer_by_default_as_the_cli_does(
    bot_settings, plain_registry, catalog
):
    whiteouts = catalog.whiteouts.ref(plain_registry.host)
    async with running_bot(bot_settings) as bot:
        shipped = await invoke(bot, commands.find, image=whiteouts, pattern="etc/secret.key")
        merged = await invoke(
            bot, commands.find, image=whiteouts, pattern="etc/secret.key", merged=True
        )
    shipped_, merged_ = (
        sent_payload(d.named("edit_original")[0])["embeds"][0] for d in (shipped, merged)
    )
    assert shown(shipped_["title"]) == "1 match for etc/secret.key"
    assert "etc/secret.key" in shipped_["description"]
    assert shipped_["footer"]["text"].endswith(" · in every layer")
    assert shown(merged_["title"]) == "0 matches for etc/secret.key"
    assert merged_["footer"]["text"].endswith(" · in the merged filesystem")


async def test_a_bad_reference_is_refused_privately_before_anything_is_posted(bot_settings):
    async with running_bot(bot_settings) as bot:
        done = await invoke(bot, commands.peek, image="Alpine:3.20")
    assert [name for name, _ in done.calls] == ["send_message"]
    sent = done.named("send_message")[0]
    assert sent["ephemeral"] is True
    assert "'Alpine:3.20'" in shown(sent["content"]) and "library" not in sent["content"]


@pytest.mark.parametrize(
    ("message", "typed", "said"),
    [
        (
            "manifest docker.io/library/alpine:3.20 not found",
            ["alpine:3.20"],
            "manifest alpine:3.20 not found",
        ),
        ("library/alpine: denied", ["alpine"], "alpine: denied"),
        ("docker.io/bitnami/redis: denied", ["bitnami/redis:7"], "bitnami/redis: denied"),
        (
            "docker.io/library/alpine: denied",
            ["docker.io/library/alpine"],
            "docker.io/library/alpine: denied",
        ),
        ("ghcr.io/o/app: denied", ["ghcr.io/o/app"], "ghcr.io/o/app: denied"),
    ],
)
def test_errors_name_docker_hub_images_as_the_user_typed_them(message, typed, said):
    assert commands.as_typed(message, typed) == said
