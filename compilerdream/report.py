"""Report plots (PNG): per-benchmark reduction against -Oz, per-method geomeans, and training curves.

Uses matplotlib's object API with the Agg canvas (no display, no global pyplot
state). matplotlib is optional (extra `[agent]`): without it the plots are
skipped with a warning and `write_report` returns no paths.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .compiler.metrics import summarize

log = logging.getLogger(__name__)

#: Training scalars worth a panel, matched against names with '/' read as '_' (e.g. `test/reduction_geomean`).
TRAINING_CURVES = ("train_return", "train_reduction", "test_reduction_geomean", "model_loss")
MAX_FALLBACK_CURVES = 6
GROUPED_BARS_MAX_BENCHMARKS = 40
BASELINE_METHOD = "-Oz"


def _figure(width: float, height: float):
    """A Figure on an Agg canvas, or None when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _rows(results: Iterable[Any]) -> list[dict]:
    """SearchResult objects or dicts -> dicts."""
    return [r.to_json() if hasattr(r, "to_json") else dict(r) for r in results]


def _label(uri: str, ambiguous: bool) -> str:
    parts = uri.rstrip("/").split("/")
    return "/".join(parts[-2:]) if ambiguous and len(parts) > 1 else parts[-1]


def _benchmark_labels(uris: Sequence[str]) -> list[str]:
    names = [u.rstrip("/").rsplit("/", 1)[-1] for u in uris]
    ambiguous = len(set(names)) < len(names)
    return [_label(u, ambiguous) for u in uris]


def plot_reductions(results: Iterable[Any], path: str) -> str | None:
    """Per-benchmark reduction (Oz / final) of each method, with -Oz as the line at 1.0.

    Grouped bars (drawn from 1.0, so gains point up and losses down) for up to 40
    benchmarks; beyond that each method's reductions sorted, one curve per method.
    Miscompiled results (`validation == "miscompile"`) are marked with a red x.
    """
    rows = [r for r in _rows(results) if not r.get("error")]
    methods = [m for m in dict.fromkeys(r["method"] for r in rows) if m != BASELINE_METHOD]
    uris = list(dict.fromkeys(r["benchmark"] for r in rows))
    if not methods or not uris:
        return None
    value = {(r["method"], r["benchmark"]): float(r["reduction"]) for r in rows}
    bad = {(r["method"], r["benchmark"]) for r in rows if r.get("validation") == "miscompile"}
    grouped = len(uris) <= GROUPED_BARS_MAX_BENCHMARKS
    fig = _figure(max(6.0, min(24.0, 0.45 * len(uris) * (len(methods) if grouped else 0.2) + 3)), 4.5)
    if fig is None:
        return None
    ax = fig.add_subplot(1, 1, 1)
    if grouped:
        _grouped_bars(ax, methods, uris, value, bad)
    else:
        _sorted_curves(ax, methods, uris, value)
    ax.axhline(1.0, color="black", linewidth=1.0, linestyle="--", label="-Oz (1.0)")
    ax.set_ylabel("reduction vs -Oz (Oz / final instruction count)")
    ax.set_title("Code size against -Oz per benchmark (higher is better)")
    ax.legend(fontsize="small", loc="best")
    fig.tight_layout()
    fig.savefig(path)
    return path


def _grouped_bars(ax, methods: Sequence[str], uris: Sequence[str], value: Mapping, bad: set) -> None:
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        xs = [j + (i - (len(methods) - 1) / 2) * width for j in range(len(uris))]
        ys = [value.get((method, u), math.nan) for u in uris]
        ax.bar(xs, [y - 1.0 for y in ys], width=width, bottom=1.0, label=method)
        marks = [(x, y) for x, y, u in zip(xs, ys, uris) if (method, u) in bad]
        if marks:
            ax.scatter(*zip(*marks), marker="x", color="red", zorder=3, label=f"{method}: miscompile")
    ax.set_xticks(range(len(uris)))
    ax.set_xticklabels(_benchmark_labels(uris), rotation=60, ha="right", fontsize="small")


def _sorted_curves(ax, methods: Sequence[str], uris: Sequence[str], value: Mapping) -> None:
    for method in methods:
        ys = sorted(v for u in uris if not math.isnan(v := value.get((method, u), math.nan)))
        ax.plot(range(len(ys)), ys, marker=".", linestyle="-", label=method)
    ax.set_xlabel("benchmarks, sorted by reduction")


