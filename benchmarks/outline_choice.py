"""Which IR-outlining pipelines `compilerdream optimize` tries: the experiment behind `OUTLINE_PIPELINES`.

A measurement, not a test. `compilerdream optimize` tries the pipelines of
`compilerdream.compiler.default_optimizer.OUTLINE_PIPELINES` (LLVM's IR outliner plus
clean-up) once each on its best result and keeps one only where it is smaller. This script
rebuilds that choice. On a spread subset of the default corpus's **validation** split (the
test split is refused unless --allow-test: choices are made on train/valid only) it measures,
per program:

1. -Oz's instruction count;
2. `base`: `optimize`'s default method without outlining (`default_policy(outline=False)`,
   coreset + greedy/random search, default budget ~0.5 s a program, through
   `compilerdream.compiler.search.search_benchmark`), floored at -Oz as `optimize` is;
3. every finishing pipeline of `CANDIDATES`, applied once to base's module in the compiler's
   worker process (an LLVM abort or hang loses that application only: it is logged and counts
   as no gain, as it does in `optimize`); its count is min(candidate, base), as `optimize` keeps
   the smaller. The object-file `.text` size (the env's `ObjectTextSizeBytes`) is recorded for
   -Oz, for base and for each candidate's kept result (measured where the candidate is smaller
   than base; elsewhere the kept result is base's module).

Table rows: `base` first (the peer of every row: `x base` is a row's mean % below -Oz over
base's), then each candidate (each is applied twice, on two forks of base's module: one that
gives two different modules on some program is marked "not replayable" and left out of the
pair, since `optimize`'s printed `opt -passes=` line must rebuild its count; LLVM 19.1.7's
gvn-sink is such a pass), the best pair of replayable candidates (best-of over both, exhaustive over
all pairs, by mean % below -Oz), the shipped `OUTLINE_PIPELINES` set (best-of over its
pipelines) and the best over all candidates (a ceiling). Columns: mean % below -Oz
(arithmetic), geomean Oz/final, programs improved (count below base), geomean `.text`
ratio (final/base) over the improved programs with both sizes, how many of those grew in
`.text`, applications that crashed, mean seconds per program (base: its whole search; a
candidate or a set: its applications, `.text` measurements included).

    python3 benchmarks/outline_choice.py --limit 80 --jobs 1          # the shipped choice: 80 validation programs
    python3 benchmarks/outline_choice.py --limit 20 --search-compilations 2000   # count-budgeted base (deterministic)
    python3 benchmarks/outline_choice.py prog1.c prog2.bc --out /tmp/oc          # files instead of the corpus

The base's default budget is in seconds, so its counts (and, a little, the table) depend on
machine speed and load; `--search-compilations N` makes the run deterministic. The subset is
`benchmarks/quality.py`'s spread rule (deterministic: evenly spaced within packages, slots shared
among packages); `--seed` seeds each program's search (from the seed and the program's URI).

Results: benchmarks/results/outline_choice/{results.json,summary.md} (--out).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from quality import (  # noqa: E402
    UsageError,
    _nan_to_none,  # noqa: E402
    package_of,
    program_seed,
    resolve_inputs,
    run_header,
    script_main,
)

from compilerdream.compiler.benchmarks import Benchmark, resolve_benchmark  # noqa: E402
from compilerdream.compiler.datasets.splits import normalize_mode  # noqa: E402
from compilerdream.compiler.default_optimizer import (  # noqa: E402
    CLEANUP,  # noqa: E402
    OUTLINE_PIPELINES,
    default_policy,
)
from compilerdream.compiler.env import LlvmEnv  # noqa: E402
from compilerdream.compiler.errors import CompilerDreamError, SessionError  # noqa: E402
from compilerdream.compiler.fileio import atomic_write  # noqa: E402
from compilerdream.compiler.metrics import geomean, percent_below_oz  # noqa: E402
from compilerdream.compiler.progress import progress_bar  # noqa: E402
from compilerdream.compiler.search import OZ_PIPELINE, search_benchmark  # noqa: E402
from compilerdream.compiler.worker import make_worker  # noqa: E402
from compilerdream.optimize import positive  # noqa: E402

PROG = "outline_choice.py"
log = logging.getLogger("outline_choice")

#: The finishing pipelines compared, by name. CLEANUP is `optimize`'s clean-up after outlining
#: (instcombine as the action space spells it: plain `instcombine` aborts LLVM 19 on some modules).
CANDIDATES: dict[str, str] = {
    "iroutliner": "iroutliner",
    "iroutliner+cleanup": f"iroutliner,{CLEANUP}",
    "(iroutliner+cleanup)x2": f"iroutliner,{CLEANUP},iroutliner,{CLEANUP}",
    "iroutliner+Oz+iroutliner+cleanup": f"iroutliner,{OZ_PIPELINE},iroutliner,{CLEANUP}",
    "gvn-sink+iroutliner+cleanup": f"function(gvn-sink),iroutliner,{CLEANUP}",
    "gvn-sink+(iroutliner+cleanup)x2": f"function(gvn-sink),iroutliner,{CLEANUP},iroutliner,{CLEANUP}",
    "gvn-sink+cleanup": "function(gvn-sink,instcombine<no-verify-fixpoint>,simplifycfg)",
    "mergefunc": "mergefunc",
    "Oz": OZ_PIPELINE,
}
#: Seconds a pipeline may run before it counts as a hang (the env's default).
STEP_TIMEOUT = 60.0
DEFAULT_OUT = "benchmarks/results/outline_choice"
TEXT = "ObjectTextSizeBytes"


def candidates() -> dict[str, str]:
    """CANDIDATES, plus any pipeline of the shipped OUTLINE_PIPELINES that is not among them."""
    table = dict(CANDIDATES)
    for i, pipeline in enumerate(OUTLINE_PIPELINES, start=1):
        if pipeline not in table.values():
            table[f"shipped-{i}"] = pipeline
    return table


def shipped_names(table: dict[str, str]) -> list[str]:
    """The candidates that are the pipelines of OUTLINE_PIPELINES, in its order."""
    by_pipeline = {p: n for n, p in table.items()}
    return [by_pipeline[p] for p in OUTLINE_PIPELINES]


@dataclass(frozen=True)
class Settings:
    """What each program's measurement needs (picklable: sent to pool processes)."""

    seed: int
    search_compilations: int | None
    text: bool
    candidates: tuple[tuple[str, str], ...]


