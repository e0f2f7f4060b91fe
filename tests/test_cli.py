"""The `layerpeek` command end to end against the real registry, in every auth mode."""

import base64
import gc
import json
import os
import subprocess
import sys

import pytest

from fixtures.catalog import LATE_TXT
from layerpeek.cli import jsonl
from layerpeek.cli.main import main, render_entry
from layerpeek.core.layers.entry import TarEntry
from layerpeek.core.models import EntryInfo

INSPECT_KEYS = {
    "reference",
    "digest",
    "platform",
    "platforms",
    "manifest_digest",
    "layers",
    "history",
    "config",
    "created",
}
LAYER_KEYS = {"index", "digest", "size", "media_type", "format", "created_by"}
HISTORY_KEYS = {"created_by", "empty_layer", "layer"}
CONFIG_KEYS = {"env", "entrypoint", "cmd", "user", "working_dir", "labels", "exposed_ports"}
ENTRY_KEYS = {"layer", "path", "type", "size", "mode", "uid", "gid", "mtime", "link", "cut"}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def login(docker_config, host: str, user: str = "alice", password: str = "wonderland") -> None:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (docker_config / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))


def test_inspect_json_has_the_contract_keys(capsys, layerpeek_env, plain_registry, catalog):
    status, out, _ = run(capsys, "inspect", catalog.history.ref(plain_registry.host), "--json")
    assert status == 0
    report = json.loads(out)
    assert set(report) == INSPECT_KEYS
    assert all(set(layer) == LAYER_KEYS for layer in report["layers"])
    assert all(set(step) == HISTORY_KEYS for step in report["history"])
    assert set(report["config"]) == CONFIG_KEYS
    assert report["config"]["labels"] == catalog.history.config["config"]["Labels"]


def test_inspect_table_escapes_control_characters(capsys, layerpeek_env, plain_registry, catalog):
    status, out, _ = run(capsys, "inspect", catalog.history.ref(plain_registry.host))
    assert status == 0
    assert "\x1b" not in out and "\r" not in out
    assert "\\x1b" in out
    assert "LAYER" in out and "CREATED BY" in out


def test_inspect_all_platforms_side_by_side(capsys, layerpeek_env, plain_registry, catalog):
    ref = catalog.multi.ref(plain_registry.host)
    status, out, _ = run(capsys, "inspect", ref, "--all-platforms")
    assert status == 0
    for platform in catalog.multi.platforms:
        assert platform in out
    status, out, _ = run(capsys, "inspect", ref, "--all-platforms", "--json")
    assert [p["platform"] for p in json.loads(out)["platforms"]] == catalog.multi.platforms


def test_ls_json_lines_and_limit(capsys, layerpeek_env, plain_registry, catalog):
    ref = catalog.gzip.ref(plain_registry.host)
    status, out, _ = run(capsys, "ls", ref, "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert status == 0 and all(set(line) == ENTRY_KEYS for line in lines)
    assert len(lines) == sum(len(layer.entries) for layer in catalog.gzip.layers)
    assert not any(
        line["path"].startswith(("/", "./")) or line["path"].endswith("/") for line in lines
    )
    status, out, _ = run(capsys, "ls", ref, "--layer", "1", "--limit", "2", "--json")
    assert [json.loads(line)["layer"] for line in out.splitlines()] == [1, 1]


def test_ls_table_marks_types(capsys, layerpeek_env, plain_registry, catalog):
    status, out, _ = run(capsys, "ls", catalog.plain.ref(plain_registry.host))
    assert status == 0
    assert out.startswith("# layer 0")
    assert any(line.startswith("d") and line.endswith("/") for line in out.splitlines())
    assert any(line.startswith("c") for line in out.splitlines())


def test_ls_table_shows_hostile_names_escaped(capsys, layerpeek_env, plain_registry, catalog):
    status, out, _ = run(capsys, "ls", catalog.bad.hostile_names.ref(plain_registry.host))
    assert status == 0
    assert "new\\nline" in out and "bad\\xffname" in out and "../../etc/evil" in out


def test_the_cli_hands_its_frozen_startup_objects_back_on_exit(capsys, layerpeek_env):
    # Frozen while it runs (core.runtime.tuned_process, tested in test_pump), not after.
    interval = sys.getswitchinterval()
    assert gc.get_freeze_count() == 0
    assert main(["inspect", "not a reference"]) == 3
    assert gc.get_freeze_count() == 0 and sys.getswitchinterval() == interval
    assert capsys.readouterr().err.count("\n") == 1


def test_render_entry_is_ls_like():
    entry = EntryInfo(
        layer=0,
        path="bin/sh",
        type="symlink",
        size=0,
        mode=0o777,
        uid=0,
        gid=0,
        mtime=0,
        link="busybox",
    )
    assert render_entry(entry).startswith("lrwxrwxrwx")
    assert render_entry(entry).endswith("bin/sh@ -> busybox")


def test_ls_json_lines_are_the_models_dumped():
    """``ls --json`` writes its lines straight from the tar entries: the same text as
    ``json.dumps`` of each ``EntryInfo``, whatever the names hold."""
    entries = [
        TarEntry("usr/bin/ls", "file", 142_144, 0o755, 0, 0, 1_700_000_000),
        TarEntry("bin/sh", "symlink", 0, 0o777, 1000, 1000, -1, link="busybox"),
        TarEntry('caf\u00e9/"quoted"\\back\nline\ttab', "dir", 0, 0o700, 0, 0, 0),
        TarEntry("bad/\udcff\udcfe", "hardlink", 0, 0o644, 0, 0, 0, link="\u2603/\U0001f600"),
        TarEntry("a/.wh..wh..opq", "opaque", 0, 0, 0, 0, 0),
        TarEntry("x" * 4096, "file", 2**62, 0o7777, 2**31, 2**31, 2**40, cut=True),
        TarEntry("\x00\x1b[2J\x7f", "fifo", 0, 0o600, 0, 0, 0),
    ]
    expected = "".join(
        json.dumps(EntryInfo.of(3, entry).model_dump(), ensure_ascii=True) + "\n"
        for entry in entries
    )
    assert jsonl.lines(3, entries) == expected
    assert jsonl.lines(0, []) == ""


def test_cat_writes_the_file_bytes(capfdbinary, layerpeek_env, plain_registry, catalog):
    status = main(["cat", catalog.gzip.ref(plain_registry.host), "app/data/late.txt"])
    assert status == 0
    assert capfdbinary.readouterr().out == LATE_TXT


def test_pull_writes_a_verified_blob(capsys, tmp_path, layerpeek_env, plain_registry, catalog):
    target = tmp_path / "layer.tar.gz"
    status, out, _ = run(
        capsys,
        "pull",
        catalog.gzip.ref(plain_registry.host),
        "--layer",
        "1",
        "-o",
        str(target),
        "--json",
    )
    assert status == 0
    assert target.read_bytes() == catalog.gzip.layers[1].blob
    assert json.loads(out)["digest"] == catalog.gzip.layers[1].digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docker-config", "layer.tar.gz"]


def test_tags(capsys, layerpeek_env, plain_registry, catalog):
    status, out, _ = run(capsys, "tags", f"{plain_registry.host}/{catalog.tags.repo}")
    assert status == 0 and set(out.split()) == set(catalog.tags.tags)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["inspect", "Bad/Reference"], "lowercase"),
        (["inspect", "{host}/test/gzip:missing"], "MANIFEST_UNKNOWN"),
        (["inspect", "{host}/test/multi", "--platform", "linux/s390x"], "available: linux/amd64"),
        (["inspect", "{host}/test/gzip", "--platform", "linux"], "os/arch"),
        (["ls", "{host}/test/gzip", "--layer", "9"], "out of range"),
        (["cat", "{host}/test/whiteouts", "etc/secret.key"], "deleted in layer 1"),
        (["ls", "{host}/bad/truncated-gzip"], "after"),
    ],
)
def test_errors_are_one_line_without_traceback(
    capsys, layerpeek_env, plain_registry, argv, message
):
    status, _, err = run(capsys, *[a.format(host=plain_registry.host) for a in argv])
    assert status == 3
    assert err.count("\n") == 1 and err.startswith("layerpeek: error: ")
    assert message in err
    assert "Traceback" not in err


