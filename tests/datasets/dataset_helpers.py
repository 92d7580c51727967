"""Helpers for dataset tests: tiny bitcode modules, file datasets and archives in CompilerGym's layout."""

from __future__ import annotations

import bz2
import io
import json
import tarfile
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "datasets"
#: The real LLVM 10 cBench crc32.bc from the compiler-gym==0.2.5 wheel (7.8 KB).
CRC32_BC = FIXTURES / "crc32.bc"

_IR = """
define i32 @{name}(i32 %a, i32 %b) {{
entry:
  %x = alloca i32
  store i32 %a, ptr %x
  %v = load i32, ptr %x
  %s = add i32 %v, {k}
  %m = mul i32 %s, %b
  ret i32 %m
}}
"""


def make_bitcode(k: int = 1, name: str = "f") -> bytes:
    """A small valid module (6 instructions) whose content depends on `k`."""
    from compilerdream.compiler._core import Module

    return Module.load(_IR.format(name=name, k=k).encode(), f"m{k}").bitcode()


def make_file_dataset(folder: Path, count: int, metadata: bool = True, prefix: str = "b") -> list[str]:
    """`count` distinct .bc files in `folder` (+ metadata.json); returns their names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        name = f"{prefix}{i:03d}.bc"
        (folder / name).write_bytes(make_bitcode(i))
        names.append(name)
    if metadata:
        (folder / "metadata.json").write_text(json.dumps(names))
    return names


def make_tar(path: Path, members: dict[str, bytes], mode: str = "w:bz2") -> Path:
    """A tar archive of regular files (name -> content)."""
    with tarfile.open(path, mode) as arc:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            arc.addfile(info, io.BytesIO(data))
    return path


def make_cbench_archive(folder: Path) -> tuple[Path, Path]:
    """A cbench-v1 tarball in CompilerGym's layout (cBench-v1/crc32.bc ...) and its bz2 manifest."""
    tar = make_tar(
        folder / "llvm_bitcodes-10.0.0-cBench-v1-linux.tar.bz2",
        {"cBench-v1/crc32.bc": CRC32_BC.read_bytes(), "cBench-v1/qsort.bc": make_bitcode(7, "qsort")},
    )
    manifest = folder / "llvm_bitcodes-10.0.0-cbench-v1-manifest.bz2"
    manifest.write_bytes(bz2.compress(b"qsort\ncrc32\n"))
    return tar, manifest
