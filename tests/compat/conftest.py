"""Fixtures for the compiler_gym compatibility tests: this checkout's compiler_gym, data roots, script runner.

Every test runs with an empty data root ($COMPILERDREAM_DATA) and an empty CompilerGym site data
directory ($COMPILER_GYM_SITE_DATA), so no dataset is installed unless a test installs one: the bundled cbench-v1/crc32 is what the scripts use, and
`cbench_data_root` installs a small cbench-v1 (the real LLVM 10 crc32.bc from CompilerGym's
wheel and our qsort.c) under CompilerGym's name, the way a user would.
"""

from __future__ import annotations

import bz2
import io
import sys
import tarfile
from pathlib import Path

import pytest
from compat_helpers import COMPAT_DIR, CRC32_BC, PROGRAMS, run_script

# The tests are about this checkout's compiler_gym, whatever an installed one (ours or Meta's) says.
if str(COMPAT_DIR) not in sys.path:
    sys.path.insert(0, str(COMPAT_DIR))
_loaded = sys.modules.get("compiler_gym")
if _loaded is not None and not str(getattr(_loaded, "__file__", "")).startswith(str(COMPAT_DIR)):
    for name in [m for m in sys.modules if m == "compiler_gym" or m.startswith("compiler_gym.")]:
        del sys.modules[name]


@pytest.fixture(scope="session")
def empty_data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cg-data-empty")


@pytest.fixture(scope="session")
def empty_site_data(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cg-site-data-empty")


@pytest.fixture(autouse=True)
def _isolated_data_root(monkeypatch, empty_data_root, empty_site_data):
    monkeypatch.setenv("COMPILERDREAM_DATA", str(empty_data_root))
    monkeypatch.setenv("COMPILER_GYM_SITE_DATA", str(empty_site_data))  # not a real CompilerGym's datasets
    monkeypatch.setenv("COMPILERDREAM_QUIET_COMPILER_GYM", "1")


@pytest.fixture(scope="session")
def qsort_bitcode() -> bytes:
    from compilerdream.compiler.toolchain import compile_source

    return compile_source(PROGRAMS / "qsort.c")


@pytest.fixture(scope="session")
def cbench_data_root(tmp_path_factory, qsort_bitcode) -> Path:
    """A data root where cbench-v1 is installed from a local archive in CompilerGym's layout (crc32, qsort)."""
    from compilerdream.compiler.datasets import install_compilergym

    work = tmp_path_factory.mktemp("cg-cbench")
    tar = work / "cBench-v1.tar.bz2"
    with tarfile.open(tar, "w:bz2") as archive:
        for name, data in (("cBench-v1/crc32.bc", CRC32_BC.read_bytes()), ("cBench-v1/qsort.bc", qsort_bitcode)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    manifest = work / "manifest.bz2"
    manifest.write_bytes(bz2.compress(b"crc32\nqsort\n"))
    root = work / "data"
    install_compilergym("cbench-v1", root, from_file=tar, manifest_file=manifest, verify=False, allow_download=False)
    return root


@pytest.fixture
def run(tmp_path, empty_data_root):
    """`run(script, *args, data_root=None)`: a script's JSON summary, run in a temporary directory."""

    def _run(name: str, *args: str, data_root: Path | None = None) -> dict:
        return run_script(name, data_root or empty_data_root, tmp_path, *args)

    return _run
