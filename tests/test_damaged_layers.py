"""A damaged layer hides nothing that was read before the damage, in every front end.

The images (fixtures.damaged) hold a layer of 39 files followed by a damaged header, alone
(gzip, zstd) or below a sound layer that deletes one of the 39, replaces another and adds
files. Each front end must show the 39 entries (and the merged view built from them), mark
the answer incomplete and name the layer, its digest and where the damage is.
"""

from __future__ import annotations

import json

import discord
import pytest
from mcp import Client

from fixtures.bot import (
    FakeInteraction,
    allow_local_registry,
    assert_within_limits,
    invoke,
    live_markdown,
    running_bot,
    sent_payload,
    shown,
)
from fixtures.damaged import READ_BEFORE_DAMAGE, DamagedImages, push_damaged_images
from fixtures.reports import KEY, entries, report
from layerpeek.bot import commands, render
from layerpeek.bot.reply import Reply, payload
from layerpeek.bot.scope import Scope
from layerpeek.bot.settings import BotSettings
from layerpeek.bot.views import peek_view
from layerpeek.cli.main import main
from layerpeek.core.models import EntryPage, LayerProblem, TriageReport
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.service import Layerpeek
from layerpeek.core.settings import Settings, load_settings
from layerpeek.server.app import create_server

ERROR = "bad tar header checksum at tar offset 39,936"
READ = f"({READ_BEFORE_DAMAGE} entries read)"
WARNING = "⚠️ **Incomplete:** "
FILES = [f"f{i:02d}.txt" for i in range(READ_BEFORE_DAMAGE)]
UPPER = [".wh.f05.txt", "f10.txt", "etc", "etc/os-release", "new.txt"]
MERGED = sorted([*(f for f in FILES if f != "f05.txt"), "etc", "etc/os-release", "new.txt"])


@pytest.fixture(scope="module")
def damaged(plain_registry) -> DamagedImages:
    return push_damaged_images(plain_registry.url)


def run(capsys, *argv: str) -> tuple[int, str, list[str]]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err.splitlines()


def problem_line(image, layer: int = 0) -> str:
    """The start of the line every front end shows for the damaged layer."""
    return f"layer {layer} ({image.layers[layer].digest[:19]}) of "


def listed(out: str) -> list[str]:
    """Paths of ``ls`` text lines (the last word; headings start with #)."""
    return [line.rsplit(" ", 1)[-1] for line in out.splitlines() if not line.startswith("#")]


def assert_problem(problem: dict, image, host: str, layer: int = 0) -> None:
    assert problem["reference"] == image.ref(host) and problem["layer"] == layer
    assert problem["digest"] == image.layers[layer].digest
    assert problem["entries"] == READ_BEFORE_DAMAGE and problem["offset"] > 0
    message = problem["message"]
    assert ERROR in message and f"after {problem['offset']:,} bytes" in message


# -- the CLI -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_ls_prints_every_entry_read_then_the_error(
    capsys, layerpeek_env, plain_registry, damaged, kind
):
    image = getattr(damaged, kind)
    status, out, err = run(capsys, "ls", image.ref(plain_registry.host))
    assert status == 3
    assert listed(out) == FILES
    [line] = [line for line in err if "error" in line]
    assert line.startswith("layerpeek: error: " + problem_line(image))
    assert ERROR in line and READ in line


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_ls_json_prints_the_entries_and_the_error_on_stderr(
    capsys, layerpeek_env, plain_registry, damaged, kind
):
    image = getattr(damaged, kind)
    status, out, err = run(capsys, "ls", image.ref(plain_registry.host), "--json")
    assert status == 3
    assert [json.loads(line)["path"] for line in out.splitlines()] == FILES
    assert [line for line in err if line.startswith("layerpeek: error: ")] == [
        line for line in err if ERROR in line
    ]
    assert len([line for line in err if ERROR in line]) == 1


def test_ls_limit_short_of_the_damage_is_a_whole_answer(
    capsys, layerpeek_env, plain_registry, damaged
):
    ref = damaged.gzip.ref(plain_registry.host)
    status, out, err = run(capsys, "ls", ref, "--json", "--limit", "5")
    assert status == 0 and not [line for line in err if "error" in line]
    assert [json.loads(line)["path"] for line in out.splitlines()] == FILES[:5]


