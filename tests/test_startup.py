"""Start-up: the ``layerpeek`` command loads what the command being run needs, no more.

``--help`` and ``--version`` answer from the parser alone, without the core; ``ls`` reads
layers without the analyses of the merged filesystem, the package inventory or the export.
Each command runs in a fresh interpreter, which then names every module it loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

RUN = """
import sys
from layerpeek.cli.main import main
try:
    status = main(sys.argv[1:])
except SystemExit as exit:  # --help and --version leave through argparse
    status = exit.code or 0
sys.stdout.flush()
sys.stderr.write("\\nloaded: " + " ".join(sorted(sys.modules)) + "\\n")
sys.exit(status)
"""

CORE = (
    "layerpeek.core.service",
    "layerpeek.core.models",
    "layerpeek.core.settings",
    "layerpeek.core.registry.client",
    "pydantic",
    "pydantic_settings",
)
"""The engine and its answer models: a command that parsed loads them, ``--help`` does not."""

OTHER_COMMANDS = (
    "layerpeek.core.fs.analyses",
    "layerpeek.core.fs.reports",
    "layerpeek.core.fs.triage",
    "re2",
    "layerpeek.core.packages.inventory",
    "layerpeek.core.packages.model",
    "packageurl",
    "layerpeek.core.export",
)
"""What only trace, removed, find, diff, triage, packages and export use."""


def _layerpeek(*argv: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    run = subprocess.run(
        [sys.executable, "-c", RUN, *argv], capture_output=True, text=True, timeout=120
    )
    _, _, modules = run.stderr.rpartition("\nloaded: ")
    return run, set(modules.split())


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["ls", "--help"]])
def test_help_and_version_load_no_core(argv):
    run, loaded = _layerpeek(*argv)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(("usage: layerpeek", "layerpeek "))
    assert "layerpeek.cli.main" in loaded
    assert loaded & {*CORE, *OTHER_COMMANDS} == set()


def test_ls_loads_no_other_command(layerpeek_env, plain_registry, catalog):
    run, loaded = _layerpeek("ls", catalog.history.ref(plain_registry.host), "--json")
    assert run.returncode == 0, run.stderr
    entries = [json.loads(line) for line in run.stdout.splitlines()]
    assert entries and all("path" in entry for entry in entries)
    assert set(CORE) <= loaded
    assert loaded & set(OTHER_COMMANDS) == set()


def test_the_command_freezes_what_is_alive_before_the_process_ends():
    """``entry`` ends the process with every object frozen, so the interpreter's last
    collection skips them; ``main`` itself hands them back (test_cli)."""
    check = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: sys.stderr.write(f'frozen at exit: {gc.get_freeze_count()}'))\n"
        "sys.argv = ['layerpeek', 'inspect', 'not a reference']\n"
        "from layerpeek.cli.main import entry\n"
        "entry()\n"
    )
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert run.returncode == 3, run.stderr
    frozen = int(run.stderr.rpartition("frozen at exit: ")[2])
    assert frozen > 10_000
