"""Hostile listings and hostile patterns cost what their size says, off the event loop.

A deep path has one implicit directory per level: the merged view keeps a segment per level,
not a full path, so a 64 KiB path costs kilobytes, not gigabytes. Building the merged view and
matching patterns run in worker threads, so a parallel call on the same loop goes on. User
patterns are capped and matched by a linear-time engine, so ``^(.+)+\\x00`` cannot hang.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import anyio
import pytest

from fixtures.bot import invoke, running_bot, sent_payload, tree_payload
from fixtures.catalog import ImageSpec, PushedImage, push_spec
from fixtures.fs_images import DEEP_DIR
from fixtures.images import Member, Pusher, image_config, make_layer
from fixtures.mcp import call, error
from fixtures.peak import PEAK_SOURCE
from layerpeek.bot import commands
from layerpeek.cli.main import main
from layerpeek.core.errors import LayerpeekError
from layerpeek.core.fs.find import MAX_PATTERN, FindSpec
from layerpeek.core.layers.entry import NAME_LIMIT

DEEP_LEVELS = NAME_LIMIT // 2  # "a/a/…/a": the deepest name a layer may hold, 4095 bytes
TREE_PATHS, TREE_LEVELS = 100, 2000  # 100 names of ~4 KiB, 200,000 implicit directories
HOSTILE_REGEX = r"^(.+)+\x00"  # exponential for a backtracking engine on any long path
PEAK_LIMIT = 400 << 20  # the old view of a 64 KiB name took 2.2 GB; the interpreter ~60 MB


@dataclass(frozen=True)
class BoundImages:
    deep: PushedImage  # one layer, one PAX path of 64 KiB
    tree: PushedImage  # one layer, TREE_PATHS deep paths under distinct top directories


def _image(pusher: Pusher, repo: str, members: list[Member]) -> PushedImage:
    layers = (make_layer(members, format="pax"),)
    return push_spec(pusher, ImageSpec(repo, ("latest",), layers, image_config(layers)))


@pytest.fixture(scope="module")
def bound_images(plain_registry) -> BoundImages:
    chain = "/".join(["a"] * TREE_LEVELS)
    with Pusher(plain_registry.url) as pusher:
        return BoundImages(
            deep=_image(pusher, "bounds/deep", [Member("/".join(["a"] * DEEP_LEVELS))]),
            tree=_image(
                pusher,
                "bounds/tree",
                [Member(f"b{i}/{chain}/f", data=b"x") for i in range(TREE_PATHS)],
            ),
        )


# -- memory linear in the listing ----------------------------------------------------------

PEAK_SCRIPT = (
    PEAK_SOURCE
    + """
import asyncio, sys
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.service import Layerpeek

async def main(ref: str, deepest: str) -> None:
    async with RegistryClient() as client, Layerpeek(client) as peek:
        image = await peek.resolve(ref)
        page = await peek.merged_listing(image, limit=3)
        trace = await peek.trace(image, deepest)
        print(page.total, [len(e.path) for e in page.entries], trace.exists)

