"""`compilerdream evaluate`: the agent's guided search and the baselines on one footing, as a report directory (REFERENCE §3, §6.7, §6.8).

Every method gets the same per-benchmark budget (-Oz and -O3 get their one
compilation) through the search harness. The report directory holds
results.json/.csv, summary.md with both metrics (CompilerDream reduction and the
CompilerGym leaderboard score, "Metric definitions"), PNG plots and, with
--validate, miscompiles.json.
"""

from __future__ import annotations

import argparse
import csv
import glob
import io
import itertools
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from .compiler.benchmarks import C_SUFFIXES, IR_SUFFIXES, Benchmark, resolve_benchmark
from .compiler.default_optimizer import default_budgets
from .compiler.env import LlvmEnv
from .compiler.errors import CompilerDreamError, UnknownNameError
from .compiler.executor import add_executor_args, make_executor
from .compiler.search import (
    SEARCH_STARTS,
    Budget,
    SearchPolicy,
    SearchResult,
    check_start,
    make_policy,
    run_search,
    summary_table,
)
from .compiler.validation import miscompile_report, validate_semantics, write_miscompiles
from .optimize import UsageError, load_guided, positive
from .pretrained import resolve_checkpoint
from .report import write_report

PROG = "compilerdream evaluate"
BASELINE_METHODS = ("oz", "o3", "random", "greedy", "coreset", "optimize")
ALL_METHODS = (*BASELINE_METHODS, "guided")
#: Also accepted by --methods (not run by default): optimize within CompilerGym's actions and
#: -Oz only, and -Oz followed by optimize's outlining pipelines.
OPTIONAL_METHODS = ("optimize-no-outline", "oz-outline")
CORESET_METHODS = ("coreset", "optimize", "optimize-no-outline")  # take --coreset
DEFAULT_SECONDS = 60.0  # the reference's guided-search wall time per benchmark (§3)
ONE_COMPILATION = Budget(compilations=1)

log = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Evaluate guided search and baselines; write a report directory.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--benchmarks", nargs="+", metavar="PATH_OR_URI", help="files, folders, globs or benchmark URIs")
    src.add_argument("--dataset", help="a dataset or task name (e.g. cbench-v1)")
    p.add_argument("--split", default="test", help="split of --dataset: train, val or test (default test)")
    p.add_argument("--limit", type=positive(int), default=None, help="at most this many benchmarks")
    p.add_argument(
        "--checkpoint", default=None, type=resolve_checkpoint,
        help="trained agent directory, or `default` for the shipped agent (enables the 'guided' method)",
    )
    p.add_argument(
        "--methods", default=None, help=f"comma-separated from {','.join(ALL_METHODS + OPTIONAL_METHODS)} (default: all available of "
        f"{','.join(ALL_METHODS)})"
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--search-seconds", type=positive(float), default=None, help=f"per benchmark (default {DEFAULT_SECONDS:g})"
    )
    budget.add_argument(
        "--search-compilations", type=positive(int), default=None, help="per benchmark, in applied passes"
    )
    p.add_argument("--out", required=True, help="report directory")
    p.add_argument("--validate", action="store_true", help="run every result against the unoptimized program")
    p.add_argument("--validate-timeout", type=positive(float), default=10.0, help="seconds per program run")
    p.add_argument("--logdir", default=None, help="training logdir: plot its metrics.jsonl")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--action-space", default="NoLimit")
    p.add_argument(
        "--start",
        default=None,
        help="where random, greedy and guided search start: o0 (default), oz (-Oz's output) or both "
        "(half the budget each); -Oz and -O3 always run on the unoptimized program; the coreset method "
        "runs its sequences from where the coreset says unless --start is given",
    )
    p.add_argument(
        "--coreset", default="default", help="for coreset/optimize: default (LLVM 19, shipped), nvp50, or a coreset JSON file"
    )
    p.add_argument("--device", default="auto", help="for guided search: cpu, cuda or auto")
    p.add_argument(
        "--jobs",
        type=positive(int),
        default=None,
        help="benchmarks evaluated in parallel (default: 1; with --executor ray, the CPUs here); with --jobs > 1 "
        "or --executor ray, results.jsonl grows per benchmark and a rerun with the same --out resumes",
    )
    add_executor_args(p)
    return p


# ------------------------------------------------------------------ benchmarks
def expand_specs(specs: Sequence[str]) -> list[str]:
    """URIs as given; globs expanded; folders -> their .c/.cc/.ll/.bc files (sorted)."""
    out: list[str] = []
    for spec in specs:
        if "://" in spec:
            out.append(spec)
        elif os.path.isdir(spec):
            found = sorted(
                os.path.join(spec, n) for n in os.listdir(spec) if n.lower().endswith(C_SUFFIXES + IR_SUFFIXES)
            )
            if not found:
                raise UsageError(f"folder {spec} has no .c, .cc, .ll or .bc files")
            out.extend(found)
        elif os.path.exists(spec):
            out.append(spec)
        else:
            matches = sorted(glob.glob(spec))
            if not matches:
                raise UsageError(f"benchmark not found: {spec}")
            out.extend(matches)
    return out


