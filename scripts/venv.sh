# The Python environment ./try and tests/check.sh install layerpeek into; sourced (POSIX sh).
#
# The active virtual environment if there is one ($VIRTUAL_ENV), else the project's .venv,
# created on first use: Debian's and Ubuntu's own Python refuses `pip install` outside a
# virtual environment (PEP 668, "externally-managed-environment"). Every problem is one line
# on stderr naming what to install, and exit status 1.

# pick_venv ROOT: set $venv to the environment's directory: $VIRTUAL_ENV, else ROOT/.venv.
pick_venv() {
  if [ -n "${VIRTUAL_ENV:-}" ]; then venv=$VIRTUAL_ENV; else venv=$1/.venv; fi
}

# use_venv ROOT: pick_venv, creating ROOT/.venv when no environment is active and it is
# missing; the environment has pip on return.
use_venv() {
  pick_venv "$1"
  if [ -z "${VIRTUAL_ENV:-}" ] && [ ! -x "$venv/bin/python" ]; then
    find_python
    can_make_venv "$python"
    echo "${0##*/}: no virtual environment is active: creating $venv with $python ($python_version)" >&2
    "$python" -m venv "$venv"
  fi
  # A venv made without ensurepip (python3-venv missing, or `uv venv`) has no pip: add it.
  if ! "$venv/bin/python" -c 'import pip' 2>/dev/null; then
    can_make_venv "$venv/bin/python"
    "$venv/bin/python" -m ensurepip -q
  fi
}

# find_python: set $python to $PYTHON, or the first of python3, python3.14 … python3.11 on
# PATH that is Python 3.11 or newer.
find_python() {
  if [ -n "${PYTHON:-}" ]; then
    candidates=$PYTHON
  else
    candidates="python3 python3.14 python3.13 python3.12 python3.11"
  fi
  for python in $candidates; do
    python_version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) \
      || continue
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' && return 0
  done
  first=${PYTHON:-python3}
  found=$("$first" --version 2>&1) || found="not found"
  echo "${0##*/}: layerpeek needs Python 3.11 or newer ($first: $found): install python3.11 and python3.11-venv, or set PYTHON to one" >&2
  exit 1
}

# can_make_venv PYTHON: return if PYTHON has venv and ensurepip, else name the package that
# brings them (Debian and Ubuntu split them from the interpreter into python3-venv).
can_make_venv() {
  "$1" -c 'import ensurepip, venv' 2>/dev/null && return 0
  version=$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  case ${1##*/} in
    python3) package=python3-venv ;;
    *) package=python$version-venv ;;
  esac
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo "; fi
  echo "${0##*/}: $1 (Python $version) cannot create a virtual environment, it has no ensurepip: ${sudo}apt install $package" >&2
  exit 1
}
