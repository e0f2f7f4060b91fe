"""One merge per image, kept: concurrent merged calls and every page of a merged listing
share one build of the merged view, a caller cancelled during the build leaves the others
their answer, the kept views are bounded, and layer pages start at their position.

Work is counted where it is done: ``Overlay.apply`` runs once per layer of each build (a
wrapper around the real method counts its calls), and ``EntryInfo.of`` once per entry model
made."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import replace

import anyio
import pytest
from anyio import wait_all_tasks_blocked
from mcp import Client

from fixtures.images import Member, Pusher, image_config, make_layer
from layerpeek.core.errors import LayerError
from layerpeek.core.fs.find import FindSpec
from layerpeek.core.fs.overlay import Overlay
from layerpeek.core.models import EntryInfo
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.service import Layerpeek
from layerpeek.server.app import create_server

REPO = "test/merged-kept"
FILES = 400


def lower(seed: int) -> list[Member]:
    """A base layer of ``FILES`` files in 20 directories; ``seed`` makes each image its own."""
    return [
        Member(f"srv/d{i % 20:02d}/f{i:04d}.txt", data=f"{seed}:{i}".encode()) for i in range(FILES)
    ]


UPPER = [
    Member("srv/d00/f0000.txt", data=b"changed"),
    Member("srv/d01/.wh.f0001.txt"),  # a whiteout: deletes the lower f0001.txt
    Member("etc/app.conf", data=b"x=1"),
]


@pytest.fixture(scope="module")
def images(plain_registry) -> dict[str, object]:
    """Two-layer images tagged ``v0`` .. ``v5`` (distinct bases), and ``cut``: a base layer cut
    short under a whole upper layer."""
    upper = make_layer(UPPER)
    with Pusher(plain_registry.url) as pusher:
        for seed in range(6):
            base = make_layer(lower(seed))
            blobs = [(base.blob, base.media_type), (upper.blob, upper.media_type)]
            pusher.image(REPO, [f"v{seed}"], blobs, image_config([base, upper]))
        base = make_layer(lower(99))
        cut = replace(base, blob=base.blob[: len(base.blob) * 2 // 3])
        blobs = [(cut.blob, cut.media_type), (upper.blob, upper.media_type)]
        pusher.image(REPO, ["cut"], blobs, image_config([cut, upper]))
    return {"host": plain_registry.host}


@pytest.fixture
def builds(monkeypatch) -> Counter:
    """Calls of ``Overlay.apply`` (one per layer of a build of a merged view), by layer."""
    counts: Counter = Counter()
    real = Overlay.apply

    def apply(self: Overlay, layer: int, entries) -> None:
        counts[layer] += 1
        real(self, layer, entries)

    monkeypatch.setattr(Overlay, "apply", apply)
    return counts


@pytest.fixture
def models(monkeypatch) -> list[int]:
    """One item per ``EntryInfo.of`` call (a listing's model of one entry)."""
    made: list[int] = []
    real = EntryInfo.of

    def of(cls, layer: int, entry) -> EntryInfo:
        made.append(layer)
        return real(layer, entry)

    monkeypatch.setattr(EntryInfo, "of", classmethod(of))
    return made


def ref(images, tag: str) -> str:
    return f"{images['host']}/{REPO}:{tag}"


async def test_concurrent_merged_calls_share_one_build(layerpeek_env, images, builds):
    async with RegistryClient() as client, Layerpeek(client) as peek:
        image = await peek.resolve(ref(images, "v0"))
        calls = [
            lambda: peek.merged_listing(image, 0, 50),
            lambda: peek.merged_listing(image),
            lambda: peek.trace(image, "srv/d00/f0000.txt"),
            lambda: peek.removed_files(image),
            lambda: peek.find(image, FindSpec.parse("*.conf")),
            lambda: peek.triage(image),
        ] * 2
        answers: list = [None] * len(calls)

        async def one(i: int) -> None:
            answers[i] = await calls[i]()

        async with anyio.create_task_group() as group:
            for i in range(len(calls)):
                group.start_soon(one, i)
    assert builds == {0: 1, 1: 1}
    half = len(calls) // 2
    assert answers[:half] == answers[half:]
    assert [m.path for m in answers[4].matches] == ["etc/app.conf"]
    assert answers[1].total == FILES - 1 + 1 + 2 + 20  # files, dirs srv, etc, d00-d19


async def test_merged_pages_are_slices_of_one_build(layerpeek_env, images, builds, models):
    async with RegistryClient() as client, Layerpeek(client) as peek:
        image = await peek.resolve(ref(images, "v1"))
        paths, start, pages = [], 0, 0
        while start is not None:
            before = len(models)
            page = await peek.merged_listing(image, start, 37)
            assert len(models) - before == len(page.entries)  # models of the page alone
            paths += [e.path for e in page.entries]
            start, pages = page.next_start, pages + 1
        whole = await peek.merged_listing(image)
    assert builds == {0: 1, 1: 1}
    assert pages == -(-whole.total // 37) and pages > 10
    assert paths == [e.path for e in whole.entries]
    assert paths == sorted(paths) and len(set(paths)) == len(paths)


async def test_a_caller_cancelled_during_the_build_leaves_the_others_their_answer(
    layerpeek_env, images, monkeypatch
):
    """The first caller's build is held inside the overlay rules (a worker thread) until
    it is cancelled; the two callers waiting on it build once more, together."""
    entered, release = threading.Event(), threading.Event()
    applied: list[int] = []
    real = Overlay.apply

    def apply(self: Overlay, layer: int, entries) -> None:
        applied.append(layer)
        if len(applied) == 1:
            entered.set()
            release.wait(30)
        real(self, layer, entries)

    monkeypatch.setattr(Overlay, "apply", apply)
    async with RegistryClient() as client, Layerpeek(client) as peek:
        image = await peek.resolve(ref(images, "v2"))
        expected = sorted({m.entry.path for m in lower(2)} | {"etc/app.conf"})
        answers: list[list[str]] = []

        async def other() -> None:
            listing = await peek.merged_listing(image)
            answers.append([e.path for e in listing.entries if e.type == "file"])

        leader = anyio.CancelScope()

        async def cancelled() -> None:
            with leader:
                await peek.merged_listing(image)

        async with anyio.create_task_group() as group:
            group.start_soon(cancelled)
            await anyio.to_thread.run_sync(entered.wait, 30)
            group.start_soon(other)
            group.start_soon(other)
            await wait_all_tasks_blocked()  # both wait on the first caller's build
            leader.cancel()
            release.set()
    assert leader.cancelled_caught
    expected.remove("srv/d01/f0001.txt")
    assert answers == [expected, expected]
    assert applied == [0, 0, 1]  # the cancelled build's first layer, then one build for both


async def test_kept_views_are_bounded_oldest_out_first(layerpeek_env, images, builds):
    from layerpeek.core.fs import kept as merged_views

    count = merged_views.KEPT_VIEWS
    async with RegistryClient() as client, Layerpeek(client) as peek:
        resolved = [await peek.resolve(ref(images, f"v{i}")) for i in range(count + 1)]
        for image in resolved:
            await peek.merged_listing(image, 0, 10)
        assert builds[0] == count + 1
        for image in resolved[1:]:  # the newest ``count``: kept, nothing built again
            await peek.merged_listing(image, 0, 10)
        assert builds[0] == count + 1
        await peek.merged_listing(resolved[0], 0, 10)  # the oldest was let go: built again
        assert builds[0] == count + 2


async def test_kept_views_are_bounded_by_their_paths(layerpeek_env, images, builds, monkeypatch):
    """Past ``KEPT_NODES`` paths in all only the most recent view is kept."""
    from layerpeek.core.fs import kept as merged_views

    monkeypatch.setattr(merged_views, "KEPT_NODES", FILES + FILES // 2)
    async with RegistryClient() as client, Layerpeek(client) as peek:
        a, b = [await peek.resolve(ref(images, f"v{i}")) for i in (3, 4)]
        for image in (a, b, b, a, a):
            await peek.merged_listing(image, 0, 10)
    assert builds[0] == 3  # a, b, then a again (b's view pushed it out); b and a kept


async def test_a_view_from_a_damaged_layer_is_kept_with_its_damage(layerpeek_env, images, builds):
    async with RegistryClient() as client, Layerpeek(client) as peek:
        image = await peek.resolve(ref(images, "cut"))
        first = await peek.merged_listing(image, 0, 10)
        second = await peek.merged_listing(image, 10, 10)
        [problem] = first.problems
        assert second.problems == first.problems and problem.layer == 0
        assert first.complete is False and second.complete is False
        with pytest.raises(LayerError):
            await peek.locate(image, "etc/app.conf")
    assert builds == {0: 1, 1: 1}


async def test_mcp_merged_pages_with_a_filter_are_slices_of_one_build(
    layerpeek_env, images, builds, monkeypatch, tmp_path
):
    monkeypatch.setenv("LAYERPEEK_ALLOW_PRIVATE", "127.0.0.1")
    monkeypatch.chdir(tmp_path)
    reference = ref(images, "v5")
    arguments = {"reference": reference, "merged": True, "glob": "srv/d0*/*.txt", "limit": 30}
    paths, cursor, pages = [], None, 0
    async with Client(create_server()) as client:
        while pages == 0 or cursor is not None:
            result = await client.call_tool("list_files", {**arguments, "cursor": cursor})
            assert not result.is_error, result.content[0].text
            paths += [e["path"] for e in result.structured_content["entries"]]
            cursor, pages = result.structured_content["next_cursor"], pages + 1
    expected = sorted(
        m.entry.path for m in lower(5) if m.entry.path.startswith("srv/d0") and m.type == "file"
    )
    expected.remove("srv/d01/f0001.txt")
    assert paths == expected and pages == -(-len(expected) // 30)
    assert builds == {0: 1, 1: 1}


async def test_a_layer_page_deep_in_a_listing_models_only_its_own_entries(
    layerpeek_env, images, models, monkeypatch, tmp_path
):
    monkeypatch.setenv("LAYERPEEK_ALLOW_PRIVATE", "127.0.0.1")
    monkeypatch.chdir(tmp_path)
    arguments = {"reference": ref(images, "v0"), "layer": 0, "limit": 50}
    paths, cursor, made = [], None, []
    async with Client(create_server()) as client:
        while not made or cursor is not None:
            before = len(models)
            result = await client.call_tool("list_files", {**arguments, "cursor": cursor})
            assert not result.is_error, result.content[0].text
            made.append(len(models) - before)
            paths += [e["path"] for e in result.structured_content["entries"]]
            cursor = result.structured_content["next_cursor"]
    assert paths == [m.entry.path for m in lower(0)]
    # Each page models its 50 entries and the one that did not fit (where the next starts).
    assert made == [51] * (FILES // 50 - 1) + [50]
