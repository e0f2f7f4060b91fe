"""The ``layerpeek`` command as a newcomer and a script meet it: exit statuses, help, version,
``pull -o -`` and the modes of pulled files, ``tags REPO:TAG``."""

from __future__ import annotations

import argparse
import json
import os
import stat
from collections.abc import Iterator

import pytest

from fixtures.fs_images import STEPS
from fixtures.images import Member, Pusher
from fixtures.toc_images import make_zstd_chunked, push_toc_image
from fixtures.tree_images import push_tree_image
from layerpeek.cli.main import _parser, main


def run(capsysbinary, *argv: str) -> tuple[int, bytes, str]:
    status = main(list(argv))
    out, err = capsysbinary.readouterr()
    return status, out, err.decode()


@pytest.fixture
def umask() -> Iterator[None]:
    """Restores the process's umask after a test sets its own."""
    before = os.umask(0o022)
    yield
    os.umask(before)


# -- exit statuses ------------------------------------------------------------------------------


def test_find_exits_1_when_nothing_matches(capsysbinary, layerpeek_env, plain_registry, catalog):
    ref = catalog.gzip.ref(plain_registry.host)
    assert run(capsysbinary, "find", ref, "*.nothing-has-this")[0] == 1
    assert run(capsysbinary, "find", ref, "late.txt")[0] == 0


def test_trace_exits_1_for_a_path_no_layer_has(
    capsysbinary, layerpeek_env, plain_registry, catalog
):
    ref = catalog.whiteouts.ref(plain_registry.host)
    assert run(capsysbinary, "trace", ref, "no/such/path")[0] == 1
    assert run(capsysbinary, "trace", ref, "etc/secret.key")[0] == 0  # deleted, but a story


def test_diff_exits_1_when_the_images_differ(capsysbinary, layerpeek_env, plain_registry, catalog):
    ref = catalog.multi.ref(plain_registry.host)
    argv = ["diff", ref, "--platform", "linux/amd64", "--platform-b", "linux/arm64/v8"]
    assert run(capsysbinary, *argv)[0] == 1
    same = catalog.gzip
    status, out, _ = run(
        capsysbinary, "diff", same.ref(plain_registry.host), same.digest_ref(plain_registry.host)
    )
    assert status == 0 and b"0 added, 0 removed, 0 changed" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["ls", "{ref}", "--limit", "0"],
        ["ls", "{ref}", "--merged", "--layer", "0"],
        ["find", "{ref}", "*", "--min-size", "lots"],
        ["diff", "{ref}"],
    ],
)
def test_a_command_line_the_command_cannot_take_exits_2(
    capsysbinary, layerpeek_env, plain_registry, catalog, argv
):
    ref = catalog.gzip.ref(plain_registry.host)
    status, _, err = run(capsysbinary, *[a.format(ref=ref) for a in argv])
    assert status == 2 and err.startswith("layerpeek: error: ") and err.count("\n") == 1


def test_argparse_usage_errors_exit_2(capsysbinary):
    with pytest.raises(SystemExit) as exited:
        main(["ls"])
    assert exited.value.code == 2


def test_errors_exit_3_apart_from_nothing_found(
    capsysbinary, layerpeek_env, plain_registry, catalog
):
    missing = f"{plain_registry.host}/test/gzip:missing"
    status, _, err = run(capsysbinary, "find", missing, "*")
    assert status == 3 and "MANIFEST_UNKNOWN" in err


def test_help_documents_the_exit_statuses(capsysbinary):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsysbinary.readouterr().out.decode()
    assert "exit status:" in out
    for line in ("0  found", "1  nothing found", "2  usage", "3  error"):
        assert line in out


# -- help and version ---------------------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_argument_of_every_command_has_help():
    for name, child in _subcommands(_parser()).items():
        for action in child._actions:
            assert action.help, f"{name} {action.option_strings or action.metavar}"


def test_version(capsysbinary):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    out = capsysbinary.readouterr().out.decode()
    assert out.startswith("layerpeek ") and out.split()[1][0].isdigit()


# -- pull ---------------------------------------------------------------------------------------