asyncio.run(main(sys.argv[1], sys.argv[2]))
print(peak_kib() << 10)
"""
)


def test_the_deepest_name_merges_in_linear_memory(layerpeek_env, plain_registry, bound_images):
    """A page of the merged listing and a trace over a layer whose one name is ``a/`` as deep
    as a name may be (2048 levels; a longer one is cut and takes no part in the view), with
    the peak RSS of the process that gave them."""
    deepest = "/".join(["a"] * DEEP_LEVELS)
    run = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, bound_images.deep.ref(plain_registry.host), deepest],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    answer, peak = run.stdout.splitlines()
    assert answer == f"{DEEP_LEVELS} [1, 3, 5] True"
    assert int(peak) < PEAK_LIMIT


# -- the event loop goes on ------------------------------------------------------------------


@pytest.mark.parametrize(
    "heavy",
    ["merged listing", "find hostile regex"],
)
async def test_a_parallel_call_finishes_while_a_big_tree_is_merged(
    peek, plain_registry, bound_images, catalog, heavy
):
    """200,000 implicit directories from 100 names: the merged view, or a find matching every
    path, takes a while in worker threads, and an inspect of another image started at the
    same moment finishes first. With that work on the loop, the inspect waits."""
    image = await peek.resolve(bound_images.tree.ref(plain_registry.host))
    listed = [e async for e in peek.entries(image, whole=True)]  # the index is cached now
    assert len(listed) == TREE_PATHS
    work = {
        "merged listing": lambda: peek.merged_listing(image, limit=10),
        "find hostile regex": lambda: peek.find(
            image, FindSpec.parse(HOSTILE_REGEX, regex=True), merged=True
        ),
    }[heavy]
    finished: list[str] = []

    async def big() -> None:
        await work()
        finished.append("heavy")

    async def small() -> None:
        await peek.inspect(catalog.history.ref(plain_registry.host))
        finished.append("inspect")

    async with anyio.create_task_group() as group:
        group.start_soon(big)
        group.start_soon(small)
    assert finished == ["inspect", "heavy"]


# -- patterns ----------------------------------------------------------------------------------


async def test_a_catastrophic_regex_terminates_over_a_pushed_image(peek, plain_registry, fs_images):
    """``^(.+)+\\x00`` backtracks exponentially on the overlay image's 200-character path
    (in layer 0, deleted later: every layer is searched): a backtracking engine never
    returns. RE2 says "no match", and nested repeats that do match still match."""
    image = await peek.resolve(fs_images.overlay.ref(plain_registry.host))
    result = await peek.find(image, FindSpec.parse(HOSTILE_REGEX, regex=True), merged=False)
    assert result.total == 0 and result.matches == []
    nested = FindSpec.parse(r"^(deep/(d[0-9]+/)+)+leaf", regex=True)
    found = await peek.find(image, nested, merged=False)
    assert [(m.layer, m.path) for m in found.matches] == [(0, DEEP_DIR + "/leaf.txt")]


@pytest.mark.parametrize(
    ("pattern", "regex", "message"),
    [
        (
            "*" * (MAX_PATTERN + 1),
            False,
            f"pattern is {MAX_PATTERN + 1} characters long; the limit is {MAX_PATTERN}",
        ),
        (
            "a" * (4 << 20),
            True,
            f"pattern is {4 << 20} characters long; the limit is {MAX_PATTERN}",
        ),
        (
            r"(key)\1",
            True,
            r"regular expression '(key)\\1' uses a backreference (\1 to \9), which the "
            "linear-time matcher does not support",
        ),
        (
            r"secret(?!\.pub)",
            True,
            r"regular expression 'secret(?!\\.pub)' uses lookahead ((?= or (?!), which the "
            "linear-time matcher does not support",
        ),
        (
            r"(?<=\.ssh/)id_",
            True,
            r"regular expression '(?<=\\.ssh/)id_' uses lookbehind ((?<= or (?<!), which the "
            "linear-time matcher does not support",
        ),
    ],
    ids=["long glob", "4 MiB regex", "backreference", "lookahead", "lookbehind"],
)
def test_patterns_the_matcher_refuses_are_one_line_errors(pattern, regex, message):
    with pytest.raises(LayerpeekError) as refused:
        FindSpec.parse(pattern, regex=regex)
    assert str(refused.value) == message


def test_globs_keep_fnmatchs_meaning_within_the_length_cap():
    """Globs run on RE2 with fnmatch's meaning: ``*`` and ``?`` cross ``/``, classes,
    negation, ranges, an unclosed ``[`` taken literally, the basename rule; one character
    over the cap is refused."""
    cases = {
        "*.pem": (["a/b/c.pem", "c.pem"], ["a/b/c.pem.bak", "pem"]),
        "etc/*.conf": (["etc/a.conf", "etc/x/a.conf"], ["usr/etc/a.conf"]),
        "lib?[0-9]*": (["usr/libc6.so", "lib/5x"], ["usr/lib.so", "lib/x5"]),
        "[!a-c]x": (["dx", "p/dx", "/x"], ["ax", "bx"]),
        "a[": (["a[", "d/a["], ["a"]),
        "[]x]*": (["]", "x", "d/]y"], ["y"]),
        "*\n*": (["a\nb"], ["ab"]),
    }
    for glob, (hits, misses) in cases.items():
        spec = FindSpec.parse(glob)
        assert [p for p in hits + misses if spec.matches_path(p)] == hits, glob
    undecodable = "keys/\udcff.pem"  # a name with a byte that is not UTF-8
    assert FindSpec.parse("*.pem").matches_path(undecodable)
    assert FindSpec.parse("^keys/.\\.pem$", regex=True).matches_path(undecodable)
    longest = FindSpec.parse("*" + "?" * (MAX_PATTERN - 2) + "*")
    assert longest.matches_path("x" * (MAX_PATTERN - 2)) and not longest.matches_path("x")
    with pytest.raises(LayerpeekError):
        FindSpec.parse("*" * (MAX_PATTERN + 1))


# -- the front ends ----------------------------------------------------------------------------


def test_the_cli_refuses_a_long_pattern_in_one_line(capsys, layerpeek_env, plain_registry, catalog):
    status = main(["find", catalog.gzip.ref(plain_registry.host), "x" * (MAX_PATTERN + 1)])
    out, err = capsys.readouterr()
    assert status != 0 and out == ""
    assert err == (
        f"layerpeek: error: pattern is {MAX_PATTERN + 1} characters long; "
        f"the limit is {MAX_PATTERN}\n"
    )


async def test_the_mcp_tool_refuses_long_patterns_and_survives_hostile_ones(
    mcp, plain_registry, fs_images
):
    ref = fs_images.overlay.ref(plain_registry.host)
    text = await error(mcp, "find_files", reference=ref, pattern="?" * (MAX_PATTERN + 1))
    assert text.splitlines() == [
        f"Error executing tool find_files: pattern is {MAX_PATTERN + 1} characters long; "
        f"the limit is {MAX_PATTERN}"
    ]
    text = await error(mcp, "find_files", reference=ref, pattern=r"(a)\1", regex=True)
    assert len(text.splitlines()) == 1 and "backreference" in text
    found = await call(mcp, "find_files", reference=ref, pattern=HOSTILE_REGEX, regex=True)
    assert found["find"]["total"] == 0


def test_the_bot_tells_discord_the_longest_pattern():
    """Discord refuses a longer /find pattern before it reaches the bot."""
    find = next(c for c in tree_payload() if c["name"] == "find")
    pattern = next(o for o in find["options"] if o["name"] == "pattern")
    assert pattern["max_length"] == MAX_PATTERN


async def test_the_bot_answers_a_hostile_find(bot_settings, plain_registry, fs_images):
    ref = fs_images.overlay.ref(plain_registry.host)
    async with running_bot(bot_settings) as bot:
        hostile = await invoke(bot, commands.find, image=ref, pattern=HOSTILE_REGEX, regex=True)
        long = await invoke(bot, commands.find, image=ref, pattern="x" * (MAX_PATTERN + 1))
    assert sent_payload(hostile.named("edit_original")[0])["embeds"][0]["title"].startswith(
        "0 matches for "
    )
    reply = long.calls[-1][1]
    assert reply["ephemeral"] is True
    assert reply["content"].endswith(
        f"pattern is {MAX_PATTERN + 1} characters long; the limit is {MAX_PATTERN}"
    )
