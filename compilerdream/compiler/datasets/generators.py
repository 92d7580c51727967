"""Generator datasets: generator://csmith-v0/<seed> and generator://llvm-stress-v0/<seed>, cached by seed+options."""

from __future__ import annotations

import functools
import glob
import hashlib
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from ..benchmarks import Benchmark
from ..errors import BenchmarkNotFoundError, CompileError, CompilerDreamError, UnknownNameError
from ..toolchain import DEFAULT_FRONTEND_FLAGS, find_tool
from .base import UINT_MAX, Dataset, SeedUris
from .paths import atomic_write_bytes, generator_cache_dir

#: csmith's size options we accept (all integers); anything else could reach csmith's argv.
CSMITH_OPTIONS = (
    "max-funcs",
    "max-block-depth",
    "max-block-size",
    "max-expr-complexity",
    "max-pointer-depth",
    "max-struct-fields",
    "max-union-fields",
    "max-array-dim",
    "max-array-len-per-dim",
)
#: Moderate programs: csmith's defaults (10 functions, depth 5) reach 20k instructions.
CSMITH_DEFAULTS: dict[str, int] = {"max-funcs": 5, "max-block-depth": 3}
#: Bumped whenever the way programs are generated changes, so older cache entries are ignored.
CACHE_FORMAT = 2
LLVM_STRESS_OPTIONS = ("size",)
LLVM_STRESS_DEFAULTS: dict[str, int] = {"size": 100}


def parse_generator_uri(uri: str) -> tuple[str, int, dict[str, int]]:
    """Split `generator://csmith-v0/42?max-funcs=3` into ('generator://csmith-v0', 42, {'max-funcs': 3})."""
    if not uri.startswith("generator://"):
        raise UnknownNameError(f"not a generator URI: '{uri}'")
    path, _, query = uri.partition("?")
    prefix, _, seed_text = path.rstrip("/").rpartition("/")
    if not prefix.startswith("generator://") or prefix == "generator://":
        raise BenchmarkNotFoundError(f"generator URI '{uri}' names no seed: use {path.rstrip('/')}/<seed>")
    try:
        seed = int(seed_text)
    except ValueError:
        raise BenchmarkNotFoundError(f"generator URI '{uri}': seed '{seed_text}' is not an integer") from None
    if not 0 <= seed < UINT_MAX:
        raise BenchmarkNotFoundError(f"generator URI '{uri}': seed must be in [0, {UINT_MAX})")
    options: dict[str, int] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        try:
            options[key] = int(value)
        except ValueError:
            raise UnknownNameError(f"generator URI '{uri}': option {key}={value!r} is not an integer") from None
    return prefix, seed, options


