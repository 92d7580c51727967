"""Tests of compilerdream.report: PNG plots from synthetic results and a synthetic training metrics.jsonl."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest

from compilerdream import report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

needs_matplotlib = pytest.mark.skipif(not report.matplotlib_available(), reason="matplotlib is not installed")


def _row(benchmark: str, method: str, final: int, o0: int = 100, oz: int = 50, **extra) -> dict:
    return {
        "benchmark": benchmark,
        "dataset": benchmark.split("://")[1].split("/")[0],
        "method": method,
        "O0": o0,
        "Oz": oz,
        "final": final,
        "reduction": oz / max(1, final),
        "leaderboard": max(0.0, (o0 - final) / max(o0 - oz, 1)),
        "compilations": 1,
        "walltime": 0.1,
        "error": None,
        **extra,
    }


def synthetic_results(n_benchmarks: int) -> list[dict]:
    rows = []
    for i in range(n_benchmarks):
        uri = f"benchmark://demo-v0/prog{i}"
        rows += [_row(uri, "-Oz", 50), _row(uri, "random", 45 + i % 10), _row(uri, "greedy", 48 - i % 3)]
    rows[-1]["validation"] = "miscompile"
    return rows


def write_metrics(logdir: Path) -> Path:
    logdir.mkdir(parents=True, exist_ok=True)
    lines = []
    for step in range(0, 5000, 500):
        lines.append(
            {
                "step": step,
                "train/return": step / 5000,
                "train_reduction": 0.9 + step / 50000,
                "model_loss": 5.0 / (1 + step),
            }
        )
        if step % 1000 == 0:
            lines.append({"step": step, "test_reduction_geomean": 0.95 + step / 100000})
    path = logdir / "metrics.jsonl"
    path.write_text(
        "\n".join(json.dumps(x) for x in lines) + "\n{not json\n" + json.dumps({"step": 1, "fps": "fast"}) + "\n"
    )
    return path


def test_read_metrics_skips_bad_lines(tmp_path):
    series = report.read_metrics(write_metrics(tmp_path))
    assert len(series["train/return"]) == 10 and series["train/return"][1] == (500.0, 0.1)
    assert len(series["test_reduction_geomean"]) == 5
    assert "fps" not in series  # a non-number


def test_choose_curves_prefers_the_training_curves():
    names = ["fps", "train/return", "train_reduction", "test/reduction_geomean", "losses/model_loss", "other"]
    assert report.choose_curves(names) == [
        "train/return",
        "train_reduction",
        "test/reduction_geomean",
        "losses/model_loss",
    ]
    assert report.choose_curves(["a", "b"]) == ["a", "b"]  # nothing known: the scalars as they come


@needs_matplotlib
def test_training_curves_png(tmp_path):
    write_metrics(tmp_path / "run")
    path = report.plot_training(tmp_path / "run", str(tmp_path / "training.png"))
    assert path and Path(path).read_bytes()[:8] == PNG_MAGIC


@needs_matplotlib
@pytest.mark.parametrize("n_benchmarks", [3, 45])  # grouped bars, then sorted curves beyond 40
def test_write_report_pngs(tmp_path, n_benchmarks):
    write_metrics(tmp_path / "run")
    paths = report.write_report(synthetic_results(n_benchmarks), tmp_path / "out", training_logdir=tmp_path / "run")
    assert set(paths) == {"reduction", "methods", "training"}
    for path in paths.values():
        data = Path(path).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000


@needs_matplotlib
def test_missing_training_log_only_skips_that_plot(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        paths = report.write_report(synthetic_results(2), tmp_path, training_logdir=tmp_path / "absent")
    assert set(paths) == {"reduction", "methods"} and "metrics.jsonl does not exist" in caplog.text


def test_without_matplotlib_plots_are_skipped_with_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(report, "matplotlib_available", lambda: False)
    with caplog.at_level(logging.WARNING):
        assert report.write_report(synthetic_results(2), tmp_path) == {}
    assert "matplotlib is not installed" in caplog.text and not list(tmp_path.iterdir())


def test_error_rows_and_baseline_only_results_make_no_reduction_plot(tmp_path):
    rows = [_row("benchmark://demo-v0/a", "-Oz", 50), _row("benchmark://demo-v0/a", "random", 0, error="crash")]
    assert report.plot_reductions(rows, str(tmp_path / "r.png")) is None
    assert math.isclose(rows[0]["reduction"], 1.0)