def dataset_benchmarks(name: str, mode: str, limit: int | None = None) -> list[str]:
    """The first `limit` URIs of a dataset's split via compilerdream.compiler.datasets (dataset_for_task, split)."""
    try:
        from .compiler.datasets import dataset_for_task, split  # type: ignore[attr-defined]
    except ImportError as exc:
        raise UsageError(
            f"--dataset {name}: needs compilerdream.compiler.datasets.dataset_for_task, which is unavailable "
            f"({exc}); pass --benchmarks instead"
        ) from None
    try:
        try:
            dataset = dataset_for_task(name)
        except UnknownNameError:
            dataset = _dataset_by_name(name)
        return list(itertools.islice(iter(split(dataset, mode)), limit))
    except (CompilerDreamError, LookupError, ValueError) as exc:
        raise UsageError(f"--dataset {name} --split {mode}: {' | '.join(str(exc).splitlines())}") from None


def _dataset_by_name(name: str):
    """A CompilerGym dataset name (cbench-v1) where a task name (cbench) was expected."""
    from .compiler import datasets

    registry = getattr(datasets, "Datasets", None)
    if registry is None:
        raise UnknownNameError(f"unknown dataset '{name}'")
    try:
        return registry()[name]
    except UnknownNameError:
        raise UnknownNameError(
            f"unknown dataset '{name}': use a task name ({', '.join(datasets.task_names())}) or a CompilerGym dataset name"
        ) from None


def load_benchmarks(args: argparse.Namespace) -> list[Benchmark]:
    """The benchmarks named by --benchmarks or --dataset/--split, at most --limit, resolved (bad ones: UsageError)."""
    if args.benchmarks:
        specs = expand_specs(args.benchmarks)[: args.limit]
    else:
        specs = dataset_benchmarks(args.dataset, args.split, args.limit)
    if not specs:
        raise UsageError("no benchmarks to evaluate")
    benchmarks = []
    for spec in specs:
        try:
            benchmarks.append(resolve_benchmark(spec))
        except CompilerDreamError as exc:
            raise UsageError(f"{spec}: {' | '.join(str(exc).splitlines())}") from None
    return benchmarks


# ------------------------------------------------------------------ methods
def choose_policies(
    args: argparse.Namespace, budget_given: Budget | None = None, coreset_start: str | None = None
) -> tuple[list[SearchPolicy], list[str]]:
    """The policies to run and notes for the report (e.g. why guided search was left out).

    `budget_given`: the budget on the command line (None: optimize keeps its own default);
    `coreset_start`: --start as given (None: coreset sequences start where the coreset says).
    """
    requested = [m.strip().lower().lstrip("-") for m in (args.methods or ",".join(ALL_METHODS)).split(",") if m.strip()]
    unknown = [m for m in requested if m not in ALL_METHODS + OPTIONAL_METHODS]
    if unknown:
        choices = ", ".join(ALL_METHODS + OPTIONAL_METHODS)
        raise UsageError(f"unknown method(s) {', '.join(unknown)}: choose from {choices}")
    policies, notes = [], []
    for method in dict.fromkeys(requested):
        if method in CORESET_METHODS:
            try:
                policies.append(make_policy(method, coreset=args.coreset, budget=budget_given, start=coreset_start))
            except CompilerDreamError as exc:
                raise UsageError(f"--coreset: {exc}") from None
            continue
        if method != "guided":
            policies.append(make_policy(method))
            continue
        guided, why_not = load_guided(args.checkpoint, args.device)
        if guided is None:
            notes.append(f"guided search not run: {why_not}; the report has the search baselines alone")
        else:
            policies.append(guided)
    if not policies:
        raise UsageError("no method left to run: " + "; ".join(notes))
    return policies, notes


def policy_specs(
    args: argparse.Namespace, policies: Sequence[SearchPolicy], budget_given: Budget | None, coreset_start: str | None
) -> list[tuple[str, dict]]:
    """How a worker process makes the same `policies` as `choose_policies` (see search_executor.build_policies)."""
    specs: list[tuple[str, dict]] = []
    requested = [m.strip().lower().lstrip("-") for m in (args.methods or ",".join(ALL_METHODS)).split(",") if m.strip()]
    methods = list(dict.fromkeys(requested))
    guided_loaded = len(policies) > len([m for m in methods if m != "guided"])
    for method in methods:
        if method in CORESET_METHODS:
            specs.append((method, {"coreset": args.coreset, "budget": budget_given, "start": coreset_start}))
        elif method != "guided":
            specs.append((method, {}))
        elif guided_loaded:  # guided search was loaded here, so a worker can load it too
            specs.append(("guided", {"checkpoint": os.path.abspath(args.checkpoint), "device": args.device}))
    return specs


