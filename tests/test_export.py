"""``layerpeek export``: the merged filesystem as a tar in containerd's order, checked against
``umoci unpack`` of the same image (paths, types, modes, sizes, bytes, shared inodes), and one
directory of an eStargz layer exported by range, counted at a proxy in front of the
registry."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from fixtures.images import normalize
from fixtures.toc_images import NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK, TOC_NAME
from fixtures.tools import require_tool
from fixtures.tree_images import TreeImage, base_members, push_tree_image, top_members
from fixtures.umoci import unpack_with_umoci, unpacked_tree
from layerpeek.cli.main import main
from layerpeek.core.export import tar_stream
from layerpeek.core.fs.export import extraction_order, members
from layerpeek.core.fs.overlay import merge
from layerpeek.core.layers.entry import TarEntry
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.service import Layerpeek

TOC_ENTRIES = {TOC_NAME, PREFETCH_LANDMARK, NO_PREFETCH_LANDMARK}


@pytest.fixture(scope="module")
def tree(plain_registry) -> TreeImage:
    return push_tree_image(plain_registry.url)


def export(capsysbinary, *argv: str) -> tuple[int, bytes, str]:
    status = main(["export", *argv])
    out, err = capsysbinary.readouterr()
    return status, out, err.decode()


def extract(archive: bytes, into: Path) -> Path:
    """GNU tar extracts the archive, as a user would check it."""
    into.mkdir()
    tar = require_tool("tar")
    subprocess.run([tar, "-x", "-p", "-C", str(into)], input=archive, check=True)
    return into


def contents(root: Path) -> dict[str, bytes]:
    """Every regular file's bytes, by path."""
    found = {}
    for current, _, files in os.walk(root):
        for name in files:
            full = Path(current, name)
            if not full.is_symlink():
                found[full.relative_to(root).as_posix()] = full.read_bytes()
    return found


def inodes(root: Path) -> set[frozenset[str]]:
    """The groups of paths sharing an inode (hard links), two or more to a group."""
    groups: dict[int, set[str]] = {}
    for path in contents(root):
        groups.setdefault((root / path).stat().st_ino, set()).add(path)
    return {frozenset(group) for group in groups.values() if len(group) > 1}


def without_toc(tree: dict) -> dict:
    return {path: value for path, value in tree.items() if path not in TOC_ENTRIES}


def test_export_unpacks_to_what_umoci_unpacks(
    capsysbinary, layerpeek_env, plain_registry, tree, tmp_path
):
    ref = tree.ref(plain_registry.host)
    status, archive, err = export(capsysbinary, ref)
    assert (status, err) == (0, "")
    exported = extract(archive, tmp_path / "exported")
    rootfs = unpack_with_umoci(ref, tmp_path)
    assert unpacked_tree(exported) == without_toc(unpacked_tree(rootfs))
    assert contents(exported) == without_toc(contents(rootfs))
    assert (
        inodes(exported)
        == inodes(rootfs)
        == {
            frozenset({"bin/sh", "bin/ash"}),
            frozenset({"small/one.txt", "small/link"}),
        }
    )


def containerd_order(listing: dict[str, dict]) -> list[str]:
    """The merged paths in the order containerd creates them applying the fixture's layers:
    layer by layer in tar order, each parent no layer lists right before its first entry."""
    order: list[str] = []
    for index, layer in enumerate((base_members(), top_members())):
        for member in layer:
            path = normalize(member.path)
            if path not in listing or listing[path]["layer"] != index or path in order:
                continue
            parts = path.split("/")
            parents = ["/".join(parts[:n]) for n in range(1, len(parts))]
            order += [p for p in parents if listing[p]["mtime"] is None and p not in order]
            order.append(path)
    return order


def test_export_order_is_containerds_with_links_after_their_file(
    capsysbinary, layerpeek_env, plain_registry, tree
):
    ref = tree.ref(plain_registry.host)
    _, archive, _ = export(capsysbinary, ref)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = tar.getmembers()
    main(["ls", ref, "--merged", "--json"])
    lines = capsysbinary.readouterr().out.decode().splitlines()
    listing = {entry["path"]: entry for entry in map(json.loads, lines)}
    assert [m.name for m in members] == containerd_order(listing)
    assert sorted(m.name for m in members) == sorted(listing)
    kinds = {m.name: (m.type, m.linkname) for m in members}
    assert kinds["bin/sh"] == (tarfile.REGTYPE, "")
    assert kinds["bin/ash"] == (tarfile.LNKTYPE, "bin/sh")
    assert not any(".wh." in m.name for m in members)


