"""``/packages`` through ``layerpeek-bot preview``: the exact payload, within Discord's
limits, with the packages the tools list and the layer that installed each; its page
buttons through discord.py's own dispatch, on a bot that never saw the message."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from fixtures.bot import (
    allow_local_registry,
    assert_within_limits,
    click,
    component,
    invoke,
    message_payload,
    press_next_and_last,
    recorded_bot,
    running_bot,
    sent_payload,
)
from fixtures.package_images import dpkg_installed
from layerpeek.bot import commands
from layerpeek.bot.cli import main
from layerpeek.bot.settings import BotSettings


@pytest.fixture
def env(layerpeek_env, monkeypatch):
    allow_local_registry(monkeypatch, layerpeek_env)


def preview(capsys, line: str) -> dict:
    status = main(["preview", line])
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    return json.loads(out)


def test_packages_lists_a_line_a_package_with_its_layer(
    env, capsys, plain_registry, package_images
):
    ref = package_images.dpkg_layers.ref(plain_registry.host)
    message = preview(capsys, f"/packages image:{ref} filter:TINY")
    assert_within_limits(message)
    truth = dpkg_installed(package_images.trees.dpkg_root / "var/lib/dpkg")
    named = sorted(t for t in truth if "tiny" in t[0])
    description = message["embeds"][0]["description"]
    assert len(named) == 1
    assert description.startswith("names containing TINY:\n**deb** 1 package\n")
    assert "deb    tiny 2.0 all (layer 2)" in description.splitlines()


def test_packages_summarises_by_kind_and_cuts_within_limits(
    env, capsys, plain_registry, package_images
):
    message = preview(capsys, f"/packages image:{package_images.debian.ref(plain_registry.host)}")
    assert_within_limits(message)
    description = message["embeds"][0]["description"]
    deb = len(dpkg_installed(package_images.trees.dpkg_admin))
    assert description.startswith(
        f"**deb** {deb} packages\n**pypi** 3 packages\n**npm** 3 packages\n**golang** 4 packages"
    )
    total = deb + 3 + 3 + 4
    title = message["embeds"][0]["title"]
    assert title.endswith(f" · page 1 of {-(-total // 20)}")  # 20 a page by default
    assert len(description.split("```")[1].strip().splitlines()) == 20
    buttons = [c for row in message["components"] for c in row["components"]]
    assert [(b["label"], b["disabled"]) for b in buttons] == [
        ("⏮", True), ("◀", True), ("▶", False), ("⏭", False),
    ]  # fmt: skip


def test_packages_names_what_it_did_not_read(env, capsys, plain_registry, package_images):
    message = preview(capsys, f"/packages image:{package_images.broken.ref(plain_registry.host)}")
    description = message["embeds"][0]["description"]
    lines = description.splitlines()
    assert lines[0].startswith("⚠️ not read: usr/local/bin/liar (layer 0): a build information")
    assert lines[3] == "… and 2 more not read"
    assert "npm    good 1.0.0 (layer 0)" in description


@pytest.fixture
def small_pages(layerpeek_env, monkeypatch):
    allow_local_registry(monkeypatch, layerpeek_env)
    return BotSettings(page_size=5)


@pytest.mark.anyio
async def test_page_buttons_turn_through_every_package(small_pages, plain_registry, package_images):
    ref = package_images.dpkg_layers.ref(plain_registry.host)
    async with running_bot(small_pages) as bot:
        done = await invoke(bot, commands.packages, image=ref)
    sent = sent_payload(done.named("edit_original")[0])
    truth = dpkg_installed(package_images.trees.dpkg_root / "var/lib/dpkg")
    pages = -(-len(truth) // 5)
    second = await press_next_and_last(small_pages, sent, pages)
    names = sorted(name for name, _, _ in truth)
    listed = second["embeds"][0]["description"].split("```")[1].strip().splitlines()
    assert [line.split()[1] for line in listed] == names[5:10]
    assert_within_limits(second)


def test_diff_packages_names_upgrades_additions_and_removals(
    env, capsys, plain_registry, package_images
):
    """From the status dpkg left after layer 1 to the one after layer 2, as the CLI says it."""
    step1 = package_images.dpkg_step1.ref(plain_registry.host)
    latest = package_images.dpkg_layers.ref(plain_registry.host)
    message = preview(capsys, f"/diff base:{step1} target:{latest} packages:true")
    assert_within_limits(message)
    base = len(dpkg_installed(package_images.trees.dpkg_admin))
    head, listing = message["embeds"][0]["description"].split("\n```diff\n")
    assert head == (
        f"3 package changes: 1 added, 1 removed, 1 upgraded, 0 downgraded, 0 changed, "
        f"{base:,} unchanged"
    )
    assert listing.removesuffix("\n```").splitlines() == [
        "+ deb extra all 0.1  (layer 2)",
        "- deb gone all 1.0",
        "^ deb tiny all 1.0 -> 2.0  (layer 2)",
    ]
    assert "components" not in message  # one page: no buttons


@pytest.mark.anyio
async def test_diff_packages_turns_to_page_two_after_a_restart(
    small_pages, plain_registry, package_images
):
    """The Debian image's Python, Node and Go packages go; dpkg's two new ones come."""
    debian = package_images.debian.ref(plain_registry.host)
    latest = package_images.dpkg_layers.ref(plain_registry.host)
    async with running_bot(small_pages) as bot:
        done = await invoke(bot, commands.diff, base=debian, target=latest, packages=True)
    first = sent_payload(done.named("edit_original")[0])
    async with recorded_bot(small_pages) as (bot, adapter):
        await click(bot, component(first, "▶"), message_payload(first["components"]))
        await click(bot, component(first, "⏭"), message_payload(first["components"]))
    second, last = adapter.requests[1][2], adapter.requests[3][2]
    pages = [first, second, last]
    assert [p["embeds"][0]["title"].rsplit(" · ", 1)[1] for p in pages] == [
        "page 1 of 3", "page 2 of 3", "page 3 of 3",
    ]  # fmt: skip
    lines = [
        line
        for page in pages
        for line in page["embeds"][0]["description"].split("```diff\n")[1].splitlines()[:-1]
    ]
    assert [len(lines), lines[:2]] == [12, ["+ deb extra all 0.1  (layer 2)",
                                           "+ deb tiny all 2.0  (layer 2)"]]  # fmt: skip
    assert Counter(line.split()[:2][1] for line in lines[2:] if line[0] == "-") == {
        "golang": 4, "npm": 3, "pypi": 3,
    }  # fmt: skip
    assert component(second, "◀")["disabled"] is False and component(last, "▶")["disabled"]
    assert_within_limits(second)