# ------------------------------------------------------------------ validation
@dataclass
class Validation:
    """Per-result validation status and the miscompile reports."""

    status: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    miscompiles: list[dict] = field(default_factory=list)


def validate_results(results: Sequence[SearchResult], benchmarks: dict[str, Benchmark], timeout: float) -> Validation:
    """Replay each result's sequence, run the program, compare with the unoptimized one."""
    out = Validation()
    env = LlvmEnv()
    try:
        for r in results:
            key = (r.method, r.benchmark)
            if r.error:
                out.status[key] = ("error", r.error)
                continue
            bench = benchmarks[r.benchmark]
            env.compiler_options = tuple(r.compiler_options)  # opt's options its passes ran under
            env.reset(benchmark=bench)
            if r.best_passes:  # flags, not indices: the result's action space may differ from this env's
                _, _, died, _, info = env.multistep(list(r.best_passes))
                if died:
                    out.status[key] = ("error", f"replay failed: {info.get('error_details')}")
                    continue
            verdict = validate_semantics(bench.data, bytes(env.observation["Bitcode"]), timeout=timeout)
            out.status[key] = (verdict.status, verdict.reason or verdict.skip_reason)
            if verdict.miscompiled:
                report = miscompile_report(
                    r.benchmark, r.commandline, verdict, pass_sequence=r.best_passes, method=r.method
                )
                out.miscompiles.append(report)
    finally:
        env.close()
    return out


# ------------------------------------------------------------------ report
def result_rows(results: Sequence[SearchResult], validation: Validation | None) -> list[dict]:
    rows = []
    for r in results:
        row = r.to_json()
        if validation is not None:
            row["validation"], row["validation_reason"] = validation.status.get((r.method, r.benchmark), ("", ""))
        rows.append(row)
    return rows


def _atomic_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _csv_text(rows: Sequence[dict]) -> str:
    buf = io.StringIO()
    fields = list(rows[0]) if rows else list(SearchResult.__dataclass_fields__)
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()})
    return buf.getvalue()


_START_TEXT = {
    "o0": "the unoptimized program (o0)",
    "oz": "-Oz's output (oz; -Oz charged as one compilation)",
    "both": "the unoptimized program and -Oz's output, half the budget each (both)",
}


def _start_text(start: str) -> str:
    return _START_TEXT.get(start, start)


METRICS_TEXT = """\
- **CompilerDream reduction** = Oz / final instruction count per benchmark; geomean per dataset, overall =
  geomean of the dataset geomeans (as CompilerDream reports it). Above 1.0 beats -Oz.
- **CompilerGym leaderboard** = (O0 - final) / max(O0 - Oz, 1), clipped at 0; geomean (per dataset, then of
  datasets). 1.0 equals -Oz. Example: O0=100, Oz=50, final=45 gives leaderboard 1.100 and reduction 1.111."""


def summary_markdown(args, results, rows, notes: Sequence[str], budget: Budget, plots: dict[str, str]) -> str:
    datasets = sorted({r.dataset for r in results})
    methods = list(dict.fromkeys(r.method for r in results))
    lines = [
        "# Evaluation report",
        "",
        f"- benchmarks: {len({r.benchmark for r in results})} ({', '.join(datasets)})",
        f"- methods: {', '.join(methods)}",
        f"- budget per benchmark: {budget.describe()} (-Oz and -O3: 1 compilation)",
        f"- searches start from: {_start_text(getattr(args, 'start', 'o0'))}",
        f"- checkpoint: {args.checkpoint or 'none'}",
        *[f"- note: {n}" for n in notes],
        "",
        "## Metrics",
        "",
        METRICS_TEXT,
        "",
        "## Summary",
        "",
        summary_table(results),
        "",
    ]
    if args.validate:
        lines += ["## Validation", "", *_validation_lines(rows, methods), ""]
    lines += ["## Per benchmark", "", *_per_benchmark_lines(rows, args.validate), ""]
    if plots:
        lines += ["## Plots", "", *[f"![{name}]({os.path.basename(path)})" for name, path in plots.items()], ""]
    return "\n".join(lines)


def _validation_lines(rows: Sequence[dict], methods: Sequence[str]) -> list[str]:
    lines = ["| method | ok | skipped | MISCOMPILE | error |", "|---|---|---|---|---|"]
    for m in methods:
        count = {
            s: sum(1 for r in rows if r["method"] == m and r.get("validation") == s)
            for s in ("ok", "skipped", "miscompile", "error")
        }
        lines.append(f"| {m} | {count['ok']} | {count['skipped']} | {count['miscompile']} | {count['error']} |")
    lines += ["", "Miscompiled results are still counted in the metrics above; see miscompiles.json for the sequences."]
    return lines