@pytest.mark.parametrize(
    ("name", "read", "error"),
    [
        ("truncated_gzip", ["a.txt", "random.bin"], "gzip stream ends early"),
        ("corrupt_zstd", [], "corrupt zstd data"),
        ("short_entry", ["before.txt", "short.bin"], "tar stream ends inside the data"),
    ],
)
def test_ls_of_the_broken_catalog_layers_prints_what_they_hold_before_the_break(
    capsys, layerpeek_env, plain_registry, catalog, name, read, error
):
    image = getattr(catalog.bad, name)
    status, out, err = run(capsys, "ls", image.ref(plain_registry.host), "--json")
    assert status == 3
    assert [json.loads(line)["path"] for line in out.splitlines()] == read
    assert err[-1].startswith("layerpeek: error: " + problem_line(image)) and error in err[-1]
    assert f"({len(read)} entr" in err[-1]


def test_ls_of_every_layer_goes_on_past_the_damaged_one(
    capsys, layerpeek_env, plain_registry, damaged
):
    image = damaged.two_layers
    status, out, err = run(capsys, "ls", image.ref(plain_registry.host), "--json")
    assert status == 3
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(e["layer"], e["path"]) for e in lines] == [
        *((0, f) for f in FILES),
        *((1, p) for p in UPPER),
    ]
    assert err[-1].startswith("layerpeek: error: " + problem_line(image, 0))


def test_ls_merged_answers_from_the_entries_read(capsys, layerpeek_env, plain_registry, damaged):
    image = damaged.two_layers
    status, out, err = run(capsys, "ls", image.ref(plain_registry.host), "--merged", "--json")
    assert status == 3
    merged = [json.loads(line) for line in out.splitlines()]
    assert [e["path"] for e in merged] == MERGED
    assert {e["path"]: e["layer"] for e in merged}["f10.txt"] == 1
    assert err[-1].startswith("layerpeek: error: " + problem_line(image)) and ERROR in err[-1]


def test_find_trace_removed_and_triage_answer_marked_incomplete(
    capsys, layerpeek_env, plain_registry, damaged
):
    image = damaged.two_layers
    ref = image.ref(plain_registry.host)
    answers_ = {}
    for name, argv in {
        "find": ["find", ref, "f1*.txt"],
        "trace": ["trace", ref, "f05.txt"],
        "removed": ["removed", ref],
        "triage": ["triage", ref],
        "packages": ["packages", ref],
    }.items():
        status, out, err = run(capsys, *argv, "--json")
        assert status == 3, name
        assert err[-1].startswith("layerpeek: error: " + problem_line(image)), name
        answers_[name] = json.loads(out)
    for answer in answers_.values():
        assert answer["complete"] is False
        [problem] = answer["problems"]
        assert_problem(problem, image, plain_registry.host)
    found = [(m["layer"], m["path"]) for m in answers_["find"]["matches"]]
    assert found == [(0, f"f{i}.txt") for i in range(10, 20)] + [(1, "f10.txt")]
    trace = answers_["trace"]
    assert not trace["exists"] and trace["readable_layers"] == [0]
    assert [(e["layer"], e["action"]) for e in trace["events"]] == [(0, "added"), (1, "deleted")]
    removed = {(f["path"], f["action"]) for f in answers_["removed"]["files"]}
    assert removed == {("f05.txt", "deleted"), ("f10.txt", "changed")}
    triage = answers_["triage"]
    assert triage["os"]["id"] == "damaged"
    assert triage["removed_size"] == 6 * 3 + 11 * 3


def test_triage_names_a_key_its_damaged_layer_cannot_serve_by_name(
    capsys, layerpeek_env, plain_registry, damaged
):
    image = damaged.key
    status, out, err = run(capsys, "triage", image.ref(plain_registry.host), "--json")
    assert status == 3
    triage = json.loads(out)
    [finding] = [f for f in triage["findings"] if f["kind"] == "secret"]
    assert (finding["path"], finding["layer"], finding["detail"]) == (
        "root/.ssh/id_rsa",
        0,
        "SSH private key",
    )
    assert triage["complete"] is False
    assert err[-1].startswith("layerpeek: error: " + problem_line(image))