# ============================================================== one program
def _text_size(env: LlvmEnv) -> int | None:
    """The `.text` bytes of env's module, measured on a fork (a codegen failure leaves `env` usable); None if it fails."""
    probe = None
    try:
        probe = env.fork()
        return int(probe.observation[TEXT])
    except (CompilerDreamError, KeyError, ValueError) as exc:
        log.warning("%s: %s unavailable: %s", env.benchmark.uri, TEXT, exc)
        return None
    finally:
        if probe is not None:
            probe.close()


def measure(spec: str | Benchmark, settings: Settings) -> dict:
    """-Oz, the base (optimize without outlining, floored at -Oz) and every candidate on base's module.

    Never raises: a program that fails to load or whose base search fails is a row with `error`.
    """
    uri = spec.uri if isinstance(spec, Benchmark) else str(spec)
    row: dict[str, Any] = {"benchmark": uri, "package": package_of(uri), "error": None}
    try:
        bench = resolve_benchmark(spec)
        policy, budget = default_policy(outline=False, search_compilations=settings.search_compilations)
        clock = time.monotonic()
        result = search_benchmark(policy, bench, budget, seed=program_seed(settings.seed, uri), dataset=row["package"])
        row["base_seconds"] = round(time.monotonic() - clock, 3)
        if result.error:
            raise CompilerDreamError(f"base search failed: {result.error}")
        floored = result.final > result.Oz
        actions = [OZ_PIPELINE] if floored else list(result.best_actions)
        row.update(
            O0=result.O0, Oz=result.Oz, base_unfloored=result.final, base_compilations=result.compilations,
            base_passes=[OZ_PIPELINE] if floored else list(result.best_passes),
        )  # fmt: skip
        _candidates_on(bench, result.action_space, actions, row, settings)
    except Exception as exc:  # noqa: BLE001 - one program's failure is its row, not the end of the run
        log.warning("%s skipped: %s: %s", uri, type(exc).__name__, exc)
        row["error"] = f"{type(exc).__name__}: {exc}"
    return row


