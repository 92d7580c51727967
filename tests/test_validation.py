"""Tests of compilerdream.compiler.validation: semantic validation by running programs (real clang-19)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from compilerdream.compiler.toolchain import compile_source, find_tool
from compilerdream.compiler.validation import (
    RunLimits,
    SemanticsResult,
    build_executable,
    has_main,
    miscompile_report,
    run_program,
    validate_semantics,
)

pytestmark = pytest.mark.skipif(find_tool("clang", required=False) is None, reason="clang-19 is not installed")

PROGRAMS = Path(__file__).resolve().parents[1] / "examples" / "programs"


def _bitcode(tmp_path: Path, source: str, name: str = "prog.c") -> bytes:
    path = tmp_path / name
    path.write_text(source)
    return compile_source(path)


@pytest.fixture(scope="module")
def qsort_bc() -> bytes:
    return compile_source(PROGRAMS / "qsort.c")


def _ir_text(bitcode: bytes) -> str:
    return subprocess.run(
        [find_tool("llvm-dis"), "-", "-o", "-"], input=bitcode, capture_output=True, check=True
    ).stdout.decode()


def test_identical_programs_pass(qsort_bc):
    result = validate_semantics(qsort_bc, qsort_bc)
    assert result.ok and not result.skipped and result.status == "ok"
    assert result.expected == result.actual
    assert result.expected[0] == 0 and result.expected[1].startswith("checksum ")


def test_textual_ir_is_accepted(qsort_bc):
    assert validate_semantics(qsort_bc, _ir_text(qsort_bc).encode()).ok


def test_a_different_program_is_a_miscompile(qsort_bc):
    other = compile_source(PROGRAMS / "crc32.c")
    result = validate_semantics(qsort_bc, other)
    assert result.miscompiled and result.status == "miscompile"
    assert "stdout differs" in result.reason
    report = miscompile_report(
        "file://qsort.c", "opt -passes='gvn' input.bc -o output.bc", result, pass_sequence=[3, "default<Oz>"]
    )
    assert report["kind"] == "miscompile"
    assert report["benchmark"] == "file://qsort.c" and report["pass_sequence"] == [3, "default<Oz>"]
    assert report["commandline"].startswith("opt -passes=")
    assert report["expected"]["stdout_head"].startswith("checksum ")
    assert report["actual"]["stdout_head"].startswith("crc32 ")
    assert report["expected"]["exit_code"] == report["actual"]["exit_code"] == 0
    json.dumps(report)  # JSON-ready


def test_a_changed_checksum_constant_is_caught(qsort_bc):
    # The checksum's multiplier 31 (`sum * 31`) becomes 37: the program still runs, but prints another checksum.
    text = _ir_text(qsort_bc)
    broken, n = re.subn(r"(mul i64 %\w+, )31\b", r"\g<1>37", text)
    assert n == 1, "expected exactly one `mul i64 ..., 31` in qsort's IR"
    result = validate_semantics(qsort_bc, broken.encode())
    assert result.miscompiled and result.expected[1] != result.actual[1]


def test_a_different_exit_code_is_a_miscompile(tmp_path):
    ref = _bitcode(tmp_path, '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n', "a.c")
    bad = _bitcode(tmp_path, '#include <stdio.h>\nint main(void) { puts("hi"); return 3; }\n', "b.c")
    result = validate_semantics(ref, bad)
    assert result.miscompiled and "exit code differs" in result.reason
    assert result.actual[0] == 3


def test_no_main_is_skipped(tmp_path):
    lib = _bitcode(tmp_path, "int square(int x) { return x * x; }\n")
    assert not has_main(lib)
    result = validate_semantics(lib, lib)
    assert result.ok and result.skipped and "no main" in result.skip_reason


def test_an_endless_optimized_program_is_caught_by_the_timeout(tmp_path):
    ref = _bitcode(tmp_path, "int main(void) { return 0; }\n", "a.c")
    loop = _bitcode(tmp_path, "int main(void) { volatile int x = 0; for (;;) x++; }\n", "b.c")
    result = validate_semantics(ref, loop, timeout=1)
    assert result.miscompiled and "timed out" in result.reason


def test_an_endless_reference_is_skipped(tmp_path):
    loop = _bitcode(tmp_path, "int main(void) { volatile int x = 0; for (;;) x++; }\n")
    result = validate_semantics(loop, loop, timeout=1)
    assert result.skipped and "timed out" in result.skip_reason


def test_a_nondeterministic_reference_is_skipped(tmp_path):
    source = '#include <stdio.h>\n#include <time.h>\nint main(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); printf("%ld\\n", t.tv_nsec); return 0; }\n'
    prog = _bitcode(tmp_path, source)
    result = validate_semantics(prog, prog)
    assert result.skipped and "nondeterministic" in result.skip_reason


def test_an_unbuildable_optimized_module_fails(qsort_bc):
    result = validate_semantics(qsort_bc, b"this is not IR")
    assert result.miscompiled and "does not build" in result.reason


def test_run_program_applies_limits_and_caps_output(tmp_path):
    limits = RunLimits(cpu_seconds=7, address_space_bytes=1 << 30, output_bytes=4096)
    out = run_program("/bin/sh", ["-c", "ulimit -t; ulimit -f; pwd; read x || echo no-stdin"], timeout=5, limits=limits)
    lines = out.stdout.decode().split()
    assert out.exit_code == 0 and lines[0] == "7" and lines[1] == str(4096 // 512)
    assert lines[2] != str(Path.cwd()) and "compilerdream-run-" in lines[2]  # a private temporary directory
    assert lines[3] == "no-stdin"
    flood = run_program("/bin/sh", ["-c", "while :; do echo xxxxxxxxxxxxxxxx; done"], timeout=5, limits=limits)
    assert flood.failed and len(flood.stdout) <= 4096  # killed by SIGXFSZ at the cap


FORK_STORM = r"""
#include <stdio.h>
#include <unistd.h>
#include <sys/wait.h>
int main(void) {
  int started = 0;
  for (int i = 0; i < 200; i++) {
    pid_t pid = fork();
    if (pid == 0) { sleep(2); _exit(0); }
    if (pid > 0) started++;
  }
  printf("%d\n", started);
  fflush(stdout);
  while (wait(NULL) > 0) {}
  return 0;
}
"""


def test_a_fork_storm_is_held_to_the_process_limit(tmp_path):
    """At most `extra_processes` children start, also when we run as root (the program then runs as nobody)."""
    exe = str(tmp_path / "storm")
    build_executable(_bitcode(tmp_path, FORK_STORM), exe)
    out = run_program(exe, timeout=20, limits=RunLimits(extra_processes=8))
    assert out.exit_code == 0 and not out.timed_out
    # The limit is counted when the run starts; the user's other processes may come and go meanwhile.
    assert 0 <= int(out.stdout.decode()) <= 8 + 4


def test_skipped_result_is_not_a_miscompile():
    skipped = SemanticsResult(ok=True, skipped=True, skip_reason="no main")
    assert not skipped.miscompiled and skipped.status == "skipped"
