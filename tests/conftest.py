"""Shared test fixtures: the small C/C++/IR programs of tests/fixtures/programs, compiled once per session.

Compiling is clang's job and takes ~0.1-0.5 s per program, so each program is
compiled once (with CompilerGym's front-end flags, `-O1 -Xclang -disable-llvm-passes`)
into a session temporary directory and handed to tests as a path to bitcode.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FIXTURE_PROGRAMS = Path(__file__).resolve().parent / "fixtures" / "programs"

#: csmith programs include csmith.h (Debian: package libcsmith-dev, /usr/include/csmith).
CSMITH_INCLUDE = "/usr/include/csmith"

#: Hand-written programs (C and one C++) and csmith programs, by fixture name (file stem).
C_PROGRAMS = ("qsort", "crc32", "matmul", "statemachine", "unit_checks")
CXX_PROGRAMS = ("shapes",)
CSMITH_PROGRAMS = ("csmith_258", "csmith_94", "csmith_333")
#: Textual IR fixtures, used as they are.
IR_PROGRAMS = ("autophase_hand", "instcombine_fixpoint_abort")


def _source_of(name: str) -> Path:
    for suffix in (".c", ".cc", ".ll"):
        path = FIXTURE_PROGRAMS / (name + suffix)
        if path.exists():
            return path
    raise FileNotFoundError(f"no fixture program named {name} in {FIXTURE_PROGRAMS}")


def _compile(name: str, out_dir: Path, debug: bool = False) -> Path:
    """Compile fixture `name` to bitcode in `out_dir` (clang -g when `debug`)."""
    from compilerdream.compiler.toolchain import DEFAULT_FRONTEND_FLAGS, compile_source

    source = _source_of(name)
    if source.suffix == ".ll":
        return source
    include_dirs = (CSMITH_INCLUDE,) if name.startswith("csmith_") else ()
    flags = (*DEFAULT_FRONTEND_FLAGS, "-g") if debug else DEFAULT_FRONTEND_FLAGS
    if name.startswith("csmith_") and not Path(CSMITH_INCLUDE, "csmith.h").exists():
        pytest.skip("csmith.h not installed (apt-get install libcsmith-dev)")
    data = compile_source(source, flags=flags, include_dirs=include_dirs)
    out = out_dir / (name + (".g" if debug else "") + ".bc")
    out.write_bytes(data)
    return out


class CompiledPrograms:
    """Lazily compiled fixture programs: `program_bitcode["qsort"]` is a Path to qsort.bc."""

    def __init__(self, out_dir: Path, debug: bool = False):
        self.out_dir = out_dir
        self.debug = debug
        self._paths: dict[str, Path] = {}

    def __getitem__(self, name: str) -> Path:
        if name not in self._paths:
            self._paths[name] = _compile(name, self.out_dir, debug=self.debug)
        return self._paths[name]


@pytest.fixture(scope="session")
def program_bitcode(tmp_path_factory) -> CompiledPrograms:
    """Fixture programs compiled to bitcode (CompilerGym's front-end flags), by name."""
    return CompiledPrograms(tmp_path_factory.mktemp("programs"))


@pytest.fixture(scope="session")
def debug_bitcode(tmp_path_factory) -> CompiledPrograms:
    """The same programs compiled with `clang -g` (debug info, llvm.dbg.cu, dbg records)."""
    return CompiledPrograms(tmp_path_factory.mktemp("programs-g"), debug=True)


@pytest.fixture(scope="session")
def opt_tool() -> str:
    """Path of `opt` matching the engine's LLVM (opt-19); the test is skipped without it."""
    from compilerdream.compiler.toolchain import find_tool

    path = find_tool("opt", required=False)
    if path is None or shutil.which(path) is None:
        pytest.skip("opt (LLVM 19) is not installed")
    return path