def _candidates_on(bench: Benchmark, space: str, actions: list, row: dict, settings: Settings) -> None:
    """Replay base's sequence in a worker process, then each candidate once on a fork of it."""
    worker = make_worker("process", timeout=STEP_TIMEOUT)
    env = LlvmEnv(action_space=space, step_timeout=STEP_TIMEOUT, worker=worker)
    try:
        env.reset(benchmark=bench)
        if actions:
            _, _, died, _, info = env.multistep(actions)
            if died:
                raise CompilerDreamError(f"replaying base's sequence crashed: {info.get('error_details')}")
        base = int(env.observation["IrInstructionCount"])
        expected = min(row["base_unfloored"], row["Oz"])
        if base != expected:  # a pass that is not deterministic: the replay is the base
            log.warning("%s: base's sequence replayed to %d instructions, not %d", bench.uri, base, expected)
            row["base_replay_mismatch"] = expected
            if base > row["Oz"]:  # floored at -Oz, as optimize is
                env.reset()
                env.multistep([OZ_PIPELINE])
                base = int(env.observation["IrInstructionCount"])
                row["base_passes"] = [OZ_PIPELINE]
        row["base"] = base
        row["text_Oz"] = int(env.observation["ObjectTextSizeOz"]) if settings.text else None
        row["text_base"] = _text_size(env) if settings.text else None
        row["candidates"] = {}
        for name, pipeline in settings.candidates:
            child = env.fork()
            clock = time.monotonic()
            try:
                obs, _, died, _, info = child.step(
                    pipeline, observation_spaces=["IrInstructionCount", "IrSha1"], reward_spaces=[]
                )
                entry: dict[str, Any] = {"raw": None, "count": base, "text": row["text_base"], "error": None}
                if died:
                    entry["error"] = f"{info.get('error_type')}: {info.get('error_details')}"
                    log.warning("%s: %s crashed (counted as no gain): %s", bench.uri, name, entry["error"])
                else:
                    raw = int(obs[0])
                    entry["raw"] = raw
                    entry["deterministic"] = _same_again(env, pipeline, obs[1])
                    if raw < base:  # optimize keeps the candidate only where it is smaller
                        entry["count"] = raw
                        entry["text"] = _text_size(child) if settings.text else None
            except SessionError as exc:  # e.g. the worker died outside a step
                entry = {"raw": None, "count": base, "text": row["text_base"], "error": f"SessionError: {exc}"}
                log.warning("%s: %s failed (counted as no gain): %s", bench.uri, name, exc)
            finally:
                child.close()
            entry["seconds"] = round(time.monotonic() - clock, 3)
            row["candidates"][name] = entry
    finally:
        env.close()
        worker.close()


def _same_again(env: LlvmEnv, pipeline: str, sha1: str) -> bool:
    """Whether `pipeline` applied once more, on a fresh fork of `env`, gives the same module (IrSha1).

    A pipeline that does not (LLVM 19.1.7's gvn-sink on some modules) cannot be in `optimize`:
    its printed `opt -passes=` line would not replay its count.
    """
    again = env.fork()
    try:
        obs, _, died, _, _ = again.step(pipeline, observation_spaces=["IrSha1"], reward_spaces=[])
        return not died and obs[0] == sha1
    finally:
        again.close()


# ============================================================== summaries
def _choice(row: dict, names: list[str]) -> dict:
    """Best-of over `names` on one program: the first with the lowest count (as optimize's best prefix keeps)."""
    best = min(names, key=lambda n: (row["candidates"][n]["count"], names.index(n)))
    return row["candidates"][best]


def set_stats(rows: list[dict], names: list[str] | None) -> dict[str, Any]:
    """The table's figures for best-of over `names` (None: the base itself)."""
    finals, texts, crashed, seconds = [], [], 0, []
    for r in rows:
        if names is None:
            finals.append(r["base"])
            seconds.append(r["base_seconds"])
            continue
        pick = _choice(r, names)
        finals.append(pick["count"])
        if pick["count"] < r["base"] and pick.get("text") and r.get("text_base"):
            texts.append(pick["text"] / r["text_base"])
        crashed += sum(bool(r["candidates"][n]["error"]) for n in names)
        seconds.append(sum(r["candidates"][n]["seconds"] for n in names))
    n = len(rows)
    pairs = list(zip(rows, finals))
    return {
        "programs": n,
        "mean_percent_below_oz": statistics.fmean(percent_below_oz(r["Oz"], f) for r, f in pairs) if n else math.nan,
        "geomean_oz_over_final": geomean(r["Oz"] / max(1, f) for r, f in pairs) if n else math.nan,
        "better_than_oz": sum(f < r["Oz"] for r, f in pairs),
        "improved": None if names is None else sum(f < r["base"] for r, f in pairs),
        "text_ratio_where_improved": geomean(texts) if texts else math.nan,
        "text_compared": len(texts),
        "text_grew": sum(t > 1 for t in texts),
        "crashed": None if names is None else crashed,
        "mean_seconds": statistics.fmean(seconds) if seconds else math.nan,
    }


