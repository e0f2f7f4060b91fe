"""The overlay rules on plain listings: whiteouts, opaque directories, replacements, hard links,
hostile names, and each path's story."""

import json

import pytest

from fixtures.fs_images import PRIVATE_KEY, STEPS
from fixtures.umoci import merged_tree, unpack_with_umoci, unpacked_tree
from layerpeek.cli.main import main
from layerpeek.core.errors import LayerpeekError
from layerpeek.core.fs.overlay import Overlay, irregular_name, merge
from layerpeek.core.layers.entry import TarEntry


def e(path: str, type: str = "file", size: int = 1, mode: int = 0o644, link: str = "") -> TarEntry:
    return TarEntry(path, type, size, mode, 0, 0, 0, link)  # type: ignore[arg-type]


def paths(overlay: Overlay) -> list[str]:
    return [n.path for n in overlay.listing()]


def test_whiteout_deletes_the_path_and_everything_under_it():
    overlay = merge(
        [
            [e("etc", "dir"), e("etc/ssl", "dir"), e("etc/ssl/key"), e("etc/passwd")],
            [e("etc/.wh.ssl", "whiteout")],
        ]
    )
    assert paths(overlay) == ["etc", "etc/passwd"]
    assert [(r.node.path, r.action, r.layer) for r in overlay.removed] == [
        ("etc/ssl/key", "deleted", 1)
    ]


def test_whiteout_spares_the_same_layers_entry():
    overlay = merge([[e("a", size=1)], [e(".wh.a", "whiteout"), e("a", size=2)]])
    assert [(n.path, n.size, n.layer) for n in overlay.listing()] == [("a", 2, 1)]


def test_opaque_directory_hides_lower_contents_but_keeps_its_own():
    overlay = merge(
        [
            [e("opt", "dir"), e("opt/a"), e("opt/sub", "dir"), e("opt/sub/b"), e("keep")],
            [e("opt", "dir"), e("opt/c"), e("opt/.wh..wh..opq", "opaque")],
        ]
    )
    assert paths(overlay) == ["keep", "opt", "opt/c"]
    assert {r.node.path: r.action for r in overlay.removed} == {
        "opt/a": "hidden",
        "opt/sub/b": "hidden",
    }


def test_file_replaces_a_directory_and_its_subtree():
    overlay = merge([[e("d", "dir"), e("d/x"), e("d/y", "dir"), e("d/y/z")], [e("d", size=5)]])
    assert [(n.path, n.type) for n in overlay.listing()] == [("d", "file")]
    assert overlay.story("d/y/z")[-1].action == "displaced"


def test_directory_replaces_a_file_and_implicit_parents_are_created():
    overlay = merge([[e("conf", size=3)], [e("conf/app/settings.ini")]])
    listing = {n.path: n for n in overlay.listing()}
    assert [(p, n.type) for p, n in listing.items()] == [
        ("conf", "dir"),
        ("conf/app", "dir"),
        ("conf/app/settings.ini", "file"),
    ]
    assert listing["conf"].implicit and listing["conf"].layer == 1
    assert [(r.node.path, r.action) for r in overlay.removed] == [("conf", "changed")]


def test_hard_link_keeps_the_file_it_linked_even_after_the_name_changes():
    overlay = merge(
        [
            [
                e("bin", "dir"),
                e("bin/sh", size=10),
                e("bin/ash", "hardlink", size=0, link="bin/sh"),
            ],
            [e("bin/sh", size=99)],
        ]
    )
    ash = overlay.nodes["bin/ash"]
    assert (ash.type, ash.size, ash.target, ash.layer) == ("hardlink", 10, "bin/sh", 0)
    assert overlay.nodes["bin/sh"].size == 99


def test_hard_link_to_a_missing_file_is_reported():
    overlay = merge([[e("x", "hardlink", size=0, link="nowhere")]])
    assert overlay.nodes["x"].size == 0
    assert [i.path for i in overlay.irregular] == ["x"]


