"""Validation callbacks that run the program: what `env.validate()` does for benchmarks we can run.

CompilerGym 0.2.5 registers validation callbacks (`Benchmark.add_validation_callback`) only on
cbench-v1 benchmarks, which need cBench's runtime data; we do not have it, so cbench-v1 is not
validatable here. Instead every `generator://csmith-v0/N` benchmark gets `ProgramSemantics`:
the unoptimized benchmark and the environment's module are each linked with clang -O0, run in a
private temporary directory (stdin closed, resource limits, `RUN_TIMEOUT` seconds) and their exit
codes and stdout compared (compilerdream.compiler.validation.validate_semantics). A mismatch,
a crash or a hang of the optimized program is a ValidationError with CompilerGym's cBench error
types; a program whose unoptimized run cannot serve as a reference (it does not finish in time,
crashes, or prints different output on two runs) is not judged.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterable
from typing import Any

from compilerdream.compiler.validation import SemanticsResult, miscompile_report, validate_semantics

from .errors import ValidationError

logger = logging.getLogger("compiler_gym")

#: Seconds one run of a program may take, read at each validation (many csmith programs run
#: longer unoptimized: those are not judged, rather than holding validate() up).
RUN_TIMEOUT = 10.0

#: Benchmarks that get ProgramSemantics when they are made.
RUNNABLE_URI_PREFIXES = ("generator://csmith-v0/",)


class ProgramSemantics:
    """A validation callback: does the environment's module behave like its benchmark's unoptimized
    module? Register it on any benchmark with a `main` (`benchmark.add_validation_callback(ProgramSemantics())`)."""

    def __init__(self, timeout: float | None = None, args: Iterable[str] = ()):
        self.timeout = timeout
        self.args = tuple(args)

    def check(self, env) -> SemanticsResult:
        timeout = self.timeout if self.timeout is not None else RUN_TIMEOUT
        optimized = bytes(env.observation["Bitcode"])
        return validate_semantics(env.benchmark.data, optimized, timeout=timeout, args=self.args)

    def errors(self, result: SemanticsResult, env) -> list[ValidationError]:
        if result.ok:
            return []
        data = miscompile_report(str(env.benchmark.uri), env.commandline(), result)
        return [ValidationError(error_type(result), data)]

    def __call__(self, env) -> list[ValidationError]:
        return self.errors(self.check(env), env)

    def __repr__(self) -> str:
        return f"ProgramSemantics(timeout={self.timeout}, args={list(self.args)})"


def error_type(result: SemanticsResult) -> str:
    """CompilerGym's cBench validation error type of a failed semantics check."""
    if result.actual is None:
        return "Compilation failed"
    if "timed out" in result.reason:
        return "Execution timeout"
    expected_code, actual_code = result.expected[0] if result.expected else 0, result.actual[0]
    if actual_code == expected_code:
        return "Wrong output"
    if actual_code == -signal.SIGSEGV:
        return "Segmentation fault"
    if actual_code == -signal.SIGILL:
        return "Illegal Instruction"
    return f"Runtime error ({actual_code})"


def as_errors(returned: Any) -> list[ValidationError]:
    """What a validation callback returned (None, one ValidationError or an iterable of them) as a list."""
    if returned is None:
        return []
    if isinstance(returned, ValidationError):
        return [returned]
    return list(returned)


def default_callbacks(uri: str) -> list:
    """The validation callbacks a benchmark with this URI is made with."""
    return [ProgramSemantics()] if str(uri).startswith(RUNNABLE_URI_PREFIXES) else []


def run_callbacks(benchmark, env) -> tuple[bool, list[ValidationError]]:
    """Run `benchmark`'s validation callbacks on `env`: whether any of them judged the program, and
    the errors. A ProgramSemantics check whose reference run cannot be judged does not count."""
    judged = False
    errors: list[ValidationError] = []
    for callback in benchmark.validation_callbacks():
        if isinstance(callback, ProgramSemantics):
            result = callback.check(env)
            if result.skipped:
                logger.warning("semantics of %s not validated: %s", benchmark.uri, result.skip_reason)
                continue
            errors += callback.errors(result, env)
        else:
            errors += as_errors(callback(env))
        judged = True
    return judged, errors


__all__ = ["RUN_TIMEOUT", "ProgramSemantics", "as_errors", "error_type", "run_callbacks"]