def test_export_of_one_directory_of_an_indexed_layer_reads_only_its_ranges(
    capsysbinary, layerpeek_env, fault_proxy, tree, tmp_path
):
    ref = f"{fault_proxy.host}/{tree.repo}:{tree.tag}"
    target = tmp_path / "small.tar"
    status, out, err = export(capsysbinary, ref, "small", "-o", str(target))
    assert (status, out, err) == (0, b"", "")
    with tarfile.open(target) as tar:
        names = tar.getnames()
        one = tar.extractfile("small/one.txt").read()
        two = tar.extractfile("small/sub/two.txt").read()
    assert names == ["small", "small/one.txt", "small/sub", "small/sub/two.txt", "small/link"]
    assert (one, two) == (
        tree.top.layer.files["small/one.txt"],
        tree.top.layer.files["small/sub/two.txt"],
    )
    top = tree.top.layer
    sent = [r for r in fault_proxy.requests if top.digest in r.path]
    assert sent and all(r.status == 206 for r in sent)
    assert sum(r.body_bytes for r in sent) < top.size // 20


def test_export_of_a_missing_path_is_one_line(
    capsysbinary, layerpeek_env, plain_registry, tree, tmp_path
):
    target = tmp_path / "x.tar"
    status, out, err = export(
        capsysbinary, tree.ref(plain_registry.host), "etc/secret", "-o", str(target)
    )
    assert (status, out) == (3, b"") and err.count("\n") == 1
    assert "etc/secret is not in the merged filesystem" in err
    assert not target.exists()


def test_a_link_whose_file_was_replaced_carries_the_bytes_it_was_made_with():
    def e(path: str, type: str = "file", size: int = 1, link: str = "") -> TarEntry:
        return TarEntry(path, type, size, 0o644, 0, 0, 0, link)  # type: ignore[arg-type]

    overlay = merge(
        [[e("a"), e("b", "hardlink", 0, "a"), e("c", "hardlink", 0, "a")], [e("a", size=2)]]
    )
    planned = {m.node.path: m for m in members(extraction_order(overlay.listing()))}
    assert [m.node.path for m in members(extraction_order(overlay.listing()))] == ["b", "c", "a"]
    assert (planned["b"].data.layer, planned["b"].size, planned["b"].linked_to) == (0, 1, "")
    assert (planned["c"].data, planned["c"].linked_to) == (None, "b")
    assert (planned["a"].data.layer, planned["a"].size) == (1, 2)


@pytest.fixture
async def peek(layerpeek_env):
    async with RegistryClient() as client, Layerpeek(client) as peek:
        yield peek


@pytest.mark.anyio
async def test_many_files_of_a_plain_gzip_layer_come_from_one_pass(peek, fault_proxy, tree):
    image = await peek.resolve(f"{fault_proxy.host}/{tree.repo}:{tree.tag}")
    await peek.merged(image)

    async def exported(stream_after: int) -> tuple[bytes, int]:
        fault_proxy.reset()
        chunks = [c async for c in tar_stream(peek, image, stream_after=stream_after)]
        base = [r for r in fault_proxy.requests if tree.base.digest in r.path]
        return b"".join(chunks), len(base)

    by_file, requests_by_file = await exported(stream_after=10**9)
    one_pass, requests_one_pass = await exported(stream_after=1)
    assert one_pass == by_file
    assert (requests_by_file, requests_one_pass) == (4, 1)  # bin/sh and three docs


def test_names_no_extraction_may_take_are_left_out_of_an_export(
    capsysbinary, layerpeek_env, plain_registry, fs_images
):
    """A layer may name ``../../etc/evil`` or ``x/../y``: the merged view lists them as they
    are, but an archive holding them would write outside, or elsewhere than, the directory a
    user extracts it into."""
    ref = fs_images.hostile.ref(plain_registry.host)
    status, out, _ = export(capsysbinary, ref)
    assert status == 0
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        names = tar.getnames()
    assert names and "a" in names
    assert not [n for n in names if n.startswith("/") or ".." in n.split("/") or "//" in n]
    assert "dangling" not in names  # a hard link to a name no layer holds
