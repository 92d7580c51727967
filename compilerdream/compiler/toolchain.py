"""Locating LLVM/clang executables and compiling C/C++ sources to bitcode."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .errors import CompileError, ToolNotFoundError

#: CompilerGym's front-end flags: optimizations requested but no LLVM passes run,
#: so functions carry no `optnone`/`noinline` and the passes see plain -O0 IR.
DEFAULT_FRONTEND_FLAGS: tuple[str, ...] = ("-O1", "-Xclang", "-disable-llvm-passes")

_SUPPORTED_VERSIONS = (19, 20, 21, 22)

_INSTALL_HINT = {
    "clang": "sudo apt-get install clang-19",
    "clang++": "sudo apt-get install clang-19",
    "opt": "sudo apt-get install llvm-19",
    "llvm-link": "sudo apt-get install llvm-19",
    "llvm-dis": "sudo apt-get install llvm-19",
    "llvm-stress": "sudo apt-get install llvm-19",
    "llvm-size": "sudo apt-get install llvm-19",
    "csmith": "sudo apt-get install csmith libcsmith-dev",
}


def _engine_major() -> int | None:
    try:
        from ._core import LLVM_VERSION

        return int(str(LLVM_VERSION).split(".")[0])
    except Exception:  # the engine may not be built when only tools are needed
        return None


def find_tool(name: str, required: bool = True) -> str | None:
    """Path of an LLVM tool matching the engine's LLVM version (`opt-19`), else any version.

    Environment variable COMPILERDREAM_<NAME> (e.g. COMPILERDREAM_CLANG) overrides.
    """
    override = os.environ.get("COMPILERDREAM_" + name.upper().replace("-", "_").replace("+", "X"))
    if override:
        return override
    major = _engine_major()
    versions = ([major] if major else []) + [v for v in _SUPPORTED_VERSIONS if v != major]
    candidates = [f"{name}-{v}" for v in versions] + [name]
    candidates += [f"/usr/lib/llvm-{v}/bin/{name}" for v in versions]
    for candidate in candidates:
        path = shutil.which(candidate)
        if path:
            return path
    if required:
        hint = _INSTALL_HINT.get(name, "install LLVM 19")
        raise ToolNotFoundError(f"'{name}' was not found on PATH (tried {', '.join(candidates[:3])}, ...); install it with: {hint}")
    return None


def compile_source(
    source: str | os.PathLike,
    flags: Sequence[str] = DEFAULT_FRONTEND_FLAGS,
    include_dirs: Sequence[str] = (),
    timeout: float = 300.0,
    language: str | None = None,
    headers: list[str] | None = None,
) -> bytes:
    """Compile one C/C++ file to LLVM bitcode (bytes) with clang.

    When `headers` is a list, the non-system headers the file included (clang -MMD)
    are appended to it as absolute paths. Raises CompileError carrying clang's first
    error lines when compilation fails.
    """
    path = Path(source).expanduser().resolve()
    if not path.is_file():
        from .errors import BenchmarkNotFoundError

        raise BenchmarkNotFoundError(f"source file not found: {path}")
    is_cxx = language == "c++" or (language is None and path.suffix.lower() in (".cc", ".cpp", ".cxx", ".c++", ".hpp"))
    clang = find_tool("clang++" if is_cxx else "clang")
    with tempfile.TemporaryDirectory(prefix="compilerdream-cc-") as tmp:
        out, depfile = Path(tmp) / "out.bc", Path(tmp) / "out.d"
        cmd = [clang, "-emit-llvm", "-c", "-w", *flags, *[f"-I{d}" for d in include_dirs], str(path), "-o", str(out)]
        if headers is not None:
            cmd += ["-MMD", "-MF", str(depfile)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp)
        except subprocess.TimeoutExpired as exc:
            raise CompileError(f"clang timed out after {timeout:.0f}s compiling {path}") from exc
        if proc.returncode != 0 or not out.exists():
            lines = [ln for ln in proc.stderr.splitlines() if "error" in ln] or proc.stderr.strip().splitlines()
            message = "\n".join(lines[:5]) or f"clang exited with {proc.returncode}"
            raise CompileError(f"clang could not compile {path}:\n{message}")
        if headers is not None and depfile.exists():
            headers.extend(str(Path(tmp, dep).resolve()) for dep in parse_depfile(depfile.read_text())[1:])
        return out.read_bytes()


def parse_depfile(text: str) -> list[str]:
    """The prerequisites of a make-style dependency file (clang -MD), in order: source first, then headers.

    Lines are continued by a backslash at their end; POSIX shell splitting then reads the
    `\\ ` escapes of spaces inside paths.
    """
    _, _, deps = text.replace("\\\n", " ").partition(": ")
    return shlex.split(deps)
