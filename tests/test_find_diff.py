"""`find` (glob, regex, type and size filters, per layer or merged) and `diff` (two tags, two
platforms) through the service and the CLI, against the real registry."""

import json

import pytest

from fixtures.fs_images import STEPS
from layerpeek.cli.main import main
from layerpeek.core.errors import LayerpeekError
from layerpeek.core.fs.find import FindSpec, parse_size
from layerpeek.core.text import short_digest

ENTRY_KEYS = {"layer", "path", "type", "size", "mode", "uid", "gid", "mtime", "link", "cut"}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


# -- the query --------------------------------------------------------------------------------


def test_glob_matches_the_full_path_or_the_basename():
    spec = FindSpec.parse("*.pem")
    assert spec.matches_path("certs/server.pem") and spec.matches_path("a/b/c.pem")
    rooted = FindSpec.parse("/etc/*.conf")
    assert rooted.matches_path("etc/a.conf") and not rooted.matches_path("usr/etc/a.conf")


def test_regex_searches_the_full_path():
    spec = FindSpec.parse(r"^home/[^/]+/\.ssh/", regex=True)
    assert spec.matches_path("home/dev/.ssh/id_rsa") and not spec.matches_path("root/.ssh/x")


def test_type_and_size_filters():
    spec = FindSpec.parse("*", types=["file"], min_size="1K", max_size="1.5M")
    assert spec.matches("a", "file", 1024) and spec.matches("a", "file", 1536 << 10)
    assert not spec.matches("a", "file", 1023) and not spec.matches("a", "dir", 4096)


@pytest.mark.parametrize(
    ("text", "size"),
    [("512", 512), ("10K", 10240), ("10KiB", 10240), ("1.5M", 1572864), ("2g", 2 << 30)],
)
def test_sizes_take_binary_units(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "kwargs",
    [{"regex": True, "pattern": "(unclosed"}, {"types": ["socket"]}, {"min_size": "ten"}],
)
def test_bad_queries_are_one_line_errors(kwargs):
    kwargs.setdefault("pattern", "*")
    with pytest.raises(LayerpeekError):
        FindSpec.parse(**kwargs)


# -- find against the registry ----------------------------------------------------------------


async def test_find_across_layers_sees_deleted_files_and_their_story(
    peek, plain_registry, fs_images
):
    image = await peek.resolve(fs_images.overlay.ref(plain_registry.host))
    result = await peek.find(image, FindSpec.parse("id_rsa"), merged=False)
    assert [(m.layer, m.path) for m in result.matches] == [(0, "home/dev/.ssh/id_rsa")]
    story = result.matches[0].history
    assert [(e.layer, e.action, e.created_by) for e in story] == [
        (0, "added", STEPS[0]),
        (2, "deleted", STEPS[2]),
    ]
    merged = await peek.find(image, FindSpec.parse("id_rsa"), merged=True)
    assert merged.matches == [] and merged.total == 0
    placed = await peek.find(image, FindSpec.parse("libfoo.so"), merged=False)
    [through_link] = placed.matches  # lib/libfoo.so in layer 1's tar, usr/lib/ when merged
    assert [e.action for e in through_link.history] == ["added", "deleted"]


async def test_find_per_layer_includes_whiteouts_and_every_copy(peek, plain_registry, fs_images):
    image = await peek.resolve(fs_images.overlay.ref(plain_registry.host))
    copies = await peek.find(image, FindSpec.parse("etc/passwd"), merged=False)
    assert [m.layer for m in copies.matches] == [0, 1]
    marks = await peek.find(image, FindSpec.parse("*", types=["whiteout", "opaque"]), merged=False)
    assert {m.path for m in marks.matches} == {
        "app/cache/.wh..wh..opq",
        "home/dev/.wh..ssh",
        "deep/d0/.wh.d1",
        "app/.wh.data",
        "etc/.wh.hostname",
        "lib/.wh.libfoo.so",
    }


async def test_find_merged_filters_and_pages(peek, plain_registry, fs_images):
    image = await peek.resolve(fs_images.overlay.ref(plain_registry.host))
    spec = FindSpec.parse("^app/", regex=True, types=["file"])
    whole = await peek.find(image, spec)
    assert [m.path for m in whole.matches] == sorted(m.path for m in whole.matches)
    assert "app/data" in {m.path for m in whole.matches}  # the file that replaced a directory
    page = await peek.find(image, spec, limit=2)
    rest = await peek.find(image, spec, start=page.next_start)
    assert page.total == whole.total and page.matches + rest.matches == whole.matches
    big = await peek.find(image, FindSpec.parse("*", min_size="100K"))
    assert [m.path for m in big.matches] == ["app/big.bin"]


