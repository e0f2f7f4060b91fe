"""The command on a real terminal (a pseudo-terminal): the progress line is erased before
output, long reads show progress, and binary bytes are not thrown at the screen."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from fixtures.catalog import LATE_TXT
from layerpeek.cli.main import main

BINARY = "app/data/filler-0.bin"  # 512 KiB of random bytes


def on_terminal(*argv: str, stdout: Path | None = None) -> tuple[int, str]:
    """Run ``layerpeek ARGV`` with stderr, and stdout unless redirected to ``stdout``, on one
    pseudo-terminal; returns the status and everything the terminal received."""
    master, slave = pty.openpty()
    out = stdout.open("wb") if stdout else slave
    command = [sys.executable, "-m", "layerpeek.cli", *argv]
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=slave)
    os.close(slave)
    received = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        received.append(data)
    os.close(master)
    if stdout:
        out.close()
    return child.wait(), b"".join(received).decode(errors="replace")


def visible(screen: str) -> list[str]:
    """Each line as it stays on the screen: what follows the last carriage return."""
    return [line.rstrip("\r").rsplit("\r", 1)[-1] for line in screen.split("\n")]


def test_the_progress_line_is_erased_before_output(layerpeek_env, plain_registry, catalog):
    status, screen = on_terminal("ls", catalog.gzip.ref(plain_registry.host), "--layer", "1")
    assert status == 0
    assert "listing  " in screen  # it was drawn
    lines = visible(screen)
    assert any(line.startswith("# layer 1") for line in lines)
    assert not any("listing  " in line for line in lines)


def test_merged_commands_show_progress_then_clean_output(
    monkeypatch, tmp_path, layerpeek_env, plain_registry, catalog
):
    ref = catalog.gzip.ref(plain_registry.host)
    for argv, label in (
        (["ls", ref, "--merged"], "merging  "),
        (["find", ref, "*.txt"], "searching  "),
        (["triage", ref], "triaging  "),
    ):
        # a cache of its own: layers read from a cache show no progress
        monkeypatch.setenv("LAYERPEEK_CACHE_DIR", str(tmp_path / argv[0]))
        status, screen = on_terminal(*argv)
        assert status == 0, screen
        assert label in screen, argv
        assert not any(label in line for line in visible(screen)), argv


def test_cat_to_a_file_shows_progress_on_the_terminal(
    layerpeek_env, plain_registry, catalog, tmp_path
):
    target = tmp_path / "out.bin"
    status, screen = on_terminal(
        "cat", catalog.gzip.ref(plain_registry.host), BINARY, stdout=target
    )
    assert status == 0
    assert target.read_bytes() == catalog.gzip.layers[1].files[BINARY]
    assert "reading  " in screen and not any("reading" in line for line in visible(screen))


def test_cat_refuses_a_binary_on_a_terminal_in_one_line(layerpeek_env, plain_registry, catalog):
    ref = catalog.gzip.ref(plain_registry.host)
    status, screen = on_terminal("cat", ref, BINARY)
    assert status == 2
    assert screen.strip("\r\n").count("\n") == 0
    assert screen.startswith(f"layerpeek: error: {BINARY} is binary") and "--binary" in screen
    status, screen = on_terminal("cat", ref, BINARY, "--binary")
    assert status == 0 and len(screen) > 100_000


def test_cat_shows_text_on_a_terminal(layerpeek_env, plain_registry, catalog):
    status, screen = on_terminal("cat", catalog.gzip.ref(plain_registry.host), "app/data/late.txt")
    assert status == 0 and screen.replace("\r\n", "\n") == LATE_TXT.decode()


def test_cat_writes_a_binary_to_a_pipe(capsysbinary, layerpeek_env, plain_registry, catalog):
    status = main(["cat", catalog.gzip.ref(plain_registry.host), BINARY])
    assert status == 0
    assert capsysbinary.readouterr().out == catalog.gzip.layers[1].files[BINARY]


def test_pull_to_stdout_refuses_a_terminal(layerpeek_env, plain_registry, catalog):
    status, screen = on_terminal(
        "pull", catalog.gzip.ref(plain_registry.host), "--layer", "0", "-o", "-"
    )
    assert status == 2 and "a layer blob is binary" in screen and "-o FILE" in screen
