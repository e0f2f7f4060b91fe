#!/usr/bin/env bash
# Install what the tests need (the docker-registry binary, the [test] extra), then lint, type-check
# the core and the front ends and run the whole suite. This is the project's one test command;
# .ci/run calls it. Its arguments go to pytest (bash tests/check.sh -m unit -k reference).
# Python packages go into the active virtual environment, else the project's .venv, created
# here if missing (scripts/venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# First, so that a Python that cannot make a virtual environment says so (one line) before
# anything is installed.
. scripts/venv.sh
use_venv "$PWD"
# As `activate` would: the tests find the console scripts (layerpeek-mcp) on PATH.
export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH"
python=$venv/bin/python

# umoci and skopeo unpack pushed images independently, to check the merged filesystem view.
# redis-server backs the shared-cache tests (LAYERPEEK_CACHE_URL).
if ! command -v docker-registry >/dev/null 2>&1 || ! command -v umoci >/dev/null 2>&1 \
  || ! command -v skopeo >/dev/null 2>&1 || ! command -v redis-server >/dev/null 2>&1 \
  || ! command -v rpmbuild >/dev/null 2>&1 || ! command -v go >/dev/null 2>&1 \
  || ! command -v npm >/dev/null 2>&1 || ! command -v readelf >/dev/null 2>&1 \
  || ! command -v debootstrap >/dev/null 2>&1; then
  echo "installing Debian's docker-registry (the real registry the tests run against), umoci, skopeo, redis-server" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    docker-registry umoci skopeo redis-server \
    rpm golang-go npm binutils debootstrap  # the package tools the inventory tests take as truth
fi

"$python" -m pip install -q --disable-pip-version-check -e '.[test]'
"$python" -m ruff check .
"$python" -m ruff format --check .

# mypy (strict, pyproject.toml's [tool.mypy]) reads modules by their installed names,
# layerpeek.core for core/: a directory of links gives it that layout.
typed="$(mktemp -d)"
trap 'rm -rf "$typed"' EXIT
mkdir "$typed/layerpeek"
for dir in core cli server bot links; do ln -s "$PWD/$dir" "$typed/layerpeek/$dir"; done
MYPYPATH="$typed" "$python" -m mypy -p layerpeek.core -p layerpeek.cli -p layerpeek.server \
  -p layerpeek.bot -p layerpeek.links

"$python" -m pytest "$@"