def test_dot_dot_names_stay_literal_and_are_reported():
    overlay = merge(
        [
            [e("a", "dir"), e("a/b"), e("../../etc/evil"), e("x/../y")],
            [e("a/.wh..", "whiteout"), e(".wh...", "whiteout")],
        ]
    )
    assert paths(overlay) == ["../../etc/evil", "a", "a/b", "x/../y"]
    assert "x" not in overlay.nodes and ".." not in overlay.nodes
    reasons = sorted((i.path, i.reason.split()[0]) for i in overlay.irregular)
    assert reasons == [
        ("../../etc/evil", "name"),
        (".wh...", "whiteout"),
        ("a/.wh..", "whiteout"),
        ("x/../y", "name"),
    ]


def test_root_opaque_marker_hides_everything_below_including_literal_names():
    overlay = merge([[e("a"), e("../b")], [e(".wh..wh..opq", "opaque"), e("c")]])
    assert paths(overlay) == ["c"]


def test_symlinked_directories_are_followed_like_an_unpacker_does():
    overlay = merge(
        [
            [
                e("usr/lib", "dir"),
                e("lib", "symlink", 0, link="usr/lib"),
                e("up", "symlink", 0, link="../.."),
            ],
            [e("lib/libc.so"), e("up/usr/lib/x"), e("lib/.wh.gone", "whiteout")],
        ]
    )
    assert paths(overlay) == ["lib", "up", "usr", "usr/lib", "usr/lib/libc.so", "usr/lib/x"]


def test_a_symlink_loop_is_reported_not_followed_forever():
    overlay = merge([[e("a", "symlink", 0, link="b"), e("b", "symlink", 0, link="/a")], [e("a/x")]])
    assert paths(overlay) == ["a", "b"]
    assert [(i.path, i.reason) for i in overlay.irregular] == [
        ("a/x", "symlink loop in its directories")
    ]


def test_removed_files_still_linked_by_a_hard_link_are_not_unreachable():
    overlay = merge([[e("sh", size=3), e("ash", "hardlink", 0, link="sh")], [e("sh", size=9)]])
    assert [r.node.path for r in overlay.removed] == ["sh"]
    assert overlay.unreachable() == []


def test_thousands_of_whiteouts_remove_exactly_their_targets():
    count = 5000
    lower = [e("many", "dir")] + [e(f"many/f{i}") for i in range(count)]
    upper = [e(f"many/.wh.f{i}", "whiteout") for i in range(0, count, 2)]
    overlay = merge([lower, upper])
    assert len(overlay.nodes) == 1 + count // 2
    assert "many/f1" in overlay.nodes and "many/f0" not in overlay.nodes


def test_a_very_deep_tree_is_removed_without_recursion():
    depth = 5000  # far beyond Python's recursion limit
    chain = "/".join(f"d{i}" for i in range(depth))
    overlay = merge([[e(chain + "/leaf")], [e(".wh.d0", "whiteout")]])
    assert overlay.nodes == {}
    assert overlay.story(chain)[-1].action == "deleted"


def test_story_follows_a_path_through_every_layer():
    overlay = merge(
        [
            [e("etc", "dir"), e("etc/conf", size=1)],
            [e("etc/conf", size=2)],
            [e("etc/.wh.conf", "whiteout")],
            [e("etc/conf", "symlink", size=0, link="/dev/null")],
        ]
    )
    story = [(ev.layer, ev.action, ev.type, ev.cause) for ev in overlay.story("etc/conf")]
    assert story == [
        (0, "added", "file", ""),
        (1, "changed", "file", ""),
        (2, "deleted", "file", "etc/.wh.conf"),
        (3, "added", "symlink", ""),
    ]


def test_irregular_name_detects_empty_dot_and_dot_dot_components():
    assert irregular_name("../x") and irregular_name("a/./b") and irregular_name("a//b")
    assert not irregular_name("a/..b/.c") and not irregular_name("a/b")


# -- against the real registry and a real unpacker ---------------------------------------------


@pytest.mark.tools
@pytest.mark.parametrize("tag", ["v1", "v2"])
async def test_merged_listing_equals_what_umoci_unpacks(
    peek, plain_registry, fs_images, tmp_path, tag
):
    pushed = fs_images.overlay if tag == "v1" else fs_images.overlay_v2
    ref = pushed.ref(plain_registry.host)
    listing = await peek.merged_listing(await peek.resolve(ref))
    rootfs = unpack_with_umoci(ref, tmp_path)
    assert merged_tree(listing) == unpacked_tree(rootfs)
    assert listing.irregular == [] and listing.total == len(listing.entries)