OTHER_SYNTAX = ("layer=", "layer:", "platform=", "platform:", "argument", "option")


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["cat", "{host}/test/whiteouts", "etc/secret.key"], "; read it with --layer 0"),
        (["cat", "{host}/test/whiteouts", "opt/app/a"], "; read it with --layer 0"),
        (["cat", "{host}/fs/overlay:v1", "etc/os-release", "--layer", "0"], "without --layer,"),
        (["inspect", "{host}/test/multi", "--platform", "linux/s390x"], "--platform linux/amd64"),
    ],
)
def test_error_hints_name_the_commands_own_options(
    capsys, layerpeek_env, plain_registry, catalog, fs_images, argv, hint
):
    status, _, err = run(capsys, *[a.format(host=plain_registry.host) for a in argv])
    assert status == 3 and hint in err
    assert not [other for other in OTHER_SYNTAX if other in err]


def test_basic_auth_mode(capsys, layerpeek_env, basic_registry, catalog):
    ref = catalog.gzip.ref(basic_registry.host)
    status, _, err = run(capsys, "inspect", ref)
    assert status == 3 and ("denied" in err or "refused" in err)
    login(layerpeek_env, basic_registry.host)
    for argv in (
        ["inspect", ref],
        ["ls", ref, "--limit", "3"],
        ["tags", ref.rsplit(":", 1)[0]],
        ["cat", ref, "app/data/late.txt"],
    ):
        status, _, err = run(capsys, *argv)
        assert status == 0, err


def test_basic_auth_wrong_password(capsys, layerpeek_env, basic_registry, catalog):
    login(layerpeek_env, basic_registry.host, password="not-her-password")
    status, _, err = run(capsys, "inspect", catalog.gzip.ref(basic_registry.host))
    assert status == 3 and "alice" in err and "not-her-password" not in err


def test_token_auth_mode(capsys, tmp_path, layerpeek_env, token_registry, catalog):
    ref = catalog.gzip.ref(token_registry.host)
    for argv in (
        ["inspect", ref],
        ["ls", ref, "--limit", "3"],
        ["pull", ref, "--layer", "0", "-o", str(tmp_path / "l0")],
    ):
        status, _, err = run(capsys, *argv)
        assert status == 0, err
    private = catalog.private.ref(token_registry.host)
    status, _, err = run(capsys, "inspect", private)
    assert status == 3 and "private/secret" in err
    login(layerpeek_env, token_registry.host)
    assert run(capsys, "inspect", private)[0] == 0


def test_console_script_runs_as_a_program(layerpeek_env, plain_registry, catalog):
    """The installed entry point, in a child process, as a user or CI would call it."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "layerpeek.cli",
            "inspect",
            "--json",
            catalog.zstd.ref(plain_registry.host),
        ],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["digest"] == catalog.zstd.digest
    assert result.stderr == ""  # not a terminal: no progress output
