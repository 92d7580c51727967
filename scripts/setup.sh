#!/usr/bin/env bash
# Idempotent set-up on Debian/Ubuntu: LLVM 19 + clang 19 + csmith from apt when
# missing, torch (CPU build) when missing, then compilerdream itself (editable).
# Every action is printed; anything already present is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "[setup] $*"; }
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

APT_PACKAGES=(llvm-19-dev llvm-19 clang-19 csmith libcsmith-dev)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    say "missing ${missing[*]} and apt-get is not available: install LLVM 19 (llvm-19-dev, clang-19) and csmith yourself"
    exit 1
  fi
  say "apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "apt packages present: ${APT_PACKAGES[*]}"
fi

PY="${PYTHON:-python3}"
PIP=("$PY" -m pip install -q --disable-pip-version-check)
if ! "$PY" -c "import torch" 2>/dev/null; then
  # An explicit version: a bare 'torch' would pull a multi-GB CUDA build.
  say "pip install torch==2.13.0 (CPU build)"
  "${PIP[@]}" torch==2.13.0
else
  say "torch present: $("$PY" -c 'import torch; print(torch.__version__)')"
fi

need_build=1
if "$PY" -c "import compilerdream.compiler._core" 2>/dev/null; then
  if [ compilerdream/compiler/_core/engine.cpp -ot "$(ls compilerdream/compiler/_core/_engine*.so 2>/dev/null | head -1 || echo /nonexistent)" ]; then
    need_build=0
  fi
fi
if "$PY" -c "import pybind11, setuptools, wheel" 2>/dev/null; then :; else
  say "pip install pybind11 setuptools wheel (build requirements)"
  "${PIP[@]}" "pybind11>=2.10" "setuptools>=64" wheel
fi
if [ "$need_build" = "1" ] || ! "$PY" -m pip show compilerdream >/dev/null 2>&1 || [ "${1:-}" = "--force" ]; then
  say "pip install -e .[agent,dev] (builds the native LLVM engine)"
  "${PIP[@]}" --no-build-isolation --config-settings editable_mode=compat -e ".[agent,dev]"
else
  say "compilerdream installed and its engine is up to date"
fi
say "ready: $("$PY" -c 'import compilerdream.compiler._core as c; print("LLVM", c.LLVM_VERSION)')"
