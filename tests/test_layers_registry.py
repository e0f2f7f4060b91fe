"""Layer listing and `cat` against the real registry: every format, every hostile blob."""

import re
import subprocess

import pytest

from fixtures.catalog import LATE_TXT
from fixtures.fs_images import OS_RELEASE
from fixtures.images import OCI_LAYER_GZIP, Pusher
from layerpeek.core.errors import (
    CorruptLayer,
    FileNotInLayer,
    LayerpeekError,
    TruncatedLayer,
)


def reported_type(entry) -> str:
    """The fixtures record whiteout markers as the plain files they are in the tar."""
    name = entry.path.rpartition("/")[2]
    if name == ".wh..wh..opq":
        return "opaque"
    return "whiteout" if name.startswith(".wh.") else entry.type


async def listing(peek, ref, layer=None, limit=None):
    image = await peek.resolve(ref)
    found = []
    async for entry in peek.entries(image, layer):
        found.append(entry)
        if limit and len(found) >= limit:
            break
    return found


async def read(peek, ref, path, layer=None) -> bytes:
    image = await peek.resolve(ref)
    return b"".join([chunk async for chunk in peek.read_file(image, path, layer)])


@pytest.mark.parametrize("name", ["gzip", "zstd", "plain", "whiteouts", "history"])
async def test_every_layer_lists_exactly_what_it_holds(peek, plain_registry, catalog, name):
    image = getattr(catalog, name)
    entries = await listing(peek, image.ref(plain_registry.host))
    expected = [
        (i, e.path, reported_type(e), e.size, e.link)
        for i, layer in enumerate(image.layers)
        for e in layer.entries
    ]
    assert [(e.layer, e.path, e.type, e.size, e.link) for e in entries] == expected


async def test_one_layer_and_negative_index(peek, plain_registry, catalog):
    ref = catalog.gzip.ref(plain_registry.host)
    top = await listing(peek, ref, layer=-1)
    assert {e.layer for e in top} == {1}
    assert [e.path for e in top] == [e.path for e in catalog.gzip.layers[1].entries]


async def test_layer_out_of_range_says_how_many_there_are(peek, plain_registry, catalog):
    with pytest.raises(LayerpeekError, match="has 2 layers"):
        await listing(peek, catalog.gzip.ref(plain_registry.host), layer=5)


async def test_limit_stops_the_read_early(peek, fault_proxy, catalog):
    entries = await listing(peek, catalog.gzip.ref(fault_proxy.host), layer=1, limit=1)
    assert len(entries) == 1
    layer = catalog.gzip.layers[1]
    assert fault_proxy.body_bytes(layer.digest) <= layer.size


async def test_cat_finds_a_file_near_the_end_of_a_layer(peek, plain_registry, catalog):
    data = await read(peek, catalog.gzip.ref(plain_registry.host), "/app/data/late.txt")
    assert data == LATE_TXT


@pytest.mark.parametrize("name", ["zstd", "plain"])
async def test_cat_reads_every_file_of_zstd_and_plain_layers(peek, plain_registry, catalog, name):
    image = getattr(catalog, name)
    for path, content in image.layers[0].files.items():
        assert await read(peek, image.ref(plain_registry.host), path, layer=0) == content


async def test_cat_of_a_deleted_file_names_the_layer_that_deleted_it(peek, plain_registry, catalog):
    ref = catalog.whiteouts.ref(plain_registry.host)
    with pytest.raises(FileNotInLayer, match=r"deleted in layer 1.*layer 0 still ships") as gone:
        await read(peek, ref, "etc/secret.key")
    assert (gone.value.path, gone.value.deleted_in, gone.value.readable_layers) == (
        "etc/secret.key",
        1,
        (0,),
    )
    with pytest.raises(FileNotInLayer, match="deleted in layer 1 by an opaque") as hidden:
        await read(peek, ref, "opt/app/a")  # hidden by the opaque directory
    assert (hidden.value.deleted_in, hidden.value.readable_layers) == (1, (0,))
    # The core names no front end's syntax: each front end phrases the way out.
    assert "--" not in str(gone.value) and "--" not in str(hidden.value)
    old = catalog.whiteouts.layers[0].files["etc/secret.key"]
    assert await read(peek, ref, "etc/secret.key", layer=0) == old


async def test_a_layers_own_symlink_says_the_merged_view_follows_it(
    peek, plain_registry, fs_images
):
    ref = fs_images.overlay.ref(plain_registry.host)
    with pytest.raises(FileNotInLayer, match="symlink") as caught:
        await read(peek, ref, "etc/os-release", layer=0)
    assert (caught.value.layer, caught.value.merged, caught.value.readable_layers) == (0, True, ())
    assert await read(peek, ref, "etc/os-release") == OS_RELEASE


async def test_cat_refuses_what_is_not_a_regular_file(peek, plain_registry, catalog):
    ref = catalog.whiteouts.ref(plain_registry.host)
    with pytest.raises(FileNotInLayer, match="is a dir"):
        await read(peek, ref, "etc")
    with pytest.raises(FileNotInLayer, match="not a file in any layer"):
        await read(peek, ref, "no/such/file")


