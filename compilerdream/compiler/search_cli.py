"""`compilerdream search`: baseline searches (-Oz, -O3, random, greedy) over programs, one table."""

from __future__ import annotations

import argparse
import glob
import logging
import os
import sys

from .errors import CompilerDreamError
from .executor import add_executor_args, make_executor
from .search import SEARCH_STARTS, Budget, check_start, make_policy, run_search, summary_table
from .spaces import action_space


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="compilerdream search", description=__doc__)
    p.add_argument("benchmarks", nargs="+", help="files (.c/.cc/.ll/.bc), globs, or URIs (benchmark://, generator://, file://)")
    p.add_argument(
        "--methods",
        default="oz,o3,random,greedy",
        help="comma-separated: oz, o3, random, greedy, coreset (best prefix over --coreset), "
        "optimize (`compilerdream optimize`'s default: -Oz, the coreset, LLVM's IR outliner on the best, then a "
        "little search), optimize-no-outline (the same without the outliner), oz-outline (-Oz, then the outliner)",
    )
    p.add_argument(
        "--coreset", default="default", help="for coreset/optimize: default (LLVM 19, shipped), nvp50, or a coreset JSON file"
    )
    p.add_argument("--seconds", type=float, default=None, help="budget per benchmark in seconds")
    p.add_argument("--compilations", type=int, default=None, help="budget per benchmark in compilations")
    p.add_argument("--action-space", default="NoLimit")
    p.add_argument(
        "--start",
        default=None,
        help="where random/greedy search start: o0 (unoptimized, default), oz (-Oz's output, run once and "
        "charged as one compilation) or both (half the budget each; the better wins); for coreset: every "
        "sequence from o0, from oz, or from both (default: where the coreset says)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write results.json/.csv and summary.md here")
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="programs searched in parallel (default: 1, one after the other; with --executor ray, the CPUs "
        "here); with --jobs > 1 or --executor ray, a rerun with the same --out resumes",
    )
    add_executor_args(p)
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
        given = args.seconds is not None or args.compilations is not None
        if not given:
            args.compilations = 1000
        budget = Budget(seconds=args.seconds, compilations=args.compilations)
        start = check_start(args.start, SEARCH_STARTS, "--start") if args.start is not None else None
        action_space(args.action_space)  # refused here, before any work starts
        specs = [
            (m.strip(), {"coreset": args.coreset, "budget": budget if given else None, "start": start})
            for m in args.methods.split(",")
            if m.strip()
        ]
        policies = [make_policy(method, **kwargs) for method, kwargs in specs]  # unknown names refused here
        one = Budget(compilations=1)
        budgets = {"-Oz": one, "-O3": one}
        if not given:  # optimize's own default budget, as `compilerdream optimize` runs it
            from .default_optimizer import default_budgets

            budgets.update(default_budgets())
        if args.jobs is not None and args.jobs <= 0:
            raise ValueError(f"--jobs must be positive, got {args.jobs}")
        options = dict(action_space=args.action_space, seed=args.seed, out_dir=args.out, budgets=budgets,
                       start=start or "o0")  # fmt: skip
        if args.executor == "local" and (args.jobs or 1) == 1 and not args.ray_address:
            results = run_search(policies, expand(args.benchmarks), budget, **options)
        else:  # per program on a process pool or Ray; results.jsonl grows as programs finish
            from .search_executor import run_search_on

            with make_executor(args.executor, args.jobs, args.ray_address) as executor:
                results = run_search_on(executor, specs, expand(args.benchmarks), budget, **options)
    except (CompilerDreamError, ValueError) as exc:
        print(f"compilerdream search: {exc}", file=sys.stderr)
        return 2
    print(summary_table(results))
    if args.out:
        print(f"\nresults written to {args.out}/ (results.json, results.csv, summary.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
