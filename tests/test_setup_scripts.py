"""The README's set-up scripts refuse bad input with one clear line, before installing anything."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_run_without_a_command_prints_usage_and_exits_2():
    proc = _run("run.sh")
    assert proc.returncode == 2 and "usage: bash scripts/run.sh test|demo|python|COMMAND" in proc.stderr
    assert "[setup]" not in proc.stderr  # nothing was set up


def test_setup_rejects_an_unknown_option():
    proc = _run("setup.sh", "--frobnicate")
    assert proc.returncode == 2 and "unknown option '--frobnicate'" in proc.stderr and not proc.stdout


def test_setup_rejects_an_llvm_config_outside_19_to_22(tmp_path):
    fake = tmp_path / "llvm-config-23"
    fake.write_text("#!/bin/sh\necho 23.1.4\n")
    fake.chmod(0o755)
    for value, shown in ((str(fake), "(version: 23)"), (str(tmp_path / "missing"), "(version: none)")):
        proc = _run("setup.sh", env={"LLVM_CONFIG": value})
        assert proc.returncode == 1, proc.stderr
        assert f"LLVM_CONFIG={value} is not an llvm-config of LLVM 19-22 {shown}" in proc.stderr
        assert "apt-get" not in proc.stderr and "pip install" not in proc.stderr


def test_run_reports_a_failed_setup(tmp_path):
    proc = _run("run.sh", "test", env={"LLVM_CONFIG": str(tmp_path / "missing")})
    assert proc.returncode == 1 and "[run] set-up failed (see above)" in proc.stderr
