"""The README's main command end to end, shortened: `compilerdream demo --quick` (slow: needs apt sources)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_quick_runs_end_to_end(tmp_path):
    from compilerdream.compiler.datasets.debian import probe_sources

    if not probe_sources():
        pytest.skip("no Debian source archive reachable: the quick corpus cannot be built")
    logdir = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "compilerdream.cli", "demo", "--quick", "--minutes", "0.3", "--search-compilations", "30",
         "--test-eps", "2", "--logdir", str(logdir), "--data-root", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=1800, cwd=tmp_path, env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for path in ("agent/test_results.md", "agent/variables.pt", "baselines-45/summary.md", "report/summary.md",
                 "report/reduction.png", "qsort.opt.bc"):
        assert (logdir / path).exists(), path
    assert "CompilerDream reduction" in proc.stdout