def plot_method_summary(results: Iterable[Any], path: str) -> str | None:
    """Both headline metrics per method: CompilerDream reduction and CompilerGym leaderboard geomeans."""
    rows = [r for r in _rows(results) if not r.get("error")]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    if not methods:
        return None
    fig = _figure(max(6.0, 1.2 * len(methods) + 2), 4.0)
    if fig is None:
        return None
    metrics = (
        ("reduction", "CompilerDream reduction\n(geomean of dataset geomeans of Oz/final)"),
        ("leaderboard", "CompilerGym leaderboard\n(geomean of (O0-final)/(O0-Oz))"),
    )
    for k, (key, title) in enumerate(metrics):
        ax = fig.add_subplot(1, 2, k + 1)
        ys = [summarize([r for r in rows if r["method"] == m], key)["geomean_of_datasets"] for m in methods]
        ax.bar(range(len(methods)), [y - 1.0 for y in ys], bottom=1.0, color=[f"C{i}" for i in range(len(methods))])
        ax.axhline(1.0, color="black", linewidth=1.0, linestyle="--")
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(methods, rotation=30, ha="right")
        ax.set_title(title, fontsize="small")
        for x, y in enumerate(ys):
            ax.annotate(f"{y:.3f}", (x, y), ha="center", va="bottom", fontsize="x-small")
    fig.tight_layout()
    fig.savefig(path)
    return path


def read_metrics(path: str | os.PathLike) -> dict[str, list[tuple[float, float]]]:
    """`metrics.jsonl` -> {name: [(step, value), ...]}; malformed lines and non-numbers are skipped."""
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
                step = float(record["step"])
            except (ValueError, KeyError, TypeError):
                continue
            for name, value in record.items():
                if name == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                if math.isfinite(value):
                    series[name].append((step, float(value)))
    return dict(series)


def choose_curves(names: Iterable[str]) -> list[str]:
    """The panels to draw: the known training curves present, else the most frequent scalars."""
    names = list(names)
    chosen = []
    for wanted in TRAINING_CURVES:
        for name in names:
            normalized = name.replace("/", "_").lower()
            if (normalized == wanted or normalized.endswith("_" + wanted)) and name not in chosen:
                chosen.append(name)
    return chosen or names[:MAX_FALLBACK_CURVES]


def plot_training(training_logdir: str | os.PathLike, path: str) -> str | None:
    """Training curves from `<logdir>/metrics.jsonl` (train_return, train_reduction, test_reduction_geomean, model_loss)."""
    metrics_path = os.path.join(training_logdir, "metrics.jsonl")
    if not os.path.isfile(metrics_path):
        log.warning("no training curves: %s does not exist", metrics_path)
        return None
    series = read_metrics(metrics_path)
    names = choose_curves(sorted(series, key=lambda n: -len(series[n])))
    if not names:
        log.warning("no training curves: %s has no numeric scalars", metrics_path)
        return None
    cols = 2 if len(names) > 1 else 1
    rows = math.ceil(len(names) / cols)
    fig = _figure(6.0 * cols, 3.2 * rows)
    if fig is None:
        return None
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        steps, values = zip(*sorted(series[name]))
        ax.plot(steps, values, marker="." if len(steps) < 50 else None, linewidth=1.2)
        ax.set_title(name, fontsize="small")
        ax.set_xlabel("environment step")
        ax.grid(alpha=0.3)
    fig.suptitle(f"Training curves: {os.path.basename(os.path.abspath(training_logdir))}", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    return path


def write_report(
    results: Iterable[Any], out_dir: str | os.PathLike, training_logdir: str | os.PathLike | None = None
) -> dict[str, str]:
    """Write the report's PNGs to `out_dir`; returns {plot name: path} for those written."""
    if not matplotlib_available():
        log.warning("matplotlib is not installed (pip install 'compilerdream[agent]'): skipping plots")
        return {}
    os.makedirs(out_dir, exist_ok=True)
    rows = _rows(results)
    paths: dict[str, str] = {}
    plots = (
        ("reduction", lambda p: plot_reductions(rows, p)),
        ("methods", lambda p: plot_method_summary(rows, p)),
    )
    for name, plot in plots:
        written = plot(os.path.join(out_dir, f"{name}.png"))
        if written:
            paths[name] = written
    if training_logdir:
        written = plot_training(training_logdir, os.path.join(out_dir, "training.png"))
        if written:
            paths["training"] = written
    return paths
