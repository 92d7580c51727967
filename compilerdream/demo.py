"""`compilerdream demo`: the README's main job on an embedded default.

Stage 1 (always): the search baselines (-Oz, -O3, random, greedy) on the sample
programs shipped in examples/programs plus a few csmith programs generated on the
spot, with one compilation budget, printed as one table.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from compilerdream.compiler.errors import CompilerDreamError
from compilerdream.compiler.search import Budget, make_policy, run_search, summary_table

SAMPLES = Path(__file__).resolve().parents[1] / "examples" / "programs"


def sample_benchmarks(num_csmith: int = 3) -> list:
    items: list = [("samples", str(p)) for p in sorted(SAMPLES.glob("*.c"))]
    if num_csmith:
        try:
            from compilerdream.compiler import datasets

            for seed in range(1, num_csmith + 1):
                items.append(("csmith-v0", datasets.resolve_benchmark(f"generator://csmith-v0/{seed}")))
        except Exception as exc:  # csmith missing or datasets unavailable: samples alone still run
            logging.warning("skipping csmith programs: %s", exc)
    return items


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="compilerdream demo", description=__doc__)
    p.add_argument("--logdir", default="runs/demo", help="where results are written")
    p.add_argument("--compilations", type=int, default=1000, help="search budget per program")
    p.add_argument("--csmith", type=int, default=3, help="number of csmith programs to add")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        benchmarks = sample_benchmarks(args.csmith)
        one = Budget(compilations=1)
        policies = [make_policy(m) for m in ("oz", "o3", "random", "greedy")]
        out = os.path.join(args.logdir, "baselines")
        results = run_search(policies, benchmarks, Budget(compilations=args.compilations), out_dir=out, budgets={"-Oz": one, "-O3": one})
    except CompilerDreamError as exc:
        print(f"compilerdream demo: {exc}", file=sys.stderr)
        return 2
    print(f"\nSearch baselines, {args.compilations} compilations per program (random, greedy):\n")
    print(summary_table(results))
    print(f"\nresults: {out}/summary.md, results.json, results.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
