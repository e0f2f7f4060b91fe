"""Renderers produce real discord.py Embeds and Views inside every Discord limit, however large
or hostile the image; the limit checker itself catches each kind of excess."""

from __future__ import annotations

import io

import discord
import pytest
from PIL import Image

from fixtures.bot import assert_within_limits
from fixtures.reports import HOSTILE, KEY, entries, report
from layerpeek.bot import discord_limits as limits
from layerpeek.bot import render
from layerpeek.bot.chart import MAX_BARS, layer_chart
from layerpeek.bot.reply import Reply, payload
from layerpeek.bot.scope import Scope
from layerpeek.bot.views import PageButton, peek_view
from layerpeek.core.models import (
    DiffChange,
    DiffReport,
    EntryPage,
    Finding,
    FindMatch,
    FindResult,
    OsInfo,
    TriageReport,
)


def items(view: discord.ui.View) -> list[discord.ui.Item]:
    """The view's buttons and selects, unwrapped from their DynamicItem."""
    return [getattr(child, "item", child) for child in view.children]


def peek_message(layer_count: int, page_entries: int, layer: int | None = None) -> dict:
    big = report(layer_count, step="RUN " + "apt-get install -y something " * 20)
    page = EntryPage(entries=entries(page_entries), next_start=page_entries, complete=False)
    links = {"Download layer 3 (1.2 GiB)": "https://links.example/d/" + "t" * 400}
    reply = Reply(
        embeds=[
            render.summary_embed(big, chart=True),
            render.listing_embed(page, Scope(layer).describe(layer_count), 12345, None, True),
        ],
        view=peek_view(KEY, big.layers, Scope(layer), 12345, True, links),
        files={render.CHART_NAME: b"png"},
    )
    return payload(reply)


@pytest.mark.parametrize("layer", [None, 0, 499])
def test_a_huge_hostile_image_stays_within_every_limit(layer):
    message = peek_message(500, 50, layer)
    assert_within_limits(message)
    assert sum(limits.embed_length(e) for e in message["embeds"]) <= limits.EMBED_TOTAL
    summary, listing = message["embeds"]
    assert "more layers" in summary["description"]
    assert "\x1b" not in summary["description"] + listing["description"]
    assert listing["description"].count("```") == 2  # a name holding ``` cannot close the block


def test_the_listing_escapes_names_and_keeps_its_code_block():
    page = EntryPage(entries=entries(6), next_start=None, complete=True)
    text = render.listing_embed(page, "all layers", 0, 0, True).description
    assert "\\n" in text and "\\x1b" in text and "\\xff" in text
    assert text.startswith("```\n") and text.endswith("\n```")


def test_cat_keeps_a_files_lines_and_nothing_that_could_close_its_block():
    data = b"first line\r\n```\n@everyone [x](https://evil.example)\n\x1b[2Jred\tcell\rback\n"
    text = render.cat_embed("ref", "notes.txt", None, data, True).description
    body = text.removeprefix("```\n").removesuffix("\n```")
    assert body.splitlines() == [
        "first line",
        render.LOOKALIKE_BACKTICK * 3,
        "@everyone [x](https://evil.example)",  # a code block shows these as written
        "\\x1b[2Jred\tcell\\rback",
    ]
    assert text.count("```") == 2


def test_history_tags_and_cat_embeds_stay_within_limits():
    big = report(400, step="RUN " + "z" * 400)
    embeds = [
        render.history_embed(big),
        render.tags_embed("repo/" + "n" * 300, [f"tag-{i}-" + "v" * 100 for i in range(5000)]),
        render.cat_embed("r" * 400, "p" * 5000, 3, b"\x00\x01" * 10000, False),
        render.cat_embed("ref", "text.txt", None, ("```" + "é" * 9000).encode(), True),
    ]
    for embed in embeds:
        assert_within_limits(payload(Reply(embeds=[embed])))
    assert "more steps" in embeds[0].description
    assert "more tags" in embeds[1].description  # "… N more tags"


def test_the_layer_select_holds_at_most_25_options_around_the_current_layer():
    view = peek_view(KEY, report(300).layers, Scope(250), 0, False, {})
    select = next(i for i in items(view) if isinstance(i, discord.ui.Select))
    values = [o.value for o in select.options]
    assert len(values) == 25 and values[:2] == ["a", "m"] and "250" in values
    assert [o.value for o in select.options if o.default] == ["250"]