async def test_truncated_gzip_says_how_far_it_got(peek, plain_registry, catalog):
    with pytest.raises(TruncatedLayer) as caught:
        await listing(peek, catalog.bad.truncated_gzip.ref(plain_registry.host))
    assert caught.value.offset > 0
    assert "ends early" in str(caught.value) or "truncated" in str(caught.value).lower()


async def test_corrupt_zstd_is_a_corrupt_layer(peek, plain_registry, catalog):
    with pytest.raises(CorruptLayer, match="zstd"):
        await listing(peek, catalog.bad.corrupt_zstd.ref(plain_registry.host))


async def test_a_pax_header_over_a_mebibyte_is_read_past(peek, plain_registry, catalog):
    # GNU tar lists it: the unknown record is dropped as it streams past.
    ref = catalog.bad.huge_pax.ref(plain_registry.host)
    entries = await listing(peek, ref)
    assert [e.path for e in entries] == ["huge-header.txt", "after.txt"]
    assert await read(peek, ref, "after.txt") == b"after the huge header\n"


async def test_entry_claiming_more_data_than_the_stream_has(peek, plain_registry, catalog):
    with pytest.raises(TruncatedLayer) as caught:
        await listing(peek, catalog.bad.short_entry.ref(plain_registry.host))
    assert caught.value.entries >= 1


async def test_hostile_names_are_reported_as_they_are(peek, plain_registry, catalog):
    entries = await listing(peek, catalog.bad.hostile_names.ref(plain_registry.host))
    expected = catalog.bad.hostile_names.layers[0].entries
    assert [(e.path, e.type, e.link) for e in entries] == [
        (e.path, e.type, e.link) for e in expected
    ]


async def test_a_gzip_bomb_is_listed_without_inflating_it_in_memory(peek, plain_registry, catalog):
    entries = await listing(peek, catalog.bad.bomb.ref(plain_registry.host))
    assert [(e.path, e.size) for e in entries] == [
        (e.path, e.size) for e in catalog.bad.bomb.layers[0].entries
    ]


async def test_pages_cover_the_listing_once_in_order(peek, plain_registry, catalog):
    image = await peek.resolve(catalog.gzip.ref(plain_registry.host))
    everything = [e async for e in peek.entries(image)]
    pages, start = [], 0
    while start is not None:
        page = await peek.list_page(image, start=start, limit=3)
        pages.append(page)
        start = page.next_start
    assert [e for page in pages for e in page.entries] == everything
    assert pages[-1].complete and not any(page.complete for page in pages[:-1])
    assert all(len(page.entries) == 3 for page in pages[:-1])


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("../../etc/evil", b"escaped\n"),
        ("/abs/path", b"absolute\n"),
        ("new\nline", b"newline in the name\n"),
        ("bad\udcffname", b"name is not UTF-8\n"),
    ],
)
async def test_hostile_names_are_read_by_their_literal_name(
    peek, plain_registry, catalog, path, content
):
    ref = catalog.bad.hostile_names.ref(plain_registry.host)
    assert await read(peek, ref, path) == content


def sparse_layer(tmp_path, tar_format: list[str]) -> bytes:
    """A layer as GNU ``tar --sparse`` writes it: a 1 MiB file of one 4-byte island in holes."""
    hole = tmp_path / "hole.img"
    with hole.open("wb") as out:
        out.truncate(1 << 20)
        out.seek(500_000)
        out.write(b"data")
    (tmp_path / "plain.txt").write_text("hi\n")
    subprocess.run(
        ["tar", "--sparse", *tar_format, "-czf", "layer.tar.gz", "hole.img", "plain.txt"],
        cwd=tmp_path,
        check=True,
    )
    return (tmp_path / "layer.tar.gz").read_bytes()


@pytest.mark.tools
@pytest.mark.parametrize(
    "tar_format",
    [
        ["--format=gnu"],
        ["--format=posix", "--sparse-version=0.0"],
        ["--format=posix", "--sparse-version=0.1"],
        ["--format=posix", "--sparse-version=1.0"],
    ],
    ids=["gnu", "pax-0.0", "pax-0.1", "pax-1.0"],
)
async def test_a_sparse_file_is_listed_at_its_size_and_read_with_its_holes(
    peek, plain_registry, tmp_path, tar_format
):
    blob = sparse_layer(tmp_path, tar_format)
    expected = (tmp_path / "hole.img").read_bytes()
    tag = "-".join(re.sub(r"\W", "", option) for option in tar_format)
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    with Pusher(plain_registry.url) as pusher:
        pusher.image("test/sparse", [tag], [(blob, OCI_LAYER_GZIP)], config)
    ref = f"{plain_registry.host}/test/sparse:{tag}"
    image = await peek.resolve(ref)
    for attempt in ("streamed", "indexed"):  # the first read streams, the listing indexes it
        content = b"".join([chunk async for chunk in peek.read_file(image, "hole.img")])
        assert content == expected, attempt
        assert b"".join([c async for c in peek.read_file(image, "plain.txt")]) == b"hi\n"
        if attempt == "streamed":
            listed = {e.path: e.size for e in await listing(peek, ref)}
            assert listed == {"hole.img": 1 << 20, "plain.txt": 3}