async def test_merged_listing_of_the_catalog_whiteout_image(peek, plain_registry, catalog):
    image = await peek.resolve(catalog.whiteouts.ref(plain_registry.host))
    listing = await peek.merged_listing(image)
    assert tuple(e.path for e in listing.entries) == catalog.whiteouts.merged_paths


async def test_merged_entries_name_their_providing_layer(peek, plain_registry, fs_images):
    image = await peek.resolve(fs_images.overlay.ref(plain_registry.host))
    entries = {e.path: e for e in (await peek.merged_listing(image)).entries}
    assert entries["etc/passwd"].layer == 1
    assert entries["etc/hostname"].layer == 2
    assert (entries["app/data"].type, entries["app/data"].layer) == ("file", 2)
    assert (entries["app/config"].type, entries["app/config"].layer) == ("dir", 1)
    assert entries["var/www"].type == "symlink" and entries["var/www"].layer == 3
    ash = entries["bin/ash"]
    assert (ash.type, ash.layer, ash.size) == ("hardlink", 0, len(b"#!shell v1\n"))
    assert "home/dev/.ssh" not in entries and "deep/d0" in entries and "deep/d0/d1" not in entries
    # written through the lib -> usr/lib and sbin -> /usr/bin symlinks, as unpackers do
    assert entries["lib"].type == "symlink" and entries["usr/lib/libbar.so"].layer == 1
    assert "usr/lib/libfoo.so" not in entries and entries["usr/bin/helper"].layer == 3


async def test_merged_listing_pages(peek, plain_registry, fs_images):
    image = await peek.resolve(fs_images.overlay.ref(plain_registry.host))
    whole = await peek.merged_listing(image)
    first = await peek.merged_listing(image, limit=5)
    rest = await peek.merged_listing(image, start=first.next_start)
    assert first.entries + rest.entries == whole.entries and rest.next_start is None
    with pytest.raises(LayerpeekError):
        await peek.merged_listing(image, limit=0)


async def test_hostile_image_is_merged_literally_and_reported(peek, plain_registry, fs_images):
    image = await peek.resolve(fs_images.hostile.ref(plain_registry.host))
    listing = await peek.merged_listing(image)
    paths = [e.path for e in listing.entries]
    assert paths == [
        "../../etc/evil",
        "a",
        "a/b",
        "clamped",  # up/clamped: `up` links to ../../.., which stops at the root
        "dangling",
        "loop1",
        "loop2",
        "many",
        "up",
        "x/../y",
    ]
    assert {i.path: i.reason for i in listing.irregular} == {
        "../../etc/evil": "name has an empty, . or .. component",
        "a/.wh..": "whiteout of an irregular name",
        "x/../y": "name has an empty, . or .. component",
        "dangling": "hard link to missing or non-file 'no/such/file'",
        "loop1/inside": "symlink loop in its directories",
    }


async def test_trace_tells_a_paths_story_with_build_steps(peek, plain_registry, fs_images):
    image = await peek.resolve(fs_images.overlay.ref(plain_registry.host))
    trace = await peek.trace(image, "/home/dev/.ssh/id_rsa")
    assert not trace.exists and trace.entry is None and trace.readable_layers == [0]
    assert [(e.layer, e.action, e.cause) for e in trace.events] == [
        (0, "added", ""),
        (2, "deleted", "home/dev/.wh..ssh"),
    ]
    assert trace.events[0].created_by == STEPS[0] and trace.events[1].created_by == STEPS[2]
    assert trace.events[1].layer_digest == fs_images.overlay.layers[2].digest
    passwd = await peek.trace(image, "etc/passwd")
    assert passwd.exists and passwd.entry.layer == 1
    assert [e.action for e in passwd.events] == ["added", "changed"]


