"""Benchmarks: a program to optimize, named by a URI, and how URIs and paths resolve.

URIs follow CompilerGym: `benchmark://cbench-v1/qsort`, `generator://csmith-v0/42`,
`file:///abs/path.bc`. Plain paths to .bc/.ll/.c/.cc files work too. Dataset URIs
(`benchmark://`, `generator://`) are resolved by `compilerdream.compiler.datasets`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from .errors import BenchmarkNotFoundError, MalformedInputError, UnknownNameError
from .toolchain import DEFAULT_FRONTEND_FLAGS, compile_source

C_SUFFIXES = (".c", ".cc", ".cpp", ".cxx", ".c++")
IR_SUFFIXES = (".bc", ".ll")


@dataclass(frozen=True)
class Benchmark:
    """One program: its URI and its LLVM bitcode or textual IR."""

    uri: str
    data: bytes
    source_path: str | None = None
    frontend_flags: tuple[str, ...] = DEFAULT_FRONTEND_FLAGS
    metadata: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def sha1(self) -> str:
        return hashlib.sha1(self.data).hexdigest()

    @property
    def dataset(self) -> str:
        """Dataset part of the URI (`cbench-v1` for `benchmark://cbench-v1/qsort`)."""
        rest = self.uri.split("://", 1)[-1]
        return rest.split("/", 1)[0] if "://" in self.uri and not self.uri.startswith("file://") else "file"

    @property
    def name(self) -> str:
        return self.uri.rstrip("/").rsplit("/", 1)[-1]

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike,
        uri: str | None = None,
        frontend_flags: Sequence[str] = DEFAULT_FRONTEND_FLAGS,
    ) -> Benchmark:
        """Read a .bc/.ll file, or compile a .c/.cc file with clang."""
        p = Path(path).expanduser()
        if not p.exists():
            raise BenchmarkNotFoundError(f"benchmark file not found: {p}")
        if p.is_dir():
            raise BenchmarkNotFoundError(f"benchmark path is a directory, not a file: {p}")
        suffix = p.suffix.lower()
        uri = uri or "file://" + str(p.resolve())
        if suffix in C_SUFFIXES:
            data = compile_source(p, flags=frontend_flags)
        elif suffix in IR_SUFFIXES or suffix == "":
            data = p.read_bytes()
        else:
            raise MalformedInputError(
                f"unsupported benchmark file type '{suffix}' for {p}: expected one of {', '.join(IR_SUFFIXES + C_SUFFIXES)}"
            )
        if not data:
            raise MalformedInputError(f"benchmark file is empty: {p}")
        if not _looks_like_ir(data):
            raise MalformedInputError(
                f"{p} is neither LLVM bitcode (it does not start with the bitcode magic) nor textual LLVM IR "
                "(it is not UTF-8 text)"
            )
        return cls(uri=uri, data=data, source_path=str(p.resolve()), frontend_flags=tuple(frontend_flags))

    @classmethod
    def from_bytes(cls, data: bytes, uri: str = "benchmark://user-v0/module") -> Benchmark:
        if not data:
            raise MalformedInputError(f"benchmark {uri} has no data")
        return cls(uri=uri, data=bytes(data))


BITCODE_MAGIC = b"BC\xc0\xde"
BITCODE_WRAPPER_MAGIC = b"\xde\xc0\x17\x0b"


def is_bitcode(data: bytes) -> bool:
    """LLVM bitcode, raw or in the wrapper header (Darwin-style)."""
    return data[:4] in (BITCODE_MAGIC, BITCODE_WRAPPER_MAGIC)


def _looks_like_ir(data: bytes) -> bool:
    """Bitcode or UTF-8 text without NUL bytes; LLVM's parser judges the rest."""
    if is_bitcode(data):
        return True
    if b"\0" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


BenchmarkLike = Union[str, os.PathLike, Benchmark]


def resolve_benchmark(spec: BenchmarkLike, data_root: str | os.PathLike | None = None) -> Benchmark:
    """Turn a URI, path or Benchmark into a Benchmark."""
    if isinstance(spec, Benchmark):
        return spec
    if isinstance(spec, os.PathLike):
        return Benchmark.from_file(spec)
    if not isinstance(spec, str):
        raise TypeError(f"benchmark must be a URI string, a path or a Benchmark, not {type(spec).__name__}")
    text = spec.strip()
    if text.startswith("file://"):
        return Benchmark.from_file(text[len("file://") :], uri=text)
    if text.startswith(("benchmark://", "generator://")):
        from . import datasets

        return datasets.resolve_benchmark(text, data_root=data_root)
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise UnknownNameError(f"unknown benchmark URI scheme '{scheme}://' in '{text}': use benchmark://, generator:// or file://")
    if os.path.exists(text) or text.lower().endswith(IR_SUFFIXES + C_SUFFIXES):
        return Benchmark.from_file(text)
    if "/" in text:  # CompilerGym accepts URIs without the scheme: cbench-v1/qsort
        from . import datasets

        return datasets.resolve_benchmark("benchmark://" + text, data_root=data_root)
    raise BenchmarkNotFoundError(f"benchmark '{text}' is neither an existing file nor a URI (benchmark://, generator://, file://)")