def test_find_cli_json(capsys, layerpeek_env, plain_registry, fs_images):
    ref = fs_images.overlay.ref(plain_registry.host)
    status, out, _ = run(capsys, "find", ref, "*.pem", "--json")
    result = json.loads(out)
    assert status == 0 and result["total"] == 1
    match = result["matches"][0]
    assert set(match) == ENTRY_KEYS | {"history"} and match["path"] == "certs/server.pem"
    status, out, _ = run(capsys, "find", ref, "*", "--merged", "--type", "symlink")
    assert status == 0 and "etc/os-release@ -> ../usr/lib/os-release" in out
    assert "var/www@ -> /srv/www" in out and out.rstrip().endswith("4 matches")


def test_find_cli_rejects_a_bad_size(capsys, layerpeek_env, plain_registry, fs_images):
    ref = fs_images.overlay.ref(plain_registry.host)
    status, _, err = run(capsys, "find", ref, "*", "--min-size", "lots")
    assert status == 2 and "invalid size 'lots'" in err and "Traceback" not in err


# -- diff -------------------------------------------------------------------------------------


async def test_diff_of_two_tags_sharing_layers(peek, plain_registry, fs_images):
    a = await peek.resolve(fs_images.overlay.ref(plain_registry.host))
    b = await peek.resolve(fs_images.overlay_v2.ref(plain_registry.host))
    report = await peek.diff(a, b)
    assert report.shared_layers == [layer.digest for layer in fs_images.overlay.layers[:3]]
    assert report.added == [] and report.removed == []
    [change] = report.changed
    assert (change.path, change.fields, change.content) == (
        "app/app.py",
        ["size", "mode"],
        "differs",
    )
    assert (change.before.mode, change.after.mode) == (0o644, 0o755)
    # usr/bin/helper comes from layer 3 on both sides: same metadata, different blobs.
    assert report.unverified == 1
    assert report.unchanged == (await peek.merged_listing(a)).total - 2


async def test_diff_of_an_image_with_itself_is_empty(peek, plain_registry, fs_images):
    a = await peek.resolve(fs_images.overlay.ref(plain_registry.host))
    report = await peek.diff(a, a)
    assert report.added == report.removed == report.changed == [] and report.unverified == 0
    assert len(report.shared_layers) == len(fs_images.overlay.layers)


def test_diff_cli_two_platforms_of_one_tag(capsys, layerpeek_env, plain_registry, catalog):
    ref = catalog.multi.ref(plain_registry.host)
    argv = ["diff", ref, "--platform", "linux/amd64", "--platform-b", "linux/arm64/v8"]
    status, out, _ = run(capsys, *argv, "--json")
    report = json.loads(out)
    assert status == 1 and report["shared_layers"] == []  # they differ
    assert [e["path"] for e in report["added"]] == ["only-arm64v8.txt"]
    assert [e["path"] for e in report["removed"]] == ["only-amd64.txt"]
    assert [(c["path"], c["fields"]) for c in report["changed"]] == [("platform.txt", ["size"])]
    status, out, _ = run(capsys, *argv)
    assert status == 1
    assert "+ only-arm64v8.txt" in out and "- only-amd64.txt" in out
    assert "~ platform.txt  size 12->15" in out


def test_diff_cli_needs_two_images(capsys, layerpeek_env, plain_registry, fs_images):
    status, _, err = run(capsys, "diff", fs_images.overlay.ref(plain_registry.host))
    assert status == 2 and "diff needs two images" in err


def test_diff_cli_by_digest_table(capsys, layerpeek_env, plain_registry, fs_images):
    a = fs_images.overlay.digest_ref(plain_registry.host)
    b = fs_images.overlay_v2.digest_ref(plain_registry.host)
    status, out, _ = run(capsys, "diff", a, b)
    assert status == 1
    assert "~ app/app.py  size 12->21, mode 0644->0755" in out
    shared = ", ".join(short_digest(layer.digest) for layer in fs_images.overlay.layers[:3])
    assert f"shared layers: {shared}" in out
    assert "0 added, 0 removed, 1 changed" in out
