"""make_benchmark, ClangInvocation and make_benchmark_from_command_line (CompilerGym's user-program helpers).

C and C++ files are compiled with clang (LLVM 19) using CompilerGym's front-end flags
(`-O1 -Xclang -disable-llvm-passes`: optimizations requested, none run), plus `copt`;
`.ll`/`.bc` files are read as they are; several inputs are linked with llvm-link. The
URI is `benchmark://user-v0/<hash of the bitcode>`, so the same program gets the same URI.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from compilerdream.compiler.benchmarks import C_SUFFIXES, IR_SUFFIXES
from compilerdream.compiler.benchmarks import Benchmark as _NativeBenchmark
from compilerdream.compiler.datasets.measure import link_bitcode
from compilerdream.compiler.errors import BenchmarkNotFoundError, CompileError, MalformedInputError
from compilerdream.compiler.toolchain import DEFAULT_FRONTEND_FLAGS, find_tool

from ...datasets import Benchmark
from ...errors import compilergym_errors

CXX_SUFFIXES = (".cc", ".cpp", ".cxx", ".c++")


class ClangInvocation:
    """A clang command that produces one bitcode module: `ClangInvocation(["-DN=4", "prog.c"])`."""

    def __init__(self, args: Iterable[str], system_includes: bool = True, timeout: int = 600, cwd: str | None = None):
        self.args = [str(a) for a in args]
        self.system_includes = system_includes  # clang finds its own headers; kept for CompilerGym's signature
        self.timeout = timeout
        self.cwd = cwd

    @classmethod
    def from_c_file(
        cls,
        path: str | os.PathLike,
        copt: Sequence[str] | None = None,
        system_includes: bool = True,
        timeout: int = 600,
    ) -> ClangInvocation:
        return cls(
            [*DEFAULT_FRONTEND_FLAGS, *(copt or []), str(path)], system_includes=system_includes, timeout=timeout
        )

    def _is_cxx(self) -> bool:
        return any(a.lower().endswith(CXX_SUFFIXES) for a in self.args) or "-xc++" in self.args

    def command(self, outpath: str | os.PathLike) -> list[str]:
        clang = find_tool("clang++" if self._is_cxx() else "clang")
        return [clang, *self.args, "-c", "-emit-llvm", "-w", "-o", str(outpath)]

    def compile(self) -> bytes:
        """Run clang; CompileError (a BenchmarkInitError in compiler_gym) carries its message."""
        with tempfile.TemporaryDirectory(prefix="compiler-gym-clang-") as tmp:
            out = Path(tmp) / "out.bc"
            cmd = self.command(out)
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout, cwd=self.cwd)
            except subprocess.TimeoutExpired:
                raise CompileError(f"clang timed out after {self.timeout}s: {shlex.join(cmd)}") from None
            if proc.returncode != 0 or not out.is_file():
                message = "\n".join(proc.stderr.strip().splitlines()[:5]) or f"clang exited with {proc.returncode}"
                raise CompileError(f"clang could not compile {' '.join(self.args)}:\n{message}")
            return out.read_bytes()

    def __repr__(self) -> str:
        return f"ClangInvocation({self.args!r})"


def _module_of(item, copt: Sequence[str], system_includes: bool, timeout: int) -> bytes:
    if isinstance(item, ClangInvocation):
        return item.compile()
    path = Path(item).expanduser()
    if not path.is_file():
        raise BenchmarkNotFoundError(f"make_benchmark: input file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in C_SUFFIXES:
        return ClangInvocation.from_c_file(path, copt=copt, system_includes=system_includes, timeout=timeout).compile()
    if suffix in IR_SUFFIXES:
        return _NativeBenchmark.from_file(path).data
    raise MalformedInputError(
        f"make_benchmark: unsupported input {path}: expected one of {', '.join(C_SUFFIXES + IR_SUFFIXES)} or a ClangInvocation"
    )


def _user_benchmark(data: bytes) -> Benchmark:
    return Benchmark(uri=f"benchmark://user-v0/{hashlib.sha1(data).hexdigest()[:16]}", data=data)


def make_benchmark(
    inputs, copt: Sequence[str] | None = None, system_includes: bool = True, timeout: int = 600
) -> Benchmark:
    """A Benchmark from a C/C++/.ll/.bc file, a ClangInvocation, or a list of them (linked into one module)."""
    items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    if not items:
        raise ValueError("make_benchmark: no inputs given")
    with compilergym_errors():
        modules = [_module_of(item, list(copt or []), system_includes, timeout) for item in items]
        data = modules[0] if len(modules) == 1 else link_bitcode(modules, timeout=timeout)
    return _user_benchmark(data)


#: Flags of a build command that only matter to the linker or name outputs; dropped when compiling to bitcode.
_LINK_ONLY_PREFIXES = ("-l", "-L", "-Wl,", "-static", "-shared", "-pthread", "-rdynamic", "-fuse-ld")
_SKIPPED_FLAGS = ("-c", "-S", "-E", "-emit-llvm", "-flto")


def make_benchmark_from_command_line(
    cmd: str | Sequence[str], replace_driver: bool = True, system_includes: bool = True, timeout: int = 600
) -> Benchmark:
    """A Benchmark from a build command such as `gcc -DNDEBUG a.c b.c -o prog -lm`.

    Each source file is compiled to bitcode with clang and the command's compile flags
    (the driver is always replaced by clang: LLVM bitcode needs it), then all are linked.
    Relative paths are read from the current directory.
    """
    argv = shlex.split(cmd) if isinstance(cmd, str) else [str(a) for a in cmd]
    if len(argv) < 2:
        raise ValueError(f"make_benchmark_from_command_line: '{cmd}' names no source file")
    sources: list[str] = []
    flags: list[str] = []
    args = iter(argv[1:])
    for arg in args:
        if arg == "-o":
            next(args, None)
        elif arg.startswith("-o") and len(arg) > 2:
            continue
        elif arg in _SKIPPED_FLAGS or arg.startswith(_LINK_ONLY_PREFIXES) or arg.startswith("-O"):
            continue
        elif not arg.startswith("-") and arg.lower().endswith(C_SUFFIXES + IR_SUFFIXES):
            sources.append(arg)
        elif not arg.startswith("-") and arg.lower().endswith((".o", ".a", ".so")):
            continue
        else:
            flags.append(arg)
    if not sources:
        raise ValueError(f"make_benchmark_from_command_line: no C/C++/.ll/.bc source in '{shlex.join(argv)}'")
    inputs = [
        ClangInvocation([*DEFAULT_FRONTEND_FLAGS, *flags, s], system_includes, timeout, cwd=os.getcwd())
        if s.lower().endswith(C_SUFFIXES)
        else s
        for s in sources
    ]
    return make_benchmark(inputs, timeout=timeout)


def get_system_library_flags() -> list[str]:
    """Flags to link against the system's C library (clang finds them itself; kept for CompilerGym's API)."""
    return []
