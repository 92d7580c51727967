"""Semantic validation: run the unoptimized and the optimized program and compare (CompilerGym's `validate()`, §6.2).

For a module with a `main`, both bitcodes are linked to executables with clang
(`-O0`, so the backend adds no IR optimization of its own) and run in a
temporary directory under resource limits (as `nobody` when we are root, so that
RLIMIT_NPROC binds); the exit code and stdout must match.
A mismatch is a miscompile, reported with `miscompile_report()`. Modules without
`main`, and programs whose reference run itself fails, times out or is
nondeterministic, are *skipped*: there is nothing to judge against.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import pwd
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .benchmarks import is_bitcode
from .errors import ToolNotFoundError
from .toolchain import find_tool

log = logging.getLogger(__name__)

#: How much of stdout a report quotes; the comparison itself uses the whole (capped) output.
STDOUT_HEAD_CHARS = 2000
_MAIN_DEFINITION = re.compile(rb"^define\b[^\n]*@main\(", re.MULTILINE)


@dataclass(frozen=True)
class RunLimits:
    """Resource limits of one program run (applied with setrlimit in the child)."""

    cpu_seconds: int = 20
    address_space_bytes: int = 4 << 30
    output_bytes: int = 16 << 20
    extra_processes: int = 32


@dataclass(frozen=True)
class RunOutcome:
    """How one run ended: exit code (negative: killed by that signal), output, timeout."""

    exit_code: int
    stdout: bytes
    timed_out: bool = False
    seconds: float = 0.0

    def summary(self) -> tuple[int, str]:
        """(exit code, stdout head): what reports show."""
        return self.exit_code, self.stdout[:STDOUT_HEAD_CHARS].decode("utf-8", errors="replace")

    @property
    def failed(self) -> bool:
        """A crash (signal) or timeout: not a result we can compare against."""
        return self.timed_out or self.exit_code < 0


@dataclass
class SemanticsResult:
    """Outcome of `validate_semantics`.

    `ok` is False only for a real mismatch (or an optimized module that no longer
    builds); a skipped check has ok=True, skipped=True and says why in skip_reason.
    """

    ok: bool
    reason: str = ""
    expected: tuple[int, str] | None = None
    actual: tuple[int, str] | None = None
    skipped: bool = False
    skip_reason: str = ""

    @property
    def miscompiled(self) -> bool:
        return not self.ok and not self.skipped

    @property
    def status(self) -> str:
        """One word for tables: ok, skipped or miscompile."""
        return "skipped" if self.skipped else ("ok" if self.ok else "miscompile")

    def to_json(self) -> dict:
        return asdict(self)


class BuildError(RuntimeError):
    """clang could not turn a module into an executable."""


# ------------------------------------------------------------------ helpers
def _module_text(data: bytes) -> bytes:
    """Textual IR of a module given as bitcode or text."""
    if not is_bitcode(data):
        return data
    proc = subprocess.run([find_tool("llvm-dis"), "-", "-o", "-"], input=data, capture_output=True, timeout=120)
    if proc.returncode != 0:
        raise BuildError(f"llvm-dis could not read the module: {proc.stderr.decode(errors='replace').strip()[:300]}")
    return proc.stdout


def has_main(module: bytes) -> bool:
    """Does the module (bitcode or textual IR) define a `main` function?"""
    return bool(_MAIN_DEFINITION.search(_module_text(module)))


def _link_error_needs_cxx(stderr: str) -> bool:
    return "undefined reference" in stderr and (
        "std::" in stderr or "__gxx" in stderr or "operator " in stderr or "__cxa" in stderr
    )


def build_executable(module: bytes, out_path: str, timeout: float = 300.0) -> None:
    """Compile and link a module (bitcode or text) into an executable with clang -O0 (-lm; clang++ if C++ is needed)."""
    src = out_path + (".bc" if is_bitcode(module) else ".ll")
    with open(src, "wb") as f:
        f.write(module)
    stderr = ""
    for driver in ("clang", "clang++"):
        tool = find_tool(driver, required=driver == "clang")
        if tool is None:
            break
        cmd = [tool, "-O0", "-w", src, "-o", out_path, "-lm"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=os.path.dirname(out_path))
        except subprocess.TimeoutExpired as exc:
            raise BuildError(f"{driver} timed out after {timeout:.0f}s building an executable") from exc
        if proc.returncode == 0:
            return
        stderr = proc.stderr
        if not _link_error_needs_cxx(stderr):
            break
    lines = [ln for ln in stderr.splitlines() if "error" in ln] or stderr.strip().splitlines()
    raise BuildError("; ".join(lines[:3]) or "clang failed")


#: Who runs programs under test when we are root: root ignores RLIMIT_NPROC, so a
#: fork storm would go unchecked; an unprivileged user is held to it (and cannot
#: touch root's files).
UNPRIVILEGED_USER = "nobody"


def _unprivileged_ids() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(UNPRIVILEGED_USER)
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return 65534, 65534  # nobody/nogroup's conventional ids


def _process_count(uid: int) -> int:
    """Processes (and threads count as processes for RLIMIT_NPROC) of `uid`; 0 if unknown."""
    count = 0
    try:
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    if entry.stat().st_uid == uid:
                        count += len(os.listdir(f"/proc/{entry.name}/task"))
                except OSError:
                    continue
    except OSError:
        return 0
    return count


def _limit_child(limits: RunLimits, nproc: int):
    """preexec_fn: resource limits for the program under test (runs in the forked child)."""

    def apply() -> None:
        def cap(which: int, value: int) -> None:
            soft, hard = resource.getrlimit(which)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            resource.setrlimit(which, (value, value))

        cap(resource.RLIMIT_CPU, limits.cpu_seconds)
        cap(resource.RLIMIT_AS, limits.address_space_bytes)
        cap(resource.RLIMIT_FSIZE, limits.output_bytes)
        cap(resource.RLIMIT_CORE, 0)
        cap(resource.RLIMIT_NPROC, nproc)

    return apply


def run_program(
    executable: str,
    args: Sequence[str] = (),
    timeout: float = 10.0,
    limits: RunLimits | None = None,
) -> RunOutcome:
    """Run an executable in its own temporary directory and process group, no stdin, limited.

    stdout goes to a file so RLIMIT_FSIZE caps it; on timeout the whole process group is killed.
    """
    limits = limits or RunLimits(cpu_seconds=int(timeout) + 2)
    # As root, the program runs as an unprivileged user, so RLIMIT_NPROC binds.
    run_as = _unprivileged_ids() if os.getuid() == 0 else None
    uid = run_as[0] if run_as else os.getuid()
    nproc = _process_count(uid) + limits.extra_processes if limits.extra_processes >= 0 else 0
    with tempfile.TemporaryDirectory(prefix="compilerdream-run-") as cwd:
        identity: dict = {}
        if run_as:
            # The program's own directory and a copy of it that the unprivileged user can reach
            # (the executable's own folder may be private to root).
            os.chown(cwd, *run_as)
            if os.sep in executable:
                copy = os.path.join(cwd, ".program")
                shutil.copy2(executable, copy)
                os.chmod(copy, 0o755)
                executable = copy
            identity = {"user": run_as[0], "group": run_as[1], "extra_groups": []}
        out_path = os.path.join(cwd, ".stdout")
        start = time.monotonic()
        with open(out_path, "wb") as out:
            popen = functools.partial(
                subprocess.Popen,
                [executable, *args],
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.DEVNULL,
                preexec_fn=_limit_child(limits, max(nproc, 1)),
                start_new_session=True,
                env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
            )
            try:
                proc = popen(**identity)
            except PermissionError as exc:
                if not identity:
                    raise
                # e.g. a TMPDIR the unprivileged user cannot enter: run as ourselves, without the
                # process-count limit (root ignores it), rather than not at all.
                log.warning("cannot run programs as '%s' (%s); running them as root", UNPRIVILEGED_USER, exc)
                proc = popen()
            timed_out = False
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc)
                code = proc.wait()
        with open(out_path, "rb") as f:
            stdout = f.read(limits.output_bytes)
        return RunOutcome(exit_code=code, stdout=stdout, timed_out=timed_out, seconds=time.monotonic() - start)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _describe(outcome: RunOutcome, timeout: float) -> str:
    if outcome.timed_out:
        return f"timed out after {timeout:g}s"
    if outcome.exit_code < 0:
        try:
            name = signal.Signals(-outcome.exit_code).name
        except ValueError:
            name = f"signal {-outcome.exit_code}"
        return f"killed by {name}"
    return f"exit code {outcome.exit_code}"


# ------------------------------------------------------------------ reference cache
# The reference (unoptimized) run depends only on the program, its arguments and the
# timeout; evaluating several methods on one benchmark should build and run it once.
_REFERENCE_CACHE: OrderedDict[tuple, RunOutcome | str] = OrderedDict()
_REFERENCE_CACHE_SIZE = 256


def _reference_outcome(original: bytes, args: tuple[str, ...], timeout: float, workdir: str) -> RunOutcome | str:
    """The reference run, or a string saying why it cannot serve as a reference."""
    key = (hashlib.sha1(original).hexdigest(), args, timeout)
    if key in _REFERENCE_CACHE:
        _REFERENCE_CACHE.move_to_end(key)
        return _REFERENCE_CACHE[key]
    exe = os.path.join(workdir, "reference")
    try:
        build_executable(original, exe)
    except BuildError as exc:
        verdict: RunOutcome | str = f"the unoptimized program does not build: {exc}"
    else:
        first = run_program(exe, args, timeout)
        if first.failed:
            verdict = f"the unoptimized program itself {_describe(first, timeout)}"
        else:
            second = run_program(exe, args, timeout)
            same = (second.exit_code, second.stdout) == (first.exit_code, first.stdout)
            verdict = first if same else "the unoptimized program's output is nondeterministic"
    _REFERENCE_CACHE[key] = verdict
    while len(_REFERENCE_CACHE) > _REFERENCE_CACHE_SIZE:
        _REFERENCE_CACHE.popitem(last=False)
    return verdict


# ------------------------------------------------------------------ public API
def validate_semantics(
    original_bitcode: bytes,
    optimized_bitcode: bytes,
    timeout: float = 10,
    args: Sequence[str] = (),
) -> SemanticsResult:
    """Does the optimized module behave like the original? Compares exit code and stdout.

    Skipped (ok=True, skipped=True) when the module has no `main` or the reference
    run cannot be judged (it fails to build, crashes, times out or is nondeterministic).
    """
    try:
        if not has_main(original_bitcode):
            return SemanticsResult(ok=True, skipped=True, skip_reason="the module has no main function")
    except (BuildError, ToolNotFoundError, subprocess.TimeoutExpired) as exc:
        return SemanticsResult(ok=True, skipped=True, skip_reason=f"cannot inspect the module: {exc}")
    with tempfile.TemporaryDirectory(prefix="compilerdream-validate-") as workdir:
        reference = _reference_outcome(original_bitcode, tuple(args), float(timeout), workdir)
        if isinstance(reference, str):
            return SemanticsResult(ok=True, skipped=True, skip_reason=reference)
        expected = reference.summary()
        exe = os.path.join(workdir, "optimized")
        try:
            build_executable(optimized_bitcode, exe)
        except BuildError as exc:
            return SemanticsResult(ok=False, reason=f"the optimized module does not build: {exc}", expected=expected)
        outcome = run_program(exe, args, timeout)
    actual = outcome.summary()
    if outcome.timed_out:
        return SemanticsResult(
            ok=False, reason=f"the optimized program {_describe(outcome, timeout)}", expected=expected, actual=actual
        )
    if outcome.exit_code != reference.exit_code:
        reason = f"exit code differs: expected {reference.exit_code}, got {_describe(outcome, timeout)}"
        return SemanticsResult(ok=False, reason=reason, expected=expected, actual=actual)
    if outcome.stdout != reference.stdout:
        reason = f"stdout differs at byte {_first_difference(reference.stdout, outcome.stdout)}"
        return SemanticsResult(ok=False, reason=reason, expected=expected, actual=actual)
    return SemanticsResult(ok=True, reason="exit code and stdout match", expected=expected, actual=actual)


def _first_difference(a: bytes, b: bytes) -> int:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def miscompile_report(
    benchmark: str,
    commandline: str,
    result: SemanticsResult,
    pass_sequence: Sequence | None = None,
    method: str | None = None,
    **extra,
) -> dict:
    """A JSON-ready record of a miscompile: what to run to reproduce it and what differed."""
    report = {
        "kind": "miscompile",
        "benchmark": benchmark,
        "method": method,
        "commandline": commandline,
        "pass_sequence": [a if isinstance(a, str) else int(a) for a in (pass_sequence or [])],
        "reason": result.reason,
        "expected": _side(result.expected),
        "actual": _side(result.actual),
        "llvm_tool": find_tool("opt", required=False),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    report.update(extra)
    return report


def _side(summary: tuple[int, str] | None) -> dict | None:
    if summary is None:
        return None
    code, head = summary
    return {"exit_code": code, "stdout_head": head}


def write_miscompiles(reports: Sequence[dict], path: str | os.PathLike) -> str:
    """Write miscompile reports as a JSON list (atomic)."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(list(reports), f, indent=1)
    os.replace(tmp, path)
    return path
