"""Builder worker: compile one item to bitcode (clang, llvm-link) and measure it (O0/Oz counts, IR hash).

Runs inside pool worker processes: an LLVM abort kills only the worker, and the
builder marks the item failed and carries on.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from ..errors import CompileError, CompilerDreamError
from ..toolchain import compile_source, find_tool


def first_error_line(message: str) -> str:
    """clang's first `error:` line from a CompileError message (else its first informative line)."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    for line in lines:
        if "error:" in line:
            return line[:400]
    return (lines[1] if len(lines) > 1 else lines[0] if lines else "unknown error")[:400]


def ir_fingerprint(ir: str) -> str:
    """SHA-256 of textual IR without the lines that name the source file, so copies of a file hash alike."""
    kept = [ln for ln in ir.splitlines() if not ln.startswith(("; ModuleID = ", "source_filename = "))]
    return hashlib.sha256("\n".join(kept).encode("utf-8", "replace")).hexdigest()


def link_bitcode(modules: list[bytes], timeout: float) -> bytes:
    """Link several bitcode modules into one with llvm-link."""
    with tempfile.TemporaryDirectory(prefix="compilerdream-link-") as tmp:
        paths = []
        for i, data in enumerate(modules):
            path = Path(tmp) / f"m{i}.bc"
            path.write_bytes(data)
            paths.append(str(path))
        out = Path(tmp) / "linked.bc"
        try:
            proc = subprocess.run(
                [find_tool("llvm-link"), *paths, "-o", str(out)], capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            raise CompileError(f"llvm-link timed out after {timeout:.0f}s") from exc
        if proc.returncode != 0 or not out.is_file():
            raise CompileError("llvm-link failed:\n" + proc.stderr.strip()[:2000])
        return out.read_bytes()


def compile_and_measure(task: dict) -> dict:
    """Compile `task["sources"]` (linked if several) and count instructions at O0 and after default<Oz>.

    Returns a dict with `status` in {"ok", "failed", "empty", "too_large"} plus
    `bitcode`, `o0`, `oz`, `functions`, `ir_sha256` when ok, or `error` when failed,
    and `headers`: the non-system headers the sources included (when they compiled).
    """
    name, sources = task["name"], task["sources"]
    headers: list[str] = []
    result: dict = {"name": name, "status": "failed", "headers": headers}
    try:
        pieces = [
            compile_source(
                src,
                flags=task["flags"],
                include_dirs=task.get("include_dirs", ()),
                timeout=task.get("timeout", 120.0),
                headers=headers,
            )
            for src in sources
        ]
        headers[:] = sorted(set(headers))
        bitcode = pieces[0] if len(pieces) == 1 else link_bitcode(pieces, task.get("timeout", 120.0))
    except CompileError as exc:
        result["error"] = first_error_line(str(exc))
        return result
    except (CompilerDreamError, OSError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"[:400]
        return result
    from .._core import Module

    try:
        module = Module.load(bitcode, os.path.basename(name))
    except ValueError as exc:
        result["error"] = f"LLVM could not read the module: {str(exc)[:300]}"
        return result
    o0 = module.instruction_count()
    result.update(o0=o0, functions=module.num_defined_functions)
    if o0 == 0:
        result["status"] = "empty"
        return result
    limit = task.get("max_instructions")
    if limit and o0 > limit:
        result.update(status="too_large", error=f"{o0} instructions > limit {limit}")
        return result
    result["ir_sha256"] = ir_fingerprint(module.ir())
    optimized = module.clone()
    optimized.apply("default<Oz>")
    result.update(status="ok", oz=optimized.instruction_count(), bitcode=bitcode)
    return result
