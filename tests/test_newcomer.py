"""The README's two commands, run as a newcomer runs them: from a fresh copy of the project,
with no virtual environment active and nothing of layerpeek installed.

``./try`` goes from nothing to an answer (it makes ``.venv`` and installs the base command);
``tests/check.sh`` makes ``.venv`` when no environment is active and runs the suite from it,
where Debian's and Ubuntu's own Python refuses ``pip install`` (PEP 668). Both say in one line
what to install when the Python cannot make a virtual environment (no python3-venv).
"""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fixtures.catalog import Catalog
from fixtures.commands import (
    PROJECT,
    one_line,
    project_copy,
    python_without_venv,
    without_venv,
)
from layerpeek.cli.main import _parser
from layerpeek.core.text import short_digest

# A guard against a hung install, not a measure: the installs take well under a minute.
INSTALL_TIMEOUT = 900


def run(
    command: list[str | Path], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=INSTALL_TIMEOUT,
    )


@pytest.mark.slow
def test_try_answers_from_a_fresh_clone(
    plain_registry: Any, catalog: Catalog, tmp_path: Path
) -> None:
    project = project_copy(tmp_path / "clone")
    home = tmp_path / "user"
    (home / "docker").mkdir(parents=True)
    env = without_venv() | {
        "DOCKER_CONFIG": str(home / "docker"),
        "LAYERPEEK_CACHE_DIR": str(home / "cache"),
    }
    image = catalog.gzip
    reference = image.ref(plain_registry.host)

    # From another directory, as `path/to/clone/try` would be run.
    first = run([project / "try", reference], env, tmp_path)

    assert first.returncode == 0, first.stderr
    for layer in image.layers:
        assert short_digest(layer.digest) in first.stdout
    assert "creating" in first.stderr and "installing layerpeek" in first.stderr
    assert (project / ".venv" / "bin" / "layerpeek").is_file()

    # Installed now: straight to the command, and any layerpeek command passes through.
    listing = run([project / "try", "ls", reference, "--layer", "0"], env, tmp_path)

    assert listing.returncode == 0, listing.stderr
    assert "etc/hostname" in listing.stdout
    assert listing.stderr == ""


@pytest.mark.slow
def test_check_makes_a_venv_when_none_is_active(tmp_path: Path) -> None:
    project = project_copy(tmp_path / "clone")

    done = run(["bash", "tests/check.sh", "-q", "tests/test_reference.py"], without_venv(), project)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "no virtual environment is active: creating" in done.stderr
    assert (project / ".venv" / "bin" / "pytest").is_file()
    assert re.search(r"\d+ passed", done.stdout), done.stdout[-3000:]


@pytest.mark.parametrize("command", [["./try", "alpine"], ["bash", "tests/check.sh"]])
def test_a_python_without_venv_names_the_package(command: list[str], tmp_path: Path) -> None:
    project = project_copy(tmp_path / "clone")
    env = without_venv(path_first=python_without_venv(tmp_path / "python"))

    done = run(command, env, project)

    assert done.returncode == 1
    line = one_line(done.stderr)
    assert line.endswith("apt install python3-venv"), line
    assert "Traceback" not in line
    assert not (project / ".venv").exists()


def test_try_knows_every_layerpeek_command() -> None:
    """``./try REF`` inspects REF unless REF names a command: its list is the command's."""
    script = (PROJECT / "try").read_text()
    listed = re.search(r'^commands="([^"]*)"$', script, re.MULTILINE)
    assert listed is not None
    (subcommands,) = [
        action for action in _parser()._actions if isinstance(action, argparse._SubParsersAction)
    ]
    assert set(listed.group(1).split()) == set(subcommands.choices)
