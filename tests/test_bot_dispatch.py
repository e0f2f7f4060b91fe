"""Buttons survive a restart: a click on a message the previous process sent is routed by
discord.py's own dispatch (DynamicItem templates) to a bot that never saw that message."""

from __future__ import annotations

import asyncio
import re

import discord
import pytest

from fixtures.bot import (
    allow_local_registry,
    assert_within_limits,
    click,
    component,
    interaction_payload,
    invoke,
    message_payload,
    press_next_and_last,
    recorded_bot,
    running_bot,
    sent_payload,
    shown,
)
from layerpeek.bot import commands
from layerpeek.bot.answers import EXPIRED, OTHER_KIND
from layerpeek.bot.app import LayerpeekBot
from layerpeek.bot.settings import BotSettings
from layerpeek.core.settings import Settings


@pytest.fixture
def settings(layerpeek_env, monkeypatch):
    allow_local_registry(monkeypatch, layerpeek_env)
    return BotSettings(page_size=5)


async def first_message(settings: BotSettings, image: str) -> dict:
    """/peek answered by a first bot process, as the message Discord stored."""
    async with running_bot(settings) as bot:
        done = await invoke(bot, commands.peek, image=image)
    return sent_payload(done.named("edit_original")[0])


async def test_next_on_an_old_message_edits_it_to_page_two(settings, plain_registry, catalog):
    sent = await first_message(settings, catalog.gzip.ref(plain_registry.host))
    stored = message_payload(sent["components"])
    async with recorded_bot(settings) as (bot, adapter):
        await click(bot, component(sent, "▶"), stored)
    (m1, path1, ack), (m2, path2, edited) = adapter.requests
    assert (m1, path1, ack) == (
        "POST",
        "/interactions/{webhook_id}/{webhook_token}/callback",
        {"type": 6},
    )
    assert (m2, path2) == ("PATCH", "/webhooks/{webhook_id}/{webhook_token}/messages/@original")
    assert "page 2" in edited["embeds"][1]["title"]
    listed = [e.path for layer in catalog.gzip.layers for e in layer.entries]
    page_two = edited["embeds"][1]["description"].splitlines()[1:-1]
    assert len(page_two) == 5
    assert all(path[:40] in line for path, line in zip(listed[5:10], page_two, strict=True))
    assert_within_limits(edited)
    back = component(edited, "◀")
    assert back["custom_id"].split(":")[:2] == component(sent, "▶")["custom_id"].split(":")[:2]
    assert not back["disabled"]