def _per_benchmark_lines(rows: Sequence[dict], validated: bool) -> list[str]:
    head = "| benchmark | method | O0 | Oz | final | reduction | leaderboard | compilations | walltime s |"
    lines = [head + (" validation |" if validated else ""), "|---" * (9 + validated) + "|"]
    for r in rows:
        mark = ""
        if validated:
            mark = " **MISCOMPILE** |" if r.get("validation") == "miscompile" else f" {r.get('validation', '')} |"
        final = f"error: {r['error']}" if r.get("error") else str(r["final"])
        lines.append(
            f"| {r['benchmark']} | {r['method']} | {r['O0']} | {r['Oz']} | {final} | {r['reduction']:.4f} | "
            f"{r['leaderboard']:.4f} | {r['compilations']} | {r['walltime']:.2f} |{mark}"
        )
    return lines


def write_report_dir(args, results, validation: Validation | None, notes, budget: Budget) -> dict[str, str]:
    """results.json/.csv, summary.md, miscompiles.json (with --validate) and the PNGs."""
    out = args.out
    os.makedirs(out, exist_ok=True)
    rows = result_rows(results, validation)
    paths = {"json": os.path.join(out, "results.json"), "csv": os.path.join(out, "results.csv")}
    _atomic_text(paths["json"], json.dumps(rows, indent=1))
    _atomic_text(paths["csv"], _csv_text(rows))
    if validation is not None:
        paths["miscompiles"] = write_miscompiles(validation.miscompiles, os.path.join(out, "miscompiles.json"))
    plots = write_report(rows, out, training_logdir=args.logdir)
    if not plots:
        notes = [*notes, "plots skipped (matplotlib missing or nothing to plot)"]
    paths["md"] = os.path.join(out, "summary.md")
    _atomic_text(paths["md"], summary_markdown(args, results, rows, notes, budget, plots))
    paths.update({f"plot:{k}": v for k, v in plots.items()})
    return paths


# ------------------------------------------------------------------ entry point
def evaluate(args: argparse.Namespace) -> tuple[list[SearchResult], dict[str, str], Validation | None]:
    """Run the evaluation described by parsed arguments; returns results, written paths and validation."""
    given = args.search_seconds is not None or args.search_compilations is not None
    if not given:
        args.search_seconds = DEFAULT_SECONDS
    budget = Budget(seconds=args.search_seconds, compilations=args.search_compilations)
    start_given = args.start
    try:
        args.start = start = check_start(args.start or "o0", SEARCH_STARTS, "--start")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out} is a file, not a folder")
    policies, notes = choose_policies(args, budget if given else None, start_given)
    benchmarks = load_benchmarks(args)
    for note in notes:
        print(f"{PROG}: {note}", file=sys.stderr)
    os.makedirs(args.out, exist_ok=True)
    run = dict(
        action_space=args.action_space,
        seed=args.seed,
        out_dir=args.out,
        progress=sys.stderr.isatty(),
        budgets={"-Oz": ONE_COMPILATION, "-O3": ONE_COMPILATION, **({} if given else default_budgets())},
        start=start,
    )
    if getattr(args, "executor", "local") == "local" and (getattr(args, "jobs", None) or 1) == 1 and not getattr(args, "ray_address", None):
        results = run_search(policies, benchmarks, budget, **run)
    else:  # per benchmark on a process pool or Ray (compilerdream.compiler.search_executor), resumable
        from .compiler.search_executor import run_search_on

        specs = policy_specs(args, policies, budget if given else None, start_given)
        with make_executor(args.executor, args.jobs, args.ray_address) as executor:
            results = run_search_on(executor, specs, benchmarks, budget, **run)
    validation = None
    if args.validate:
        by_uri = {b.uri: b for b in benchmarks}
        validation = validate_results(results, by_uri, args.validate_timeout)
    paths = write_report_dir(args, results, validation, notes, budget)
    return results, paths, validation


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `compilerdream evaluate`; returns the exit code (2: bad arguments or inputs)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        args = build_parser().parse_args(argv)
        results, paths, validation = evaluate(args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except CompilerDreamError as exc:
        print(f"{PROG}: error: {' | '.join(str(exc).splitlines())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    print(summary_table(results))
    if validation is not None and validation.miscompiles:
        print(f"\n{len(validation.miscompiles)} MISCOMPILE(S): see {paths['miscompiles']}")
    print(f"\nreport written to {args.out}/: " + ", ".join(os.path.basename(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
