"""`compilerdream search`: baseline searches (-Oz, -O3, random, greedy) over programs, one table."""

from __future__ import annotations

import argparse
import glob
import logging
import os
import sys

from .errors import CompilerDreamError
from .search import Budget, make_policy, run_search, summary_table
from .spaces import action_space


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="compilerdream search", description=__doc__)
    p.add_argument("benchmarks", nargs="+", help="files (.c/.cc/.ll/.bc), globs, or URIs (benchmark://, generator://, file://)")
    p.add_argument("--methods", default="oz,o3,random,greedy", help="comma-separated: oz, o3, random, greedy")
    p.add_argument("--seconds", type=float, default=None, help="budget per benchmark in seconds")
    p.add_argument("--compilations", type=int, default=None, help="budget per benchmark in compilations")
    p.add_argument("--action-space", default="NoLimit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write results.json/.csv and summary.md here")
    return p


def expand(specs: list[str]) -> list[str]:
    out: list[str] = []
    for spec in specs:
        if "://" in spec:
            out.append(spec)
            continue
        matches = sorted(glob.glob(spec))
        if not matches and not os.path.exists(spec):
            raise CompilerDreamError(f"no benchmark matches '{spec}'")
        out.extend(matches or [spec])
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        if args.seconds is None and args.compilations is None:
            args.compilations = 1000
        budget = Budget(seconds=args.seconds, compilations=args.compilations)
        policies = [make_policy(m.strip()) for m in args.methods.split(",") if m.strip()]
        action_space(args.action_space)  # refused here, before any work starts
        one = Budget(compilations=1)
        results = run_search(
            policies,
            expand(args.benchmarks),
            budget,
            action_space=args.action_space,
            seed=args.seed,
            out_dir=args.out,
            budgets={"-Oz": one, "-O3": one},
        )
    except (CompilerDreamError, ValueError) as exc:
        print(f"compilerdream search: {exc}", file=sys.stderr)
        return 2
    print(summary_table(results))
    if args.out:
        print(f"\nresults written to {args.out}/ (results.json, results.csv, summary.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