async def test_removed_files_still_shipped_are_listed_and_readable(peek, plain_registry, fs_images):
    image = await peek.resolve(fs_images.overlay.ref(plain_registry.host))
    report = await peek.removed_files(image)
    found = {(f.path, f.layer): f for f in report.files}
    key = found[("home/dev/.ssh/id_rsa", 0)]
    assert (key.removed_in, key.action, key.size) == (2, "deleted", len(PRIVATE_KEY))
    assert key.removed_by == STEPS[2]
    assert found[("etc/passwd", 0)].action == "changed"
    assert ("bin/sh", 0) not in found  # overwritten, but bin/ash still links to those bytes
    assert found[("app/cache/a", 0)].action == "hidden"
    assert found[("app/config", 0)].action == "changed"
    assert found[("app/data/y/z", 0)].action in ("deleted", "displaced")
    assert report.total_size == sum(f.size for f in report.files)
    assert [f.size for f in report.files] == sorted((f.size for f in report.files), reverse=True)
    copy = b"".join([c async for c in peek.read_file(image, key.layer_path, key.layer)])
    assert copy == PRIVATE_KEY
    # deleted through the lib -> usr/lib symlink; layer 1 ships it under its own name
    lib = found[("usr/lib/libfoo.so", 1)]
    assert (lib.layer_path, lib.action) == ("lib/libfoo.so", "deleted")
    copy = b"".join([c async for c in peek.read_file(image, lib.layer_path, lib.layer)])
    assert copy == b"written through the lib symlink\n"


async def test_trace_follows_symlinked_directories(peek, plain_registry, fs_images):
    image = await peek.resolve(fs_images.overlay.ref(plain_registry.host))
    trace = await peek.trace(image, "lib/libfoo.so")
    assert trace.path == "usr/lib/libfoo.so" and not trace.exists
    assert [(e.layer, e.action, e.layer_path) for e in trace.events] == [
        (1, "added", "lib/libfoo.so"),
        (2, "deleted", "usr/lib/libfoo.so"),
    ]


# -- the CLI -----------------------------------------------------------------------------------

ENTRY_KEYS = {"layer", "path", "type", "size", "mode", "uid", "gid", "mtime", "link", "cut"}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_ls_merged_json_lines_keep_the_entry_keys(capsys, layerpeek_env, plain_registry, catalog):
    status, out, _ = run(
        capsys, "ls", catalog.whiteouts.ref(plain_registry.host), "--merged", "--json"
    )
    lines = [json.loads(line) for line in out.splitlines()]
    assert status == 0 and all(set(line) == ENTRY_KEYS for line in lines)
    assert tuple(line["path"] for line in lines) == catalog.whiteouts.merged_paths
    assert {line["path"]: line["layer"] for line in lines}["opt/app/c"] == 1


def test_ls_merged_table_notes_irregular_names(capsys, layerpeek_env, plain_registry, fs_images):
    status, out, err = run(capsys, "ls", fs_images.hostile.ref(plain_registry.host), "--merged")
    assert status == 0 and "../../etc/evil" in out
    assert "layerpeek: note: a/.wh.. (layer 1): whiteout of an irregular name" in err
    status, _, err = run(
        capsys, "ls", fs_images.hostile.ref(plain_registry.host), "--merged", "--layer", "0"
    )
    assert status == 2 and "drop --layer" in err


def test_trace_cli_shows_steps_and_how_to_read_the_old_copy(
    capsys, layerpeek_env, plain_registry, fs_images
):
    ref = fs_images.overlay.ref(plain_registry.host)
    status, out, _ = run(capsys, "trace", ref, "home/dev/.ssh/id_rsa")
    assert status == 0 and "not in the merged filesystem" in out
    assert "deleted" in out and STEPS[2][:40] in out
    assert f"older copy: layerpeek cat {ref} home/dev/.ssh/id_rsa --layer 0" in out
    status, out, _ = run(capsys, "trace", ref, "etc/passwd", "--json")
    trace = json.loads(out)
    assert trace["exists"] and [e["action"] for e in trace["events"]] == ["added", "changed"]
    status, out, _ = run(capsys, "trace", ref, "no/such/path")
    assert status == 1 and "no layer has this path" in out


def test_removed_cli_lists_what_still_ships(capsys, layerpeek_env, plain_registry, fs_images):
    ref = fs_images.overlay.ref(plain_registry.host)
    status, out, _ = run(capsys, "removed", ref)
    assert status == 0 and "home/dev/.ssh/id_rsa" in out and "# removed in layer 2" in out
    status, out, _ = run(capsys, "removed", ref, "--json")
    report = json.loads(out)
    assert report["files"][0]["path"] == "home/dev/.ssh/id_rsa"  # largest first
