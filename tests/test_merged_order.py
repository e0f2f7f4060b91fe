"""The merged listing's order and its implicit directories: paths sorted component by
component (a directory's subtree right after it), no root entry, and no time for a directory
no layer lists, checked against the tree ``umoci unpack`` writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fixtures.toc_images import NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK, TOC_NAME
from fixtures.tree_images import TreeImage, push_tree_image
from fixtures.umoci import merged_tree, unpack_with_umoci, unpacked_tree
from layerpeek.cli.main import main
from layerpeek.core.fs.overlay import merge
from layerpeek.core.layers.entry import TarEntry
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.service import Layerpeek

IMPLICIT = {"opt", "srv", "usr", "usr/share"}
# eStargz's own entries: plain tar entries umoci writes, which a listing hides as a TOC-aware
# snapshotter does.
TOC_ENTRIES = {TOC_NAME, PREFETCH_LANDMARK, NO_PREFETCH_LANDMARK}


def e(path: str, type: str = "file") -> TarEntry:
    return TarEntry(path, type, 1, 0o755, 0, 0, 1_700_000_000, "")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tree(plain_registry) -> TreeImage:
    return push_tree_image(plain_registry.url)


@pytest.fixture
async def peek(layerpeek_env):
    async with RegistryClient() as client:
        yield Layerpeek(client)


def walked(root: Path, above: str = "") -> list[str]:
    """The unpacked tree depth first, each directory's names sorted: path order by component."""
    paths = []
    for name in sorted(set(os.listdir(root)) - (TOC_ENTRIES if not above else set())):
        path = f"{above}{name}"
        paths.append(path)
        if (root / name).is_dir() and not (root / name).is_symlink():
            paths += walked(root / name, f"{path}/")
    return paths


def test_a_subtree_follows_its_directory_before_names_that_sort_between():
    overlay = merge(
        [
            [e("usr/share/doc-base/entry"), e("usr/share/doc.txt"), e("usr/share/doc/README")],
            [e("usr/share/doc", "dir"), e("usr/share/doc-base", "dir")],
        ]
    )
    assert [n.path for n in overlay.listing()] == [
        "usr",
        "usr/share",
        "usr/share/doc",
        "usr/share/doc/README",
        "usr/share/doc-base",
        "usr/share/doc-base/entry",
        "usr/share/doc.txt",
    ]


def test_an_implicit_directory_has_no_time():
    overlay = merge([[e("a/b/file")], [e("a", "dir")]])
    times = {n.path: n.mtime for n in overlay.listing()}
    assert times == {"a": 1_700_000_000, "a/b": None, "a/b/file": 1_700_000_000}


@pytest.mark.anyio
async def test_merged_order_is_the_order_of_umocis_tree_walked_by_component(
    peek, plain_registry, tree, tmp_path
):
    ref = tree.ref(plain_registry.host)
    listing = await peek.merged_listing(await peek.resolve(ref))
    rootfs = unpack_with_umoci(ref, tmp_path)
    assert [entry.path for entry in listing.entries] == walked(rootfs)
    unpacked = {k: v for k, v in unpacked_tree(rootfs).items() if k not in TOC_ENTRIES}
    assert merged_tree(listing) == unpacked
    assert {entry.path for entry in listing.entries if entry.mtime is None} == IMPLICIT


def test_ls_merged_shows_no_root_entry_and_no_1970_dates(
    capsys, layerpeek_env, plain_registry, tree
):
    status = main(["ls", tree.ref(plain_registry.host), "--merged"])
    out = capsys.readouterr().out
    assert status == 0
    assert "1970-01-01" not in out
    names = [line.split()[-1] for line in out.splitlines()]
    assert "./" not in names and "." not in names
    implicit = [
        line for line in out.splitlines() if line.split()[-1] in {f"{p}/" for p in IMPLICIT}
    ]
    assert len(implicit) == len(IMPLICIT) and all("  -  " in line for line in implicit)