def best_pair(rows: list[dict], names: list[str]) -> tuple[str, str]:
    """The pair of candidates whose best-of has the highest mean % below -Oz (then geomean; then list order)."""
    scored = []
    for order, pair in enumerate(itertools.combinations(names, 2)):
        s = set_stats(rows, list(pair))
        scored.append((-s["mean_percent_below_oz"], -s["geomean_oz_over_final"], order, pair))
    return min(scored)[3]


def _f(value: float | None, fmt: str) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


HEADER = (
    "| row | programs | mean % below -Oz | × base | geomean Oz/final | better than -Oz | improved (< base) | "
    "geomean .text final/base where improved | .text grew | crashed | mean s/program |"
)


def table(summary: list[dict]) -> str:
    """The summary as a markdown table; `× base` is each row's mean % below -Oz over the base row's (its peer)."""
    lines = [HEADER, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    base = summary[0]["mean_percent_below_oz"]
    for s in summary:
        ratio = s["mean_percent_below_oz"] / base if base > 0 else math.nan
        dash = s["improved"] is None
        text = "—" if dash else f"{_f(s['text_ratio_where_improved'], '.4f')} (n={s['text_compared']})"
        lines.append(
            f"| {s['row']} | {s['programs']} | {_f(s['mean_percent_below_oz'], '+.2f')} | {_f(ratio, '.2f')} | "
            f"{_f(s['geomean_oz_over_final'], '.4f')} | {s['better_than_oz']} | {'—' if dash else s['improved']} | "
            f"{text} | {'—' if dash else s['text_grew']} | {'—' if dash else s['crashed']} | "
            f"{_f(s['mean_seconds'], '.2f')} |"
        )
    return "\n".join(lines)


def not_replayable(rows: list[dict], name: str) -> int:
    """On how many programs candidate `name` gave two different modules from the same input."""
    return sum(r["candidates"][name].get("deterministic") is False for r in rows)


def summarize(rows: list[dict], table_of: dict[str, str]) -> list[dict]:
    """Rows of the table: base, each candidate, the best pair of replayable candidates (the same
    module every time on every program), the shipped set, all candidates."""
    names = list(table_of)
    shipped = shipped_names(table_of)
    unstable = {n: not_replayable(rows, n) for n in names}
    entries: list[tuple[str, list[str] | None]] = [("base: optimize without outlining", None)]
    entries += [(f"`{n}`" + (f" (not replayable on {unstable[n]})" if unstable[n] else ""), [n]) for n in names]
    replayable = [n for n in names if not unstable[n]]
    if len(replayable) >= 2 and rows:
        a, b = best_pair(rows, replayable)
        entries.append((f"**best replayable pair**: `{a}` + `{b}`", [a, b]))
    entries.append(("**shipped OUTLINE_PIPELINES**: " + " + ".join(f"`{n}`" for n in shipped), shipped))
    entries.append((f"best of all {len(names)} candidates (ceiling)", names))
    return [{"row": label, "members": members, **set_stats(rows, members)} for label, members in entries]


# ============================================================== command line
class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", help="files, folders, globs or benchmark URIs (default: --dataset/--split)")
    p.add_argument("--dataset", default=None, help="dataset or task name (default: default, the offline corpus)")
    p.add_argument("--split", default="valid", help="train or valid (default valid); test needs --allow-test")
    p.add_argument("--allow-test", action="store_true", help="measure the test split (never to choose pipelines)")
    p.add_argument("--limit", type=positive(int), default=80, help="programs, spread over packages (default 80)")
    p.add_argument("--seed", type=int, default=0, help="seeds each program's search (with its URI)")
    p.add_argument("--jobs", type=positive(int), default=1, help="programs measured in parallel (default 1)")
    p.add_argument(
        "--search-compilations", type=positive(int), default=None,
        help="the base's budget in compilations instead of optimize's default ~0.5 s (deterministic)",
    )  # fmt: skip
    p.add_argument("--no-text", action="store_true", help=f"skip the .text sizes ({TEXT}: one codegen per result)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def run(argv: list[str]) -> int:
    started = time.monotonic()
    args = build_parser().parse_args(argv)
    if args.inputs and args.dataset is not None:
        raise UsageError("give programs on the command line or --dataset, not both")
    args.dataset = args.dataset or "default"
    try:
        args.split = normalize_mode(args.split)
    except ValueError as exc:
        raise UsageError(f"--split {args.split}: {exc}") from None
    if args.split == "test" and not args.inputs and not args.allow_test:
        raise UsageError(
            "--split test refused: the outlining pipelines are chosen on train/valid only (--allow-test to measure it anyway)"
        )
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    programs, inputs_text, _ = resolve_inputs(args)
    table_of = candidates()
    settings = Settings(args.seed, args.search_compilations, not args.no_text, tuple(table_of.items()))
    base_budget = (
        f"{args.search_compilations} compilations"
        if args.search_compilations
        else "optimize's default (~0.5 s a program)"
    )
    print(
        f"{PROG}: {inputs_text}; {len(table_of)} candidates; base budget {base_budget}; jobs {args.jobs}",
        file=sys.stderr,
    )
    rows: list[dict] = []
    bar = progress_bar(total=len(programs), desc="outline", unit="prog", disable=args.no_progress)

    def record(row: dict) -> None:
        rows.append(row)
        if not row["error"]:
            best = min(c["count"] for c in row["candidates"].values())
            bar.set_postfix_str(
                f"{row['package']}: base {percent_below_oz(row['Oz'], row['base']):+.1f}%, "
                f"best {percent_below_oz(row['Oz'], best):+.1f}% vs -Oz",
                refresh=False,
            )
        bar.update(1)

    if args.jobs <= 1 or len(programs) <= 1:
        for spec in programs:
            record(measure(spec, settings))
    else:
        with ProcessPoolExecutor(args.jobs, initializer=_worker_init) as pool:
            futures = {pool.submit(measure, spec, settings): spec for spec in programs}
            for fut in as_completed(futures):
                try:
                    record(fut.result())
                except Exception as exc:  # noqa: BLE001 - a pool process that died loses its program only
                    spec = futures[fut]
                    uri = spec.uri if isinstance(spec, Benchmark) else str(spec)
                    log.warning("%s: the pool process failed: %s: %s", uri, type(exc).__name__, exc)
                    record(
                        {"benchmark": uri, "package": package_of(uri), "error": f"pool: {type(exc).__name__}: {exc}"}
                    )
    bar.close()
    order = {(p.uri if isinstance(p, Benchmark) else str(p)): i for i, p in enumerate(programs)}
    rows.sort(key=lambda r: order.get(r["benchmark"], len(order)))
    ok = [r for r in rows if not r["error"]]
    failed = [r for r in rows if r["error"]]
    summary = summarize(ok, table_of)
    text = table(summary)
    notes = [
        f"{len(failed)} program(s) skipped (load or base search failed; reasons in results.json)" if failed else None,
        "the base's budget is in seconds: its counts depend on machine speed and load (--search-compilations N "
        "makes the run deterministic)" if not args.search_compilations else None,
    ]  # fmt: skip
    notes = [n for n in notes if n]
    meta = {
        **run_header("benchmarks/outline_choice.py", argv, args, inputs_text),
        "programs": len(rows),
        "measured": len(ok),
        "seed": args.seed,
        "jobs": args.jobs,
        "base_budget": base_budget,
        "wall_seconds": round(time.monotonic() - started, 1),
        "candidates": table_of,
        "shipped": dict(zip(shipped_names(table_of), OUTLINE_PIPELINES)),
        "notes": notes,
    }
    out.mkdir(parents=True, exist_ok=True)
    data = {**meta, "summary": summary, "rows": rows}
    atomic_write(out / "results.json", json.dumps(_nan_to_none(data), indent=1) + "\n")
    lines = [
        f"# The outlining pipelines of `optimize`: {len(ok)} programs ({inputs_text})",
        "",
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']}; LLVM {meta['llvm']}; jobs {args.jobs}; wall time {meta['wall_seconds']:.0f} s",
        f"- base: `default_policy(outline=False)` (optimize without outlining), budget {base_budget}, floored at -Oz; "
        f"seed {args.seed}",
        "- each candidate: applied once to base's module, count = min(candidate, base) (optimize keeps the smaller); "
        "`× base` = mean % below -Oz over base's; `.text`: object-file text bytes (final/base) over the programs the "
        "row improved",
        "",
        text,
        "",
        "## Candidates",
        "",
        *[f"- `{n}`: `{p}`" + (" (shipped)" if n in meta["shipped"] else "") for n, p in table_of.items()],
        "",
    ]
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    if failed:
        lines += ["## Skipped programs", "", *[f"- {r['benchmark']}: {r['error'][:200]}" for r in failed], ""]
    atomic_write(out / "summary.md", "\n".join(lines))
    print(f"{lines[0][2:]}\n\n{text}")
    for n in notes:
        print(f"note: {n}")
    print(f"results: {out}")
    if rows and not ok:
        print(f"{PROG}: every program failed (see {out / 'summary.md'})", file=sys.stderr)
        return 1
    return 0


def _worker_init() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (2: bad command line or input, before any work)."""
    return script_main(PROG, run, argv)


if __name__ == "__main__":
    sys.exit(main())
