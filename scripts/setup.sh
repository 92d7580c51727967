#!/usr/bin/env bash
# Idempotent set-up on Debian/Ubuntu. Installs what is missing and prints every action:
#   apt: LLVM 19 + clang 19 + csmith, and a C++ compiler and Python headers for the engine;
#   a Python to install into (see "the Python to install into" below);
#   pip: torch 2.13 when missing (the build, CPU or CUDA, is up to pip's index), then compilerdream (editable),
#   then Ray (the [ray] extra) when missing.
# Options: --force rebuilds the engine and reinstalls the package;
#          --print-python prints the chosen interpreter's path on stdout (scripts/run.sh uses it).
# Everything else this script or its commands print goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
exec 3>&1 1>&2

say() { echo "[setup] $*"; }
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
FORCE=0
PRINT_PYTHON=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --print-python) PRINT_PYTHON=1 ;;
    *) say "unknown option '$arg' (known: --force, --print-python)"; exit 2 ;;
  esac
done

apt_missing() {  # prints the packages of "$@" that dpkg does not report as installed
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || echo "$pkg"
  done
}
apt_install() {
  [ $# -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null; then
    say "missing $* and apt-get is not available: install them (LLVM 19 dev files, clang 19, csmith, a C++ compiler, Python 3 with headers) yourself"
    exit 1
  fi
  say "apt-get install $*"
  $SUDO apt-get update -qq
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null; then
    say "apt-get could not install: $*"
    say "(LLVM 19 is packaged from Debian 12 and Ubuntu 24.04 on; elsewhere install LLVM 19-22 dev files"
    say " and clang by other means, then run this again with LLVM_CONFIG=/path/to/llvm-config)"
    exit 1
  fi
}

# --- system packages ---------------------------------------------------------
# LLVM 19 from apt, unless LLVM_CONFIG names another install of LLVM 19-22 to build against.
if [ -n "${LLVM_CONFIG:-}" ]; then
  llvm_major="$("$LLVM_CONFIG" --version 2>/dev/null | cut -d. -f1 || true)"
  case "$llvm_major" in
    19|20|21|22) say "LLVM from \$LLVM_CONFIG: $LLVM_CONFIG (LLVM $llvm_major); no LLVM packages installed" ;;
    *) say "LLVM_CONFIG=$LLVM_CONFIG is not an llvm-config of LLVM 19-22 (version: ${llvm_major:-none})"; exit 1 ;;
  esac
  APT_PACKAGES=(csmith libcsmith-dev)
else
  llvm_major=19
  APT_PACKAGES=(llvm-19-dev llvm-19 clang-19 csmith libcsmith-dev)
fi
command -v c++ >/dev/null || APT_PACKAGES+=(g++)
command -v python3 >/dev/null || APT_PACKAGES+=(python3)
mapfile -t missing < <(apt_missing "${APT_PACKAGES[@]}")
if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; else say "apt packages present: ${APT_PACKAGES[*]}"; fi

# --- the Python to install into ---------------------------------------------
# $PYTHON when set; else python3 of an activated virtualenv or conda environment;
# else an existing ./.venv; else python3 when pip can install into it (pyenv, or any
# interpreter the distribution does not mark EXTERNALLY-MANAGED); else a new ./.venv.
py_version() {  # "3.11": names Debian's python3.X-venv / python3.X-dev packages
  "$1" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")'
}
pip_usable() {
  "$1" - <<'EOF' 2>/dev/null
import os, sys, sysconfig, importlib.util
in_venv = sys.prefix != sys.base_prefix
managed = os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
sys.exit(0 if importlib.util.find_spec("pip") and (in_venv or not managed) else 1)
EOF
}
if [ -n "${PYTHON:-}" ]; then
  PY="$PYTHON"
  say "python from \$PYTHON: $PY"
elif [ -n "${VIRTUAL_ENV:-}${CONDA_PREFIX:-}" ] && pip_usable python3; then
  PY="$(command -v python3)"
  say "python of the active environment: $PY"
elif [ -x .venv/bin/python ]; then
  PY="$PWD/.venv/bin/python"
elif pip_usable python3; then
  PY="$(command -v python3)"