async def test_the_last_page_button_counts_and_disables_forward(settings, plain_registry, catalog):
    sent = await first_message(settings, catalog.gzip.ref(plain_registry.host))
    async with recorded_bot(settings) as (bot, adapter):
        await click(bot, component(sent, "⏭"), message_payload(sent["components"]))
    edited = adapter.requests[-1][2]
    total = sum(len(layer.entries) for layer in catalog.gzip.layers)
    pages = -(-total // settings.page_size)
    assert f"page {pages} of {pages}" in edited["embeds"][1]["title"]
    assert component(edited, "▶")["disabled"] and component(edited, "⏭")["disabled"]


async def test_choosing_a_layer_lists_that_layer(settings, plain_registry, catalog):
    sent = await first_message(settings, catalog.gzip.ref(plain_registry.host))
    select = component(sent, discord.ComponentType.select.value)
    async with recorded_bot(settings) as (bot, adapter):
        await click(bot, select, message_payload(sent["components"]), values=["1"])
    edited = adapter.requests[-1][2]
    assert "layer 1 of 2" in edited["embeds"][1]["title"]
    assert "early.txt" in edited["embeds"][1]["description"]
    chosen = component(edited, discord.ComponentType.select.value)
    assert [o["value"] for o in chosen["options"] if o.get("default")] == ["1"]


async def test_a_click_on_expired_state_answers_one_ephemeral_line(settings):
    old = {"type": 2, "style": 2, "label": "▶", "custom_id": "lp:ZZZZZZZZZZZ:a:1:n"}
    stored = message_payload([{"type": 1, "components": [old]}])
    async with recorded_bot(settings) as (bot, adapter):
        await click(bot, old, stored)
    [(method, _, answer)] = adapter.requests
    assert method == "POST" and answer["type"] == 4
    assert answer["data"]["content"] == EXPIRED
    assert answer["data"]["flags"] == discord.MessageFlags(ephemeral=True).value


async def test_the_merged_view_pages_the_filesystem_after_whiteouts(
    settings, plain_registry, catalog
):
    sent = await first_message(settings, catalog.whiteouts.ref(plain_registry.host))
    select = component(sent, discord.ComponentType.select.value)
    async with recorded_bot(settings) as (bot, adapter):
        await click(bot, select, message_payload(sent["components"]), values=["m"])
    listing = adapter.requests[-1][2]["embeds"][1]
    assert listing["title"] == "Files in the merged filesystem: page 1 of 1"
    shown = [line.rsplit(" ", 1)[-1] for line in listing["description"].splitlines()[1:-1]]
    assert shown == list(catalog.whiteouts.merged_paths)


async def test_find_in_this_layer_asks_for_a_pattern_and_answers_in_the_channel(
    settings, plain_registry, catalog
):
    sent = await first_message(settings, catalog.gzip.ref(plain_registry.host))
    select = component(sent, discord.ComponentType.select.value)
    async with recorded_bot(settings) as (bot, adapter):
        await click(bot, select, message_payload(sent["components"]), values=["1"])
        edited = adapter.requests[-1][2]
        await click(
            bot, component(edited, "Find in this layer"), message_payload(edited["components"])
        )
        modal = adapter.requests[-1][2]
        assert modal["type"] == 9 and modal["data"]["title"] == "Find in layer 1 of 2"
        text_input = modal["data"]["components"][0]["components"][0]
        submit = interaction_payload({"custom_id": modal["data"]["custom_id"], "type": 0}, {})
        submit["type"] = 5
        submit["data"] = {
            "custom_id": modal["data"]["custom_id"],
            "components": [
                {"type": 1, "components": [{**text_input, "value": "*.txt"}]},
            ],
        }
        del submit["message"]
        bot._connection.parse_interaction_create(submit)
        await asyncio.gather(
            *[t for t in asyncio.all_tasks() if t.get_name().startswith("discord-ui-modal")]
        )
    thinking, answer = adapter.requests[-2:]
    assert thinking[2] == {"type": 5}
    found = answer[2]["embeds"][0]
    assert shown(found["title"]) == "2 matches for *.txt"
    assert found["footer"]["text"].endswith(" · in layer 1")
    assert "app/data/early.txt" in found["description"]
    assert "app/data/late.txt" in found["description"]
    assert "longer.txt" not in found["description"]  # a .txt of layer 0, not this layer


@pytest.mark.parametrize(
    ("dev_guild", "sync_global", "paths"),
    [
        (777, False, ["/applications/{application_id}/guilds/{guild_id}/commands"]),
        (None, True, ["/applications/{application_id}/commands"]),
        (None, False, []),
    ],
)
async def test_setup_hook_syncs_a_dev_guild_or_globally_only_when_asked(
    settings, monkeypatch, dev_guild, sync_global, paths
):
    bot = LayerpeekBot(
        settings.model_copy(update={"dev_guild": dev_guild}), Settings(), sync_global=sync_global
    )
    bot._connection.application_id = 1
    sent = []

    async def recorded(route, **kwargs):  # discord.py's HTTP layer, Discord's side faked
        sent.append((route.path, kwargs["json"]))
        return [{**c, "id": "9", "application_id": "1", "version": "1"} for c in kwargs["json"]]

    monkeypatch.setattr(bot.http, "request", recorded)
    await bot.setup_hook()
    await bot.close()
    assert [path for path, _ in sent] == paths
    for _, commands_ in sent:
        assert {c["name"] for c in commands_} == {
            "peek",
            "history",
            "cat",
            "tags",
            "find",
            "diff",
            "triage",
            "packages",
        }


async def sent_answer(settings: BotSettings, command, **options) -> dict:
    """A command answered by a first bot process, as the message Discord stored."""
    async with running_bot(settings) as bot:
        done = await invoke(bot, command, **options)
    return sent_payload(done.named("edit_original")[0])


async def test_find_pages_through_every_match_after_a_restart(settings, plain_registry, catalog):
    sent = await sent_answer(
        settings, commands.find, image=catalog.gzip.ref(plain_registry.host), pattern="*"
    )
    total = int(shown(sent["embeds"][0]["title"]).split()[0])
    pages = -(-total // settings.page_size)
    assert pages > 2 and sent["embeds"][0]["title"].endswith(f" · page 1 of {pages}")
    second = await press_next_and_last(settings, sent, pages)
    listed = [line for line in second["embeds"][0]["description"].splitlines() if "[" in line]
    assert len(listed) == settings.page_size
    assert_within_limits(second)


async def test_diff_pages_through_every_path_after_a_restart(settings, plain_registry, catalog):
    base, target = catalog.gzip.ref(plain_registry.host), catalog.whiteouts.ref(plain_registry.host)
    sent = await sent_answer(settings, commands.diff, base=base, target=target)
    description = sent["embeds"][0]["description"]
    total = sum(int(n) for n in re.findall(r"\*\*(\d+)\*\* (?:added|removed|changed)", description))
    pages = -(-total // settings.page_size)
    listed = [line for line in description.splitlines() if line[:2] in ("+ ", "- ", "~ ")]
    assert len(listed) == settings.page_size
    assert sent["embeds"][0]["title"].endswith(f" · page 1 of {pages}")
    async with recorded_bot(settings) as (bot, adapter):
        await click(bot, component(sent, "⏭"), message_payload(sent["components"]))
    last = adapter.requests[-1][2]["embeds"][0]
    assert last["title"].endswith(f" · page {pages} of {pages}")
    tail = [line for line in last["description"].splitlines() if line[:2] in ("+ ", "- ", "~ ")]
    assert len(tail) == total - (pages - 1) * settings.page_size


async def test_a_button_naming_another_answers_state_answers_one_line(
    settings, plain_registry, catalog
):
    """Buttons carry their state's key in their id: a /peek page button given a /find's
    key, or a result page button given a /peek's, tells the presser so, and edits nothing."""
    image = catalog.gzip.ref(plain_registry.host)
    listing = await first_message(settings, image)
    found = await sent_answer(settings, commands.find, image=image, pattern="*")
    peek_key = component(listing, "▶")["custom_id"].split(":")[1]
    find_key = component(found, "▶")["custom_id"].split(":")[1]
    for custom_id in (f"lp:{find_key}:a:1:n", f"lpk:{peek_key}:1:n"):
        forged = {"type": 2, "style": 2, "label": "▶", "custom_id": custom_id}
        async with recorded_bot(settings) as (bot, adapter):
            await click(bot, forged, message_payload([{"type": 1, "components": [forged]}]))
        assert [method for method, _, _ in adapter.requests] == ["POST", "POST"]  # ack, line
        answer = adapter.requests[-1][2]
        assert answer["content"] == OTHER_KIND
        assert answer["flags"] == discord.MessageFlags(ephemeral=True).value
