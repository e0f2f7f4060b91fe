"""Packaging: the base install is the core and the CLI, each other front end is an extra.

The CLI must run without any extra's package (nothing optional imported on its path), a front
end started without its extra says in one line what to install, and every third-party module
the code imports is declared in pyproject.toml.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from layerpeek.core.extras import EXTRAS

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("core", "cli", "server", "bot", "links", "tests", "bench")
FIRST_PARTY = {"layerpeek", "fixtures"}

CLI_HELP = """
import contextlib, sys
from layerpeek.cli.main import main
with contextlib.suppress(SystemExit):
    main(["--help"])
sys.stderr.write(" ".join(sorted({name.partition(".")[0] for name in sys.modules})))
"""

WITHOUT = """
import sys
front_end, *absent = sys.argv[1:]
for name in absent:
    sys.modules[name] = None  # what an install without the package looks like to import
if front_end == "bot":
    from layerpeek.bot.start import main
else:
    from layerpeek.server.start import main
sys.exit(main(["--help"]))
"""


NO_REDIS = """
import sys
sys.modules["redis"] = None  # what an install without the [redis] extra looks like
from layerpeek.core.cache.interface import open_cache
from layerpeek.core.errors import LayerpeekError
from layerpeek.core.settings import Settings
try:
    open_cache(Settings(cache_url="redis://127.0.0.1:6379/0"))
except LayerpeekError as error:
    print(error)
"""


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120
    )


def test_the_cli_imports_no_optional_package():
    run = _run(CLI_HELP)
    assert run.returncode == 0, run.stderr
    assert "usage: layerpeek" in run.stdout
    loaded = set(run.stderr.split())
    optional = set().union(*EXTRAS.values())
    assert optional == {"discord", "mcp", "redis", "PIL", "starlette", "uvicorn"}
    assert loaded & optional == set()


@pytest.mark.parametrize(
    ("front_end", "extra", "absent"),
    [("bot", "bot", "discord"), ("bot", "bot", "PIL"), ("server", "mcp", "mcp")],
)
def test_a_front_end_without_its_extra_says_what_to_install(front_end, extra, absent):
    run = _run(WITHOUT, front_end, absent)
    prog = "layerpeek-bot" if front_end == "bot" else "layerpeek-mcp"
    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr == f"{prog}: install layerpeek[{extra}] ({absent} is not installed)\n"


@pytest.mark.parametrize("front_end", ["bot", "server"])
def test_a_front_end_with_its_extra_starts(front_end):
    run = _run(WITHOUT, front_end)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage: layerpeek-")


def test_a_redis_cache_url_without_the_extra_is_one_clear_error():
    run = _run(NO_REDIS)
    assert run.returncode == 0, run.stderr
    assert run.stdout == (
        "LAYERPEEK_CACHE_URL is a Redis URL: install layerpeek[redis] (redis is not installed)\n"
    )


def _imported(path: Path) -> set[str]:
    """Top-level names of the absolute imports in one file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return names


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_package_is_declared():
    imported = set().union(*(_imported(p) for d in SOURCES for p in (ROOT / d).rglob("*.py")))
    third_party = imported - set(sys.stdlib_module_names) - FIRST_PARTY
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = [project["dependencies"], *project["optional-dependencies"].values()]
    declared = {_normal(Requirement(line).name) for group in groups for line in group}
    distributions = packages_distributions()
    undeclared = {
        name: distributions.get(name)
        for name in third_party
        if not {_normal(d) for d in distributions.get(name, [name])} & declared
    }
    assert undeclared == {}
