"""Small helpers shared by the compiler tests (not fixtures: plain functions)."""

from __future__ import annotations

import random
import shlex
import subprocess
from pathlib import Path

from compilerdream.compiler import LlvmEnv


def count_instructions(bitcode: bytes | Path) -> int:
    """IR instruction count of a bitcode file or buffer, as loaded (no stripping)."""
    from compilerdream.compiler._core import Module

    data = Path(bitcode).read_bytes() if isinstance(bitcode, Path) else bitcode
    return Module.load(data, "counted", strip=False).instruction_count()


def engine_count(path: Path, pipeline: str, options=()) -> int:
    """IR instruction count of the bitcode file after `pipeline` in the engine, under opt's `options`."""
    from compilerdream.compiler._core import Module

    module = Module.load(path.read_bytes(), str(path))
    module.apply(pipeline, list(options))
    return module.instruction_count()


def run_commandline(opt: str, commandline: str, input_path: Path, output_path: Path) -> None:
    """Run an `opt ... input.bc -o output.bc` command line (env.commandline()) with the real opt."""
    tokens = shlex.split(commandline)
    assert tokens[0] == "opt" and "input.bc" in tokens and "output.bc" in tokens, commandline
    tokens = [opt] + [
        str(input_path) if t == "input.bc" else str(output_path) if t == "output.bc" else t for t in tokens[1:]
    ]
    # cwd: insert-gcov-profiling on a module with debug info writes <name>.gcno into it.
    proc = subprocess.run(tokens, capture_output=True, text=True, timeout=120, cwd=output_path.parent)
    assert proc.returncode == 0, f"opt failed on {commandline}: {proc.stderr[-2000:]}"


def opt_instruction_count(opt: str, pipeline: str, input_path: Path, output_path: Path) -> int:
    """Instruction count of `opt -passes=<pipeline> input` (e.g. default<Oz>)."""
    proc = subprocess.run(
        [opt, f"-passes={pipeline}", str(input_path), "-o", str(output_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=output_path.parent,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return count_instructions(output_path)


def verifier_message(env: LlvmEnv) -> str:
    """The LLVM verifier's message for the env's current module ('' when it verifies)."""
    return env.worker.request("observe", env._session, ("Verify",))["Verify"]


def random_actions(n: int, length: int, seed: int) -> list[int]:
    """A seeded list of `length` action indices in [0, n)."""
    rng = random.Random(seed)
    return [rng.randrange(n) for _ in range(length)]