@functools.cache
def _tool_identity(tool: str) -> str:
    """First line of `tool --version`, part of the cache key (outputs change across versions)."""
    try:  # in a temporary directory: `csmith --version` writes platform.info into its CWD
        with tempfile.TemporaryDirectory(prefix="compilerdream-version-") as tmp:
            out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=30, cwd=tmp)
        lines = [ln.strip() for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
        return " ".join(lines[:2])
    except (OSError, subprocess.SubprocessError):
        return tool


def csmith_include_dir() -> str:
    """Directory with csmith.h: $COMPILERDREAM_CSMITH_INCLUDE, else next to the csmith binary."""
    env = os.environ.get("COMPILERDREAM_CSMITH_INCLUDE")
    if env:
        return env
    csmith = find_tool("csmith")
    prefix = Path(os.path.realpath(csmith)).parent.parent
    for base in (prefix / "include", Path("/usr/include"), Path("/usr/local/include")):
        for candidate in [base / "csmith", *sorted(Path(p) for p in glob.glob(str(base / "csmith-*")))]:
            if (candidate / "csmith.h").is_file():
                return str(candidate)
    raise CompilerDreamError(
        "csmith.h was not found (looked in <prefix>/include/csmith*); install it with: sudo apt-get install libcsmith-dev"
    )


class GeneratorDataset(Dataset):
    """Programs made on demand from a seed; deterministic, cached on disk by seed and options."""

    is_generator = True
    allowed_options: Sequence[str] = ()
    default_options: Mapping[str, int] = {}
    suffix = ".bc"

    def __init__(
        self,
        name: str,
        description: str = "",
        options: Mapping[str, int] | None = None,
        cache_dir: str | os.PathLike | None = None,
    ):
        super().__init__(name, description)
        self.options = self._check_options(dict(options or {}), name)
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None

    def _check_options(self, options: dict[str, int], where: str) -> dict[str, int]:
        unknown = sorted(set(options) - set(self.allowed_options))
        if unknown:
            raise UnknownNameError(
                f"{where}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(self.allowed_options)}"
            )
        for key, value in options.items():
            if not isinstance(value, int) or value < 0:
                raise UnknownNameError(f"{where}: option {key} must be a non-negative integer, got {value!r}")
        return options

    @property
    def cache_dir(self) -> Path:
        return (self._cache_dir or generator_cache_dir()) / self.short_name

    def effective_options(self, overrides: Mapping[str, int] | None = None) -> dict[str, int]:
        merged = dict(self.default_options)
        merged.update(self.options)
        merged.update(overrides or {})
        return dict(sorted(merged.items()))

    @property
    def size(self) -> int:
        return UINT_MAX

    def uris(self) -> Sequence[str]:
        query = urlencode(sorted(self.options.items())) if self.options else ""
        return SeedUris(self.name, query)

    def uri_for_seed(self, seed: int, **options: int) -> str:
        merged = {**self.options, **options}
        return f"{self.name}/{int(seed)}" + (f"?{urlencode(sorted(merged.items()))}" if merged else "")

    def benchmark(self, uri: str) -> Benchmark:
        prefix, seed, options = parse_generator_uri(uri)
        if prefix != self.name:
            raise BenchmarkNotFoundError(f"'{uri}' is not a benchmark of {self.name}")
        options = self.effective_options(self._check_options(options, uri))
        return Benchmark(uri=uri, data=self.generate(seed, options), metadata={"seed": seed, "options": options})

    def benchmark_from_seed(self, seed: int, **options: int) -> Benchmark:
        return self.benchmark(self.uri_for_seed(seed, **options))

    def _cache_key(self, seed: int, options: Mapping[str, int]) -> str:
        text = repr((CACHE_FORMAT, self.name, seed, sorted(options.items()), self._toolchain_identity()))
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    def _toolchain_identity(self) -> tuple[str, ...]:
        return ()

    def generate(self, seed: int, options: Mapping[str, int]) -> bytes:
        """Bitcode for `seed` with `options`, from the cache or freshly generated (atomic write)."""
        path = self.cache_dir / f"{seed}-{self._cache_key(seed, options)}{self.suffix}"
        try:
            data = path.read_bytes()
            if data:
                return data
        except OSError:
            pass
        data = self._generate(seed, options)
        try:
            atomic_write_bytes(path, data)
        except OSError:  # a read-only cache only costs time
            pass
        return data

    def _generate(self, seed: int, options: Mapping[str, int]) -> bytes:
        raise NotImplementedError


class CsmithDataset(GeneratorDataset):
    """generator://csmith-v0: random C99 programs from csmith, compiled with CompilerGym's front-end flags."""

    allowed_options = CSMITH_OPTIONS
    default_options = CSMITH_DEFAULTS

    def __init__(
        self,
        options: Mapping[str, int] | None = None,
        cache_dir: str | os.PathLike | None = None,
        timeout: float = 120.0,
    ):
        super().__init__("generator://csmith-v0", "Random conformant C99 programs (csmith)", options, cache_dir)
        self.timeout = timeout

    def _toolchain_identity(self) -> tuple[str, ...]:
        return (_tool_identity(find_tool("csmith")), _tool_identity(find_tool("clang")), *DEFAULT_FRONTEND_FLAGS)

    def source(self, seed: int, options: Mapping[str, int] | None = None) -> str:
        """The C source csmith writes for `seed` (run in a temporary directory: it writes platform.info)."""
        opts = self.effective_options(options)
        with tempfile.TemporaryDirectory(prefix="compilerdream-csmith-") as tmp:
            return self._run_csmith(seed, opts, Path(tmp)).read_text(errors="replace")

    def _run_csmith(self, seed: int, options: Mapping[str, int], workdir: Path) -> Path:
        out = workdir / f"csmith-{seed}.c"
        cmd = [find_tool("csmith"), "--seed", str(seed), "--output", str(out)]
        for key, value in sorted(options.items()):
            cmd += [f"--{key}", str(value)]
        try:
            proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            raise CompileError(f"csmith timed out after {self.timeout:.0f}s for seed {seed}") from exc
        if proc.returncode != 0 or not out.is_file():
            raise CompileError(f"csmith failed for seed {seed}: {(proc.stderr or proc.stdout).strip()[:300]}")
        return out

    def _generate(self, seed: int, options: Mapping[str, int]) -> bytes:
        with tempfile.TemporaryDirectory(prefix="compilerdream-csmith-") as tmp:
            source = self._run_csmith(seed, options, Path(tmp)).read_bytes()
            # From stdin, as CompilerGym did: the module then names no temporary path,
            # so the same seed gives the same bytes on every run and machine.
            out = Path(tmp) / "out.bc"
            flags = [*DEFAULT_FRONTEND_FLAGS, f"-I{csmith_include_dir()}"]
            cmd = [find_tool("clang"), "-emit-llvm", "-c", "-w", *flags, "-x", "c", "-", "-o", str(out)]
            try:
                proc = subprocess.run(cmd, input=source, capture_output=True, timeout=self.timeout, cwd=tmp)
            except subprocess.TimeoutExpired as exc:
                raise CompileError(f"clang timed out after {self.timeout:.0f}s on csmith seed {seed}") from exc
            if proc.returncode != 0 or not out.is_file():
                raise CompileError(
                    f"clang could not compile csmith seed {seed}: {proc.stderr.decode(errors='replace')[:300]}"
                )
            return out.read_bytes()


class LlvmStressDataset(GeneratorDataset):
    """generator://llvm-stress-v0: random IR from `llvm-stress -seed N -size S`, assembled to bitcode.

    llvm-stress is a fuzzer: Oz removes nearly everything, and LLVM may reject a
    program; use it to test robustness rather than as training data.
    """

    allowed_options = LLVM_STRESS_OPTIONS
    default_options = LLVM_STRESS_DEFAULTS

    def __init__(
        self,
        options: Mapping[str, int] | None = None,
        cache_dir: str | os.PathLike | None = None,
        timeout: float = 60.0,
    ):
        super().__init__("generator://llvm-stress-v0", "Random LLVM-IR programs (llvm-stress)", options, cache_dir)
        self.timeout = timeout

    def _toolchain_identity(self) -> tuple[str, ...]:
        return (_tool_identity(find_tool("llvm-stress")),)

    def _generate(self, seed: int, options: Mapping[str, int]) -> bytes:
        stress, assembler = find_tool("llvm-stress"), find_tool("llvm-as")
        try:
            ir = subprocess.run(
                [stress, "-seed", str(seed), "-size", str(options["size"])],
                capture_output=True,
                timeout=self.timeout,
                cwd=tempfile.gettempdir(),
            )
            if ir.returncode != 0 or not ir.stdout:
                raise CompileError(f"llvm-stress failed for seed {seed}: {ir.stderr.decode(errors='replace')[:300]}")
            bc = subprocess.run([assembler, "-", "-o", "-"], input=ir.stdout, capture_output=True, timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            raise CompileError(f"llvm-stress timed out after {self.timeout:.0f}s for seed {seed}") from exc
        if bc.returncode != 0 or not bc.stdout:
            raise CompileError(
                f"llvm-as rejected llvm-stress output for seed {seed}: {bc.stderr.decode(errors='replace')[:300]}"
            )
        return bc.stdout
