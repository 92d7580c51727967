"""What more search buys: `optimize`'s default method at growing budgets, on the same unseen programs.

A measurement, not a test. On a spread subset of the default corpus's test split (or any
dataset/split), it runs `compilerdream optimize`'s default method (-Oz, the shipped coreset,
then greedy and random search; `compilerdream.compiler.default_optimizer.default_policy`)
once with its default budget (~0.5 s a program) and then with larger budgets in
compilations, all floored at -Oz as `optimize` is. The table shows how far the default
stands from what much more search reaches on the same programs: the peer of every row is
the default row of the same run (the ratio of mean % below -Oz).

    python benchmarks/search_ceiling.py                         # 42 test programs, default + 2,000 + 10,000
    python benchmarks/search_ceiling.py --limit 14 --budgets 1000
    python benchmarks/search_ceiling.py --split val --jobs 2

Results: runs/search-ceiling/{results.json,summary.md} (--out).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from quality import package_of, program_seed, spread_subset  # noqa: E402

from compilerdream.compiler.default_optimizer import default_policy  # noqa: E402
from compilerdream.compiler.fileio import atomic_write  # noqa: E402
from compilerdream.compiler.metrics import geomean, percent_below_oz  # noqa: E402
from compilerdream.compiler.progress import progress_bar  # noqa: E402
from compilerdream.compiler.search import search_benchmark  # noqa: E402
from compilerdream.optimize import positive  # noqa: E402

DEFAULT = "default"


def measure(uri: str, budgets: list[str], seed: int) -> list[dict]:
    rows = []
    for label in budgets:
        compilations = None if label == DEFAULT else int(label)
        policy, budget = default_policy("default", None, compilations)
        clock = time.monotonic()
        result = search_benchmark(policy, uri, budget, seed=program_seed(seed, uri))
        seconds = time.monotonic() - clock
        final = min(result.final, result.Oz) if not result.error else result.Oz
        rows.append({
            "benchmark": uri, "package": package_of(uri), "budget": label, "O0": result.O0, "Oz": result.Oz,
            "final": final, "percent_below_oz": percent_below_oz(result.Oz, final), "seconds": seconds,
            "compilations": result.compilations, "error": result.error,
        })  # fmt: skip
    return rows


def stats(rows: list[dict]) -> dict:
    return {
        "programs": len(rows),
        "mean_percent_below_oz": statistics.fmean(r["percent_below_oz"] for r in rows),
        "geomean": geomean(r["Oz"] / max(1, r["final"]) for r in rows),
        "better": sum(r["final"] < r["Oz"] for r in rows) / len(rows),
        "median_seconds": statistics.median(r["seconds"] for r in rows),
        "compilations": statistics.fmean(r["compilations"] for r in rows),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="default")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--limit", type=positive(int), default=42, help="programs, spread over packages (default 42)")
    p.add_argument("--budgets", default="2000,10000", help="larger budgets in compilations (comma-separated)")
    p.add_argument("--jobs", type=positive(int), default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/search-ceiling")
    args = p.parse_args(argv)
    try:
        larger = [str(int(b)) for b in args.budgets.split(",") if b.strip()]
        if any(int(b) <= 0 for b in larger):
            raise ValueError
    except ValueError:
        p.error(f"--budgets {args.budgets}: expected positive integers separated by commas")
    from compilerdream.evaluate import UsageError, dataset_benchmarks

    try:
        uris = dataset_benchmarks(args.dataset, args.split, None)
    except UsageError as exc:
        p.error(str(exc))
    if not uris:
        p.error(f"--dataset {args.dataset} --split {args.split}: the split is empty")
    chosen = spread_subset(uris, args.limit)
    budgets = [DEFAULT, *larger]
    print(f"{len(chosen)} of {len(uris)} programs of {args.dataset}/{args.split}; budgets: {', '.join(budgets)}")
    rows: list[dict] = []
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(measure, uri, budgets, args.seed) for uri in chosen]
        for fut in progress_bar(futures, desc="ceiling", unit="program"):
            rows.extend(fut.result())
    by_budget = {b: stats([r for r in rows if r["budget"] == b]) for b in budgets}
    base = by_budget[DEFAULT]["mean_percent_below_oz"]
    lines = [
        f"# What more search buys ({len(chosen)} programs of {args.dataset}/{args.split}, spread over packages)",
        "",
        "| optimize budget | mean % below -Oz | × default | geomean Oz/final | better than -Oz | median s | compilations |",
        "|---|---|---|---|---|---|---|",
    ]
    for b, s in by_budget.items():
        ratio = s["mean_percent_below_oz"] / base if base > 0 else math.nan
        name = "default (~0.5 s)" if b == DEFAULT else f"{int(b):,} compilations"
        lines.append(
            f"| {name} | {s['mean_percent_below_oz']:+.2f} | {ratio:.2f} | {s['geomean']:.4f} | "
            f"{100 * s['better']:.0f}% | {s['median_seconds']:.2f} | {s['compilations']:.0f} |"
        )
    packages = sorted({r["package"] for r in rows})
    lines += ["", "| package | programs | " + " | ".join(f"{b}: mean %" for b in budgets) + " |",
              "|---|---|" + "---|" * len(budgets)]  # fmt: skip
    per = defaultdict(list)
    for r in rows:
        per[(r["package"], r["budget"])].append(r["percent_below_oz"])
    for pkg in packages:
        cells = " | ".join(f"{statistics.fmean(per[(pkg, b)]):+.2f}" for b in budgets)
        lines.append(f"| {pkg} | {len(per[(pkg, DEFAULT)])} | {cells} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "results.json", json.dumps({"budgets": budgets, "summary": by_budget, "rows": rows}, indent=1))
    atomic_write(out / "summary.md", text)
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