def test_text_answers_are_printed_before_the_error(capsys, layerpeek_env, plain_registry, damaged):
    image = damaged.two_layers
    status, out, err = run(capsys, "removed", image.ref(plain_registry.host))
    assert status == 3
    assert "f05.txt" in out and "2 files" in out
    assert err[-1].startswith("layerpeek: error: " + problem_line(image))
    assert err[-1].endswith("what was read before it is shown")


# -- the service's pages (what the bot's buttons page through) ------------------------------


@pytest.mark.parametrize("limit", [20, 39, 40, 44, 100])
async def test_list_page_names_the_damage_on_the_one_page_that_holds_it(
    layerpeek_env, plain_registry, damaged, limit
):
    async with RegistryClient(load_settings(Settings)) as client, Layerpeek(client) as peek:
        image = await peek.resolve(damaged.two_layers.ref(plain_registry.host))
        pages, start = [], 0
        while start is not None:
            pages.append(page := await peek.list_page(image, start=start, limit=limit))
            start = page.next_start
    listed = [(e.layer, e.path) for page in pages for e in page.entries]
    assert listed == [*((0, f) for f in FILES), *((1, p) for p in UPPER)]
    named = [i for i, page in enumerate(pages) if page.problems]
    assert named == [min(READ_BEFORE_DAMAGE // limit, len(pages) - 1)]
    [problem] = pages[named[0]].problems
    assert_problem(problem.model_dump(), damaged.two_layers, plain_registry.host)


# -- the MCP server --------------------------------------------------------------------------


@pytest.fixture
async def mcp(layerpeek_env, monkeypatch, tmp_path):
    """The SDK's own client over JSON-RPC; the operator allow-listed the local registry."""
    monkeypatch.setenv("LAYERPEEK_ALLOW_PRIVATE", "127.0.0.1")
    monkeypatch.chdir(tmp_path)
    async with Client(create_server(), mode="legacy") as client:
        yield client


async def call(client: Client, tool: str, **arguments) -> tuple[dict, list[str]]:
    """A successful call's structured content and text lines: damage is no tool error."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content, result.content[0].text.splitlines()


def assert_incomplete(answer: dict, text: list[str], image, host: str) -> None:
    assert answer["complete"] is False
    [problem] = answer["problems"]
    assert_problem(problem, image, host)
    assert text[0].startswith("INCOMPLETE: " + problem_line(image)) and ERROR in text[0]


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
async def test_list_files_answers_with_the_entries_read_and_the_problem(
    mcp, plain_registry, damaged, kind
):
    image = getattr(damaged, kind)
    host = plain_registry.host
    answer, text = await call(mcp, "list_files", reference=image.ref(host), layer=0, limit=200)
    assert [e["path"] for e in answer["entries"]] == FILES
    assert answer["next_cursor"] is None
    assert_incomplete(answer, text, image, host)


async def test_paging_a_damaged_layer_ends_at_the_damage(mcp, plain_registry, damaged):
    image, host = damaged.gzip, plain_registry.host
    pages, cursor = [], None
    while True:
        arguments = {"cursor": cursor} if cursor else {}
        answer, text = await call(
            mcp, "list_files", reference=image.ref(host), layer=0, limit=10, **arguments
        )
        pages.append((answer, text))
        if (cursor := answer["next_cursor"]) is None:
            break
    assert [[e["path"] for e in a["entries"]] for a, _ in pages] == [
        FILES[0:10],
        FILES[10:20],
        FILES[20:30],
        FILES[30:39],
    ]
    assert [(a["complete"], a["problems"]) for a, _ in pages[:-1]] == [(True, [])] * 3
    assert_incomplete(*pages[-1], image, host)


async def test_every_layer_goes_on_past_the_damage_named_once(mcp, plain_registry, damaged):
    image, host = damaged.two_layers, plain_registry.host
    first, text = await call(mcp, "list_files", reference=image.ref(host), limit=40)
    assert [(e["layer"], e["path"]) for e in first["entries"]] == [
        *((0, f) for f in FILES),
        (1, UPPER[0]),
    ]
    assert_incomplete(first, text, image, host)
    rest, _ = await call(
        mcp, "list_files", reference=image.ref(host), limit=40, cursor=first["next_cursor"]
    )
    assert [(e["layer"], e["path"]) for e in rest["entries"]] == [(1, p) for p in UPPER[1:]]
    assert rest["complete"] is True and rest["problems"] == []


async def test_merged_tools_answer_from_what_was_read(mcp, plain_registry, damaged):
    image, host = damaged.two_layers, plain_registry.host
    ref = image.ref(host)
    merged, text = await call(mcp, "list_files", reference=ref, merged=True, limit=200)
    assert [e["path"] for e in merged["entries"]] == MERGED
    assert_incomplete(merged, text, image, host)
    found, text = await call(mcp, "find_files", reference=ref, pattern="f1*.txt")
    assert [(m["layer"], m["path"]) for m in found["find"]["matches"]] == [
        *((0, f"f{i}.txt") for i in range(10, 20)),
        (1, "f10.txt"),
    ]
    assert_incomplete(found["find"], text, image, host)
    trace, text = await call(mcp, "trace_path", reference=ref, path="/f05.txt")
    assert [(e["layer"], e["action"]) for e in trace["events"]] == [(0, "added"), (1, "deleted")]
    assert_incomplete(trace, text, image, host)
    removed, text = await call(mcp, "removed_files", reference=ref)
    assert {f["path"] for f in removed["removed"]["files"]} == {"f05.txt", "f10.txt"}
    assert_incomplete(removed["removed"], text, image, host)
    triage, text = await call(mcp, "triage_image", reference=ref)
    assert triage["triage"]["os"]["id"] == "damaged"
    assert_incomplete(triage["triage"], text, image, host)
    diff, text = await call(mcp, "diff_images", a=damaged.gzip.ref(host), b=ref)
    added = {e["path"] for e in diff["diff"]["added"]}
    assert added == {"etc", "etc/os-release", "new.txt"}
    assert {e["path"] for e in diff["diff"]["removed"]} == {"f05.txt"}
    assert diff["diff"]["complete"] is False
    assert [(p["reference"], p["layer"]) for p in diff["diff"]["problems"]] == [
        (damaged.gzip.ref(host), 0),
        (ref, 0),
    ]
    assert text[0].startswith("INCOMPLETE: " + problem_line(damaged.gzip))
    assert text[1].startswith("INCOMPLETE: " + problem_line(image))


# -- the Discord bot ---------------------------------------------------------------------------


@pytest.fixture
def bot_settings(layerpeek_env, monkeypatch) -> BotSettings:
    allow_local_registry(monkeypatch, layerpeek_env)
    return BotSettings(page_size=10)


def code_lines(description: str) -> list[str]:
    """The lines of the code block in an embed's description."""
    return description.split("```\n", 1)[1].rsplit("\n```", 1)[0].splitlines()


def warning_of(description: str) -> str:
    """The text before the code block: the warning lines, as Discord shows them."""
    return shown(description.split("```", 1)[0])


async def turn(bot, key: str, scope: Scope, page: int, nav: str) -> dict:
    click = FakeInteraction(client=bot, type=discord.InteractionType.component)
    await bot.turn_page(click, key, scope, page, nav)
    return sent_payload(click.named("edit_original")[-1])


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
async def test_peek_pages_show_the_entries_and_warn_at_the_damage(
    bot_settings, plain_registry, damaged, kind
):
    image = getattr(damaged, kind)
    async with running_bot(bot_settings) as bot:
        done = await invoke(bot, commands.peek, image=image.ref(plain_registry.host), layer=0)
        first = sent_payload(done.named("edit_original")[-1])
        key = first["components"][0]["components"][0]["custom_id"].split(":")[1]
        last = await turn(bot, key, Scope(layer=0), 0, "l")
        middle = await turn(bot, key, Scope(layer=0), 2, "n")
    for message in (first, last, middle):
        assert_within_limits(message)
    listing = first["embeds"][1]
    assert [line.rsplit(" ", 1)[-1] for line in code_lines(listing["description"])] == FILES[:10]
    assert warning_of(listing["description"]) == ""
    listing = last["embeds"][1]
    assert listing["title"].endswith("page 4 of 4")
    assert [line.rsplit(" ", 1)[-1] for line in code_lines(listing["description"])] == FILES[30:]
    warning = warning_of(listing["description"])
    assert warning.startswith(WARNING + problem_line(image)) and ERROR in warning
    listing = middle["embeds"][1]
    assert [line.rsplit(" ", 1)[-1] for line in code_lines(listing["description"])] == FILES[20:30]
    assert warning_of(listing["description"]) == ""


async def test_merged_bot_answers_warn_and_answer_from_what_was_read(
    bot_settings, plain_registry, damaged
):
    image, host = damaged.two_layers, plain_registry.host
    ref = image.ref(host)
    async with running_bot(bot_settings) as bot:
        peeked = await invoke(bot, commands.peek, image=ref)
        first = sent_payload(peeked.named("edit_original")[-1])
        key = first["components"][0]["components"][0]["custom_id"].split(":")[1]
        merged = await turn(bot, key, Scope(merged=True), 0, "f")
    # Every match and path on one page: find and diff page as a listing does.
    async with running_bot(bot_settings.model_copy(update={"page_size": 50})) as bot:
        found = await invoke(bot, commands.find, image=ref, pattern="f1*.txt")
        triage = await invoke(bot, commands.triage, image=ref)
        diff = await invoke(bot, commands.diff, base=damaged.gzip.ref(host), target=ref)
    answers_ = [sent_payload(d.named("edit_original")[-1]) for d in (found, triage, diff)]
    for message in (merged, *answers_):
        assert_within_limits(message)
    listing = merged["embeds"][1]
    shown_paths = [line.rsplit(" ", 1)[-1] for line in code_lines(listing["description"])]
    assert shown_paths == MERGED[:10]
    assert warning_of(listing["description"]).startswith(WARNING + problem_line(image))
    found_, triage_, diff_ = (m["embeds"][0]["description"] for m in answers_)
    assert shown(found_).startswith(WARNING + problem_line(image))
    matches = [(line[1], line.split("  ")[-1].split(" (")[0]) for line in code_lines(found_)]
    assert matches == [*(("0", f"f{i}.txt") for i in range(10, 20)), ("1", "f10.txt")]
    assert shown(triage_).startswith(WARNING + problem_line(image))
    assert "**51 B** shipped in deleted or overwritten files" in triage_
    warned = shown(diff_).splitlines()
    assert warned[0].startswith(WARNING + problem_line(damaged.gzip))
    assert warned[1].startswith(WARNING + problem_line(image))
    assert "+ new.txt\n- f05.txt\n" in diff_


def hostile_problems(count: int) -> list[LayerProblem]:
    """Problems as long and as hostile as an image can make them (a name in the message)."""
    message = "bad header of " + "`@everyone **x** <@1>\n" * 200
    return [
        LayerProblem(
            reference="r/" + "x" * 400,
            layer=i,
            digest=f"sha256:{i:064x}",
            offset=10**12,
            entries=2_000_000,
            message=message,
        )
        for i in range(count)
    ]


@pytest.mark.parametrize("count", [1, 3, 7])
def test_bot_warnings_stay_within_every_limit_and_are_inert(count):
    problems = hostile_problems(count)
    big = report(500, step="RUN " + "apt-get install -y something " * 20)
    page = EntryPage(entries=entries(50), next_start=None, complete=True, problems=problems)
    message = payload(
        Reply(
            embeds=[
                render.summary_embed(big, chart=True),
                render.listing_embed(page, "all layers", 12345, 12345, True),
            ],
            view=peek_view(KEY, big.layers, Scope(), 12345, False, {}),
            files={render.CHART_NAME: b"png"},
        )
    )
    assert_within_limits(message)
    listing = message["embeds"][1]["description"]
    warned = listing.split("```", 1)[0]
    assert warned.count("⚠️") == min(count, 3) and "\n```" in listing
    assert ("more damaged layers" in warned) == (count > 3)
    assert live_markdown(warned).count("@") == 0 and "**x**" not in warned
    triage = TriageReport.model_validate(
        {
            **report_fields(),
            "findings": [],
            "largest": entries(100),
            "complete": False,
            "problems": problems,
        }
    )
    assert_within_limits(payload(Reply(embeds=[render.triage_embed(triage)])))


def report_fields() -> dict:
    return {
        "reference": "r/" + "x" * 400,
        "digest": "sha256:" + "a" * 64,
        "platform": "linux/amd64",
        "user": "root",
        "runs_as_root": True,
        "os": None,
        "removed_size": 0,
    }