def test_pull_to_dash_writes_the_blob_to_stdout(
    capsysbinary, tmp_path, monkeypatch, layerpeek_env, plain_registry, catalog
):
    monkeypatch.chdir(tmp_path)
    ref = catalog.gzip.ref(plain_registry.host)
    status, out, err = run(capsysbinary, "pull", ref, "--layer", "1", "-o", "-")
    assert (status, err) == (0, "")
    assert out == catalog.gzip.layers[1].blob
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_pulled_files_honour_the_umask(
    capsysbinary, tmp_path, umask, layerpeek_env, plain_registry, catalog, mask, mode
):
    os.umask(mask)
    target = tmp_path / "layer.tar.gz"
    status, _, err = run(
        capsysbinary,
        "pull",
        catalog.gzip.ref(plain_registry.host),
        "--layer",
        "0",
        "-o",
        str(target),
    )
    assert status == 0, err
    assert stat.S_IMODE(target.stat().st_mode) == mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docker-config", "layer.tar.gz"]


# -- tags ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [":t03", "@sha256:" + "0" * 64])
def test_tags_ignores_a_tag_or_digest(capsysbinary, layerpeek_env, plain_registry, catalog, suffix):
    repo = f"{plain_registry.host}/{catalog.tags.repo}"
    status, out, err = run(capsysbinary, "tags", repo + suffix)
    assert status == 0, err
    assert set(out.decode().split()) == set(catalog.tags.tags)


# -- removed ------------------------------------------------------------------------------------


def test_removed_shows_each_build_step_once_for_its_files(
    capsysbinary, layerpeek_env, plain_registry, fs_images
):
    status, out, _ = run(capsysbinary, "removed", fs_images.overlay.ref(plain_registry.host))
    text = out.decode()
    assert status == 0
    rows = [line for line in text.splitlines() if line.endswith("home/dev/.ssh/id_rsa")]
    assert len(rows) == 1 and "rm -rf" not in rows[0]
    assert text.count(STEPS[2][:40]) == 1
    assert text.count("# removed in layer 2") == 1


def test_removed_limit_shows_the_largest_and_counts_all(
    capsysbinary, layerpeek_env, plain_registry, fs_images
):
    ref = fs_images.overlay.ref(plain_registry.host)
    whole = json.loads(run(capsysbinary, "removed", ref, "--json")[1])
    status, out, _ = run(capsysbinary, "removed", ref, "--limit", "1", "--json")
    limited = json.loads(out)
    assert status == 0 and limited["files"] == whole["files"][:1]
    assert limited["total_size"] == whole["total_size"]
    status, out, _ = run(capsysbinary, "removed", ref, "--limit", "1")
    text = out.decode()
    assert f"{len(whole['files'])} files" in text and "(showing 1; --limit)" in text
    assert whole["files"][0]["path"] in text and whole["files"][1]["path"] not in text


# -- inspect --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def formats(plain_registry) -> dict[str, str]:
    """References of images whose layers are in each format: gzip and eStargz (the tree
    image), zstd, uncompressed, zstd:chunked."""
    tree = push_tree_image(plain_registry.url)
    with Pusher(plain_registry.url) as pusher:
        push_toc_image(pusher, "fmt/chunked", "v1", make_zstd_chunked([Member("a", data=b"a\n")]))
    return {
        "tree": tree.ref(plain_registry.host),
        "chunked": f"{plain_registry.host}/fmt/chunked:v1",
    }


def test_inspect_names_each_layers_format_and_the_creation_time(
    capsysbinary, layerpeek_env, plain_registry, catalog, formats
):
    def inspected(ref: str) -> dict:
        status, out, err = run(capsysbinary, "inspect", ref, "--json")
        assert status == 0, err
        return json.loads(out)

    assert [x["format"] for x in inspected(formats["tree"])["layers"]] == ["gzip", "eStargz"]
    assert [x["format"] for x in inspected(formats["chunked"])["layers"]] == ["zstd:chunked"]
    assert [x["format"] for x in inspected(catalog.zstd.ref(plain_registry.host))["layers"]] == [
        "zstd"
    ]
    plain = inspected(catalog.plain.ref(plain_registry.host))
    assert [x["format"] for x in plain["layers"]] == ["uncompressed"]
    assert plain["created"] == catalog.plain.config["created"]
    docker = inspected(catalog.gzip.ref(plain_registry.host))  # Docker schema2 media types
    assert [x["format"] for x in docker["layers"]] == ["gzip", "gzip"]


def test_inspect_table_says_sizes_are_compressed(
    capsysbinary, layerpeek_env, plain_registry, formats
):
    status, out, _ = run(capsysbinary, "inspect", formats["tree"])
    text = out.decode()
    assert status == 0
    assert "COMPRESSED" in text and "FORMAT" in text and "compressed" in text.splitlines()[-1]
    assert any(line.startswith("Created    20") for line in text.splitlines())
    assert "eStargz" in text
