"""One path resolver: reads, sizes and links ask the merged view which copy a path names.

Links are followed like a chroot (every directory and, unless told not to, the last
component; absolute targets from the image root; ``..`` stops at the root; 40 links at
most), a path a layer holds twice is its last copy, and a hard link reads the bytes of the
inode it shared when it was made. ``umoci unpack`` of the same image is the reference.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import struct
from pathlib import Path

import pytest

from fixtures.bot import invoke, running_bot, sent_payload
from fixtures.fs_images import FsImages
from fixtures.mcp import call, deployment, error, link_call
from fixtures.path_images import (
    CHAIN,
    FIRST_COPY,
    LAST_COPY,
    LIBBAR_V1,
    OS_RELEASE,
    TRUE_V2,
    PathImages,
    push_path_images,
)
from fixtures.umoci import merged_tree, unpack_with_umoci, unpacked_tree
from layerpeek.bot import commands
from layerpeek.cli.main import main
from layerpeek.core.errors import FileNotInLayer
from layerpeek.core.fs.overlay import Overlay, merge
from layerpeek.core.image.resolve import ResolvedImage
from layerpeek.core.layers.entry import TarEntry
from layerpeek.core.service import Layerpeek


def e(path: str, type: str = "file", size: int = 1, link: str = "") -> TarEntry:
    return TarEntry(path, type, size, 0o644, 0, 0, 0, link)  # type: ignore[arg-type]


def found(overlay: Overlay, path: str, follow: bool = True) -> tuple[str, str, tuple[str, ...]]:
    lookup = overlay.lookup(path, follow)
    return lookup.path, lookup.node.type if lookup.node else "", lookup.links


# -- the merged view's lookup, on plain listings ------------------------------------------------


def test_lookup_follows_links_in_every_directory_and_the_last_component():
    overlay = merge(
        [
            [e("usr/lib/os-release"), e("usr/bin/ls"), e("etc", "dir")],
            [e("etc/os-release", "symlink", link="../usr/lib/os-release")],
            [e("bin", "symlink", link="usr/bin"), e("sbin", "symlink", link="/usr/bin")],
            [e("up", "symlink", link="../../../usr/bin/ls")],
        ]
    )
    assert found(overlay, "etc/os-release") == (
        "usr/lib/os-release",
        "file",
        ("etc/os-release",),
    )
    assert found(overlay, "bin/ls") == ("usr/bin/ls", "file", ("bin",))
    # `..` after a link goes up from where the link led (usr), as the kernel's does
    assert found(overlay, "sbin/../bin/ls") == ("usr/bin/ls", "file", ("sbin",))
    assert found(overlay, "up") == ("usr/bin/ls", "file", ("up",))  # `..` stops at the root
    assert found(overlay, "etc/os-release", follow=False) == ("etc/os-release", "symlink", ())
    assert found(overlay, "bin/nope") == ("usr/bin/nope", "", ("bin",))


def test_lookup_stops_at_forty_links_and_calls_more_a_loop():
    chain = [e(f"l{i}", "symlink", link=f"l{i + 1}") for i in range(41)]
    overlay = merge([[*chain, e("l41")]])
    assert found(overlay, "l1") == ("l41", "file", tuple(f"l{i}" for i in range(1, 41)))
    too_many = overlay.lookup("l0")
    assert too_many.loop and too_many.node is None and len(too_many.links) == 41
    loop = merge([[e("a", "symlink", link="b"), e("b", "symlink", link="/a")]]).lookup("a/x")
    assert loop.loop and loop.links[:3] == ("a", "b", "a")


def test_a_path_held_twice_is_its_last_copy_and_a_hard_link_keeps_the_first():
    overlay = merge([[e("d", "dir"), e("d/a", size=3), e("h", "hardlink", link="d/a"), e("d/a")]])
    node = overlay.get("d/a")
    assert (node.size, node.position) == (1, 3)
    link = overlay.get("h")
    assert (link.size, link.linked.position, link.linked.path) == (3, 1, "d/a")


# -- the image, against umoci -----------------------------------------------------------------


@pytest.fixture(scope="module")
def path_images(plain_registry) -> PathImages:
    return push_path_images(plain_registry.url)


async def _read(peek: Layerpeek, image: ResolvedImage, path: str, **how) -> bytes:
    return b"".join([chunk async for chunk in peek.read_file(image, path, **how)])


@pytest.mark.tools
async def test_every_merged_file_reads_as_umoci_unpacks_it(
    peek, plain_registry, path_images, tmp_path
):
    ref = path_images.paths.ref(plain_registry.host)
    image = await peek.resolve(ref)
    listing = await peek.merged_listing(image)
    rootfs = unpack_with_umoci(ref, tmp_path)
    assert merged_tree(listing) == unpacked_tree(rootfs)
    files = [e for e in listing.entries if e.type in ("file", "hardlink")]
    assert len(files) == 11
    for entry in files:
        assert await _read(peek, image, entry.path) == Path(rootfs, entry.path).read_bytes()
        assert await peek.file_size(image, entry.path) == entry.size
    # Every link, and paths through linked directories, as the kernel opens them in a
    # chroot of what umoci wrote: the same bytes, or no file where it finds none.
    through = ["bin/true", "usr/lib/libbar.so", "usr/lib/os-release", "bin/../lib/os-release"]
    asked = [e.path for e in listing.entries if e.type == "symlink"] + through
    assert len(asked) == 55
    for path in asked:
        expected = open_in_root(rootfs, path)
        if isinstance(expected, bytes):
            assert await _read(peek, image, path) == expected, path
        else:
            reason = "symlink" if expected == errno.ELOOP else "not a file|not a regular"
            with pytest.raises(FileNotInLayer, match=reason):
                await _read(peek, image, path)


def open_in_root(root: Path, path: str) -> bytes | int:
    """The bytes of regular file ``path`` as the kernel resolves it inside ``root`` as in a
    chroot (openat2 with RESOLVE_IN_ROOT), or the errno it gives (EISDIR for a directory)."""
    how = struct.pack("QQQ", os.O_RDONLY, 0, _RESOLVE_IN_ROOT)
    top = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        fd = _LIBC.syscall(_SYS_OPENAT2, top, path.encode(), how, len(how))
        if fd < 0:
            return ctypes.get_errno()
    finally:
        os.close(top)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return errno.EISDIR
    with os.fdopen(fd, "rb") as file:
        return file.read()


_LIBC = ctypes.CDLL(None, use_errno=True)
_SYS_OPENAT2 = 437  # the same number on every Linux architecture (5.6+)
_RESOLVE_IN_ROOT = 0x10


async def test_reads_follow_links_in_directories_and_the_last_component(
    peek, plain_registry, path_images
):
    image = await peek.resolve(path_images.paths.ref(plain_registry.host))
    assert await _read(peek, image, "/etc/os-release") == OS_RELEASE
    assert await _read(peek, image, "bin/true") == TRUE_V2
    assert await _read(peek, image, "usr/bin/editor") == b"vi\n"
    assert await _read(peek, image, "etc/localtime") == b"TZif2 UTC\n"
    assert await _read(peek, image, "escape") == LIBBAR_V1
    copy = await peek.locate(image, "etc/os-release")
    assert (copy.path, copy.links, copy.layer) == (
        "lib/os-release",
        ("etc/os-release", "usr/lib"),
        0,
    )
    assert copy.shown == "etc/os-release → lib/os-release"
    with pytest.raises(
        FileNotInLayer, match=r"^etc/os-release is a symlink to \.\./usr/lib/os-release in layer 0"
    ):
        await _read(peek, image, "etc/os-release", follow=False)
    with pytest.raises(FileNotInLayer, match=r"^loop/a: a symlink loop: loop/a → loop/b → loop/a$"):
        await _read(peek, image, "loop/a")
    with pytest.raises(FileNotInLayer, match=r"^chain/l0: more than 40 symlinks on the way: "):
        await _read(peek, image, "chain/l0")
    assert await _read(peek, image, "chain/l1") == b"the end of the chain\n"
    assert CHAIN == 41
    report = await peek.triage(image)  # os-release through etc/os-release and usr/lib
    assert (report.os.id, report.os.path) == ("paths", "lib/os-release")


async def test_a_file_written_through_a_symlinked_directory_is_read_where_it_landed(
    peek, plain_registry, path_images, fs_images: FsImages
):
    image = await peek.resolve(path_images.paths.ref(plain_registry.host))
    # layer 1 ships usr/lib/libbar.so, which lands on layer 0's lib/libbar.so
    assert await _read(peek, image, "lib/libbar.so") == LIBBAR_V1
    assert await _read(peek, image, "usr/lib/libbar.so") == LIBBAR_V1
    with pytest.raises(FileNotInLayer, match=r"^lib/libgone\.so was deleted in layer 1"):
        await _read(peek, image, "lib/libgone.so")
    with pytest.raises(FileNotInLayer, match=r"^opt/app/old\.txt was deleted in layer 1 by an"):
        await peek.file_size(image, "opt/app/old.txt")
    # lib -> usr/lib: `ls --merged` shows usr/lib/libbar.so, which layer 1 ships as lib/...
    overlay = await peek.resolve(fs_images.overlay.ref(plain_registry.host))
    assert await _read(peek, overlay, "usr/lib/libbar.so") == b"kept\n"
    assert await peek.file_size(overlay, "usr/lib/libbar.so") == len(b"kept\n")


@pytest.mark.parametrize("tag", ["paths", "zstd"])
async def test_the_last_copy_of_a_path_counts_and_a_hard_link_reads_the_one_it_shared(
    peek, plain_registry, path_images, tag
):
    image = await peek.resolve(getattr(path_images, tag).ref(plain_registry.host))
    assert await _read(peek, image, "d/a") == LAST_COPY
    assert await _read(peek, image, "d/a", layer=0) == LAST_COPY
    assert await _read(peek, image, "data/hard") == FIRST_COPY
    assert await _read(peek, image, "data/hard", layer=0) == FIRST_COPY
    assert await _read(peek, image, "x/y") == b"two, the last\n"  # streamed
    assert await _read(peek, image, "x/y", layer=1) == b"two, the last\n"
    assert await _read(peek, image, "p/q") == b"last q, read by range\n"  # plain: a range
    assert await peek.file_size(image, "d/a", 0) == len(LAST_COPY)
    listed = [e.path async for e in peek.entries(image, 0)]
    assert listed.count("d/a") == 2


# -- the front ends ----------------------------------------------------------------------------


def run(capsys, *argv: str) -> tuple[int, bytes, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_cat_follows_links_and_says_where_on_stderr(
    capsysbinary, layerpeek_env, plain_registry, path_images
):
    ref = path_images.paths.ref(plain_registry.host)
    assert main(["cat", ref, "etc/os-release"]) == 0
    out, err = capsysbinary.readouterr()
    assert out == OS_RELEASE
    assert err.decode() == "layerpeek: read etc/os-release → lib/os-release\n"
    assert main(["cat", ref, "d/a"]) == 0
    out, err = capsysbinary.readouterr()
    assert (out, err) == (LAST_COPY, b"")
    assert main(["cat", ref, "etc/os-release", "--no-follow"]) == 3
    out, err = capsysbinary.readouterr()
    assert out == b""
    assert err.decode() == (
        "layerpeek: error: etc/os-release is a symlink to ../usr/lib/os-release in layer 0, "
        "not followed\n"
    )
    assert main(["cat", ref, "loop/b"]) == 3
    _, err = capsysbinary.readouterr()
    assert err.decode() == "layerpeek: error: loop/b: a symlink loop: loop/b → loop/a → loop/b\n"


async def test_mcp_read_file_follows_links_and_names_the_file_read(
    mcp, plain_registry, path_images
):
    ref = path_images.paths.ref(plain_registry.host)
    answer = await call(mcp, "read_file", reference=ref, path="/bin/true")
    assert answer["content"] == TRUE_V2.decode()
    assert (answer["read_path"], answer["links_followed"]) == ("usr/bin/true", ["bin"])
    result = await mcp.call_tool("read_file", {"reference": ref, "path": "/etc/os-release"})
    assert result.content[0].text.startswith("/etc/os-release → lib/os-release in the image")
    message = await error(mcp, "read_file", reference=ref, path="etc/os-release", follow=False)
    assert "etc/os-release is a symlink to ../usr/lib/os-release in layer 0, not followed" in (
        message
    )


async def test_a_download_link_serves_the_file_links_lead_to(
    link_env, plain_registry, path_images, fs_images
):
    ref = path_images.paths.ref(plain_registry.host)
    lower = fs_images.overlay.ref(plain_registry.host)
    async with deployment() as served:
        link = await link_call(served.mcp, "download_link", reference=ref, path="bin/true")
        through = await link_call(
            served.mcp, "download_link", reference=lower, path="usr/lib/libbar.so"
        )
        bodies = [await served.fetch(made["url"]) for made in (link, through)]
    assert link["size"] == len(TRUE_V2) and link["what"].startswith("bin/true → usr/bin/true")
    assert [(b.status_code, b.content) for b in bodies] == [(200, TRUE_V2), (200, b"kept\n")]


async def test_bot_cat_names_the_file_read(bot_settings, plain_registry, path_images):
    ref = path_images.paths.ref(plain_registry.host)
    async with running_bot(bot_settings) as bot:
        done = await invoke(bot, commands.cat, image=ref, path="/etc/os-release")
    attached = done.named("edit_original")[0]["attachments"][0]
    assert attached.fp.read() == OS_RELEASE
    attached.fp.seek(0)
    message = sent_payload(done.named("edit_original")[0])
    assert message["embeds"][0]["title"].startswith("etc/os\\-release → lib/os\\-release")