else
  base="$(command -v python3)"
  if ! "$base" -c "import ensurepip" 2>/dev/null; then
    ver="$(py_version "$base")"
    mapfile -t missing < <(apt_missing "python3-venv" "python${ver}-venv")
    apt_install "${missing[@]}"
  fi
  say "$base is managed by the system (or has no pip): creating a virtual environment in ./.venv"
  "$base" -m venv .venv
  PY="$PWD/.venv/bin/python"
fi
# Python headers, needed to build the engine (Debian ships them in python3-dev).
if ! "$PY" -c "import os, sysconfig; raise SystemExit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))" \
   && [ "$("$PY" -c 'import sys; print(sys.base_prefix)')" = "/usr" ]; then
  ver="$(py_version "$PY")"
  mapfile -t missing < <(apt_missing "python3-dev" "python${ver}-dev")
  apt_install "${missing[@]}"
fi

# --- pip packages -------------------------------------------------------------
PIP=("$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore)
if ! "$PY" -c "import torch" 2>/dev/null; then
  # An explicit version, installed before the package: a bare 'torch' requirement would let pip
  # pick the newest release. Which build comes (CPU or CUDA) is up to pip's index: a local CPU
  # wheel where the machine has one; PyPI's Linux wheel is the CUDA build (several GB). Point
  # PIP_INDEX_URL at PyTorch's CPU wheel index for the small one.
  say "pip install torch==2.13.0"
  "${PIP[@]}" torch==2.13.0
  say "installed torch $("$PY" -c 'import torch; print(torch.__version__)')"
else
  say "torch present: $("$PY" -c 'import torch; print(torch.__version__)')"
fi

need_build=1
# Asked from outside the checkout, so that only an install of *this* checkout counts (an editable
# install of a checkout that has since moved or been deleted is reinstalled).
here="$(pwd -P)"
built_major="$(cd / && "$PY" -c "
import os, sys, compilerdream.compiler._core as c
sys.exit(1) if os.path.realpath(c.__file__) != os.path.join(os.path.realpath(sys.argv[1]), 'compilerdream', 'compiler', '_core', '__init__.py') else print(c.LLVM_VERSION.split('.')[0])
" "$here" 2>/dev/null || true)"
if [ -n "$built_major" ] && [ "$built_major" = "$llvm_major" ]; then
  if [ compilerdream/compiler/_core/engine.cpp -ot "$(ls compilerdream/compiler/_core/_engine*.so 2>/dev/null | head -1 || echo /nonexistent)" ]; then
    need_build=0
  fi
fi
if "$PY" -c "import pybind11, setuptools, wheel" 2>/dev/null; then :; else
  say "pip install pybind11 setuptools wheel (build requirements)"
  "${PIP[@]}" "pybind11>=2.10" "setuptools>=64" wheel
fi
# An install made before the package shipped its second top-level package (compiler_gym) is redone.
has_compiler_gym="$("$PY" -c "import importlib.metadata as m; print('compiler_gym' in (m.distribution('compilerdream').read_text('top_level.txt') or '').split())" 2>/dev/null || true)"
if [ "$need_build" = "1" ] || [ "$has_compiler_gym" != "True" ] || [ "$FORCE" = "1" ]; then
  say "pip install -e .[agent,dev] (builds the native LLVM engine)"
  # Default (lenient) editable mode: it maps compiler_gym to compilerdream/compat/compiler_gym,
  # which the compat mode's plain path entry cannot.
  "${PIP[@]}" --no-build-isolation -e ".[agent,dev]"
else
  say "compilerdream installed and its engine is up to date"
fi
# The [ray] extra (--executor ray, --env_backend ray; setup.py's pin), also for installs made before it existed.
if ! "$PY" -c "import ray" 2>/dev/null; then
  say "pip install 'ray>=2.9,<3' (the [ray] extra)"
  "${PIP[@]}" "ray>=2.9,<3"
fi
say "ready: $("$PY" -c 'import compilerdream.compiler._core as c; print("LLVM", c.LLVM_VERSION)')"
say "python: $PY"
if [ "$PRINT_PYTHON" = "1" ]; then echo "$PY" >&3; fi