def test_navigation_buttons_disable_at_the_ends_and_have_distinct_ids():
    first = peek_view(KEY, report(2).layers, Scope(), 0, True, {})
    only = peek_view(KEY, report(2).layers, Scope(1), 0, False, {})
    disabled = {c.label: c.disabled for c in items(first) if isinstance(c, discord.ui.Button)}
    assert disabled == {"⏮": True, "◀": True, "▶": False, "⏭": False, "Find…": False}
    paging = {c.label: c.disabled for c in items(only) if isinstance(c, discord.ui.Button)}
    assert paging == {"⏮": True, "◀": True, "▶": True, "⏭": True, "Find in this layer": False}
    ids = [c.custom_id for c in items(first) if hasattr(c, "custom_id")]
    assert len(ids) == len(set(ids)) and all(len(i) <= limits.CUSTOM_ID for i in ids)


def test_page_button_ids_round_trip_through_the_template():
    button = PageButton(KEY, Scope(12), 345, "n", "▶", False)
    match = PageButton.__discord_ui_compiled_template__.fullmatch(button.custom_id)
    assert match and (match["key"], match["scope"], match["page"], match["nav"]) == (
        KEY,
        "12",
        "345",
        "n",
    )


def test_the_chart_is_a_png_with_a_bar_per_layer_capped():
    for count in (1, 5, 200):
        png = layer_chart(report(count))
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG"
        assert image.height == 40 + 26 * min(count, MAX_BARS) + 10


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ({"content": "x" * 2001}, "content"),
        ({"embeds": [{"title": "t" * 257}]}, "title"),
        ({"embeds": [{"description": "d" * 4097}]}, "description"),
        ({"embeds": [{"fields": [{"name": "n", "value": "v" * 1025}]}]}, "value"),
        ({"embeds": [{"footer": {"text": "f" * 2049}}]}, "footer"),
        ({"embeds": [{"description": "d" * 4000}, {"description": "d" * 2001}]}, "in total"),
        ({"components": [{"components": [{"custom_id": "c" * 101}]}]}, "custom_id"),
        ({"components": [{"components": [{"label": "l" * 81, "custom_id": "x"}]}]}, "label"),
        ({"components": [{"components": [{"url": "https://" + "u" * 510}]}]}, "url"),
        ({"components": [{"components": [{"options": [{"label": "o"}] * 26}]}]}, "options"),
        ({"components": [{"components": [{"custom_id": "a"}, {"custom_id": "a"}]}]}, "unique"),
    ],
)
def test_the_checker_finds_each_excess(message, problem):
    found = limits.violations(message)
    assert found and problem in found[0]


def test_find_diff_and_triage_embeds_stay_within_limits_when_huge_and_hostile():
    many = entries(5000)
    ref = "r/" + "x" * 400
    find = FindResult(
        reference=ref,
        pattern="*" * 300,
        merged=False,
        matches=[FindMatch(**e.model_dump(), history=[]) for e in many[:25]],
        total=5000,
        next_start=25,
    )
    change = DiffChange(path="c" * 300, fields=["size"], before=many[0], after=many[1], content="")
    diff = DiffReport(
        a=ref,
        b=ref,
        a_digest="sha256:" + "a" * 64,
        b_digest="sha256:" + "b" * 64,
        added=many,
        removed=many,
        changed=[change] * 2000,
        shared_layers=[],
        unchanged=0,
        unverified=0,
    )
    finding = Finding(
        kind="secret",
        severity="high",
        path=HOSTILE[1] * 20,
        layer=0,
        created_by="RUN x",
        size=1,
        detail="d" * 500,
    )
    triage = TriageReport(
        reference=ref,
        digest="sha256:" + "a" * 64,
        platform="linux/amd64",
        user="`evil`" * 50,
        runs_as_root=False,
        os=OsInfo(id="x", version_id="1", pretty_name="p" * 500, path="etc/os-release"),
        findings=[finding] * 1000,
        largest=many[:100],
        removed_size=10,
    )
    embeds = [
        render.find_embed(find, "every layer", "page 1 of 9"),
        render.diff_embed(diff, 0, 5000, "page 1 of 2"),
        render.triage_embed(triage),
    ]
    for embed in embeds:
        assert_within_limits(payload(Reply(embeds=[embed])))
    assert embeds[0].title.endswith(" · page 1 of 9")
    assert "more paths" in embeds[1].description
    assert "more findings" in embeds[2].description
    assert "`evil`" not in embeds[2].description  # a backtick cannot end the inline code
