"""How much smaller than -Oz each method makes programs it has never seen: one table, one run.

A measurement, not a test. Every method (row) runs on the same programs through the
search harness (`compilerdream.compiler.search.search_benchmark`), side by side:

* `-Oz`, `-O3`: one compilation each.
* `coreset-nvp50`: Coreset-NVP's 50 sequences, from -O0 as published; best prefix kept.
* `coreset-nvp50-both`: the same 50 sequences from -O0 and from -Oz's output.
* `coreset`: the shipped LLVM-19 coreset (or `--coreset FILE`).
* `random`: random search with, per program, as many compilations as the `coreset` row used
  on that program (measured first), from -O0 and from -Oz (half the budget each).
* `optimize`: `compilerdream optimize`'s default method (`compilerdream.compiler.default_optimizer.default_policy`),
  timed around the whole call; its result is floored at -Oz, as `compilerdream optimize` does.
* with `--checkpoint DIR`: `agent-rollout` (the agent's one greedy rollout: one trial of one
  episode, argmax actions, no random actions), `guided` (guided search, with the `random` row's
  budget) and `agent-vp-top<k>` (value prediction: the agent ranks the coreset's sequences by
  their best predicted prefix return; only the top k sequences are compiled, best prefix kept).

Columns: programs, failed, arithmetic-mean % below -Oz (GRACE's metric: mean over programs of
100 * (Oz - final) / Oz; negative when larger than -Oz), geomean Oz/final (CompilerDream's metric),
share of programs better / worse than -Oz, median and p95 seconds per program, mean compilations.
Also a per-package table for the `optimize` and `coreset` rows.

    python3 benchmarks/quality.py                        # the default corpus's test split (all of it)
    python3 benchmarks/quality.py --quick --jobs 2       # 14 programs (2 per test package), about a minute or two
    python3 benchmarks/quality.py --dataset default --split val --limit 100 --jobs 2
    python3 benchmarks/quality.py examples/programs/*.c --methods oz,coreset-nvp50,random
    python3 benchmarks/quality.py --checkpoint runs/demo/agent --limit 50

Outputs in --out (default runs/quality): results.json, results.csv, summary.md, quality.png.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import io
import json
import logging
import math
import os
import shlex
import statistics
import sys
import time
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from anywhere without installing
    sys.path.insert(0, str(REPO))

from compilerdream.compiler.benchmarks import Benchmark, resolve_benchmark  # noqa: E402
from compilerdream.compiler.coreset import CoresetPolicy, is_shipped, load_coreset  # noqa: E402
from compilerdream.compiler.default_optimizer import OUTLINE_PIPELINES, Outline, default_policy  # noqa: E402
from compilerdream.compiler.errors import CompilerDreamError  # noqa: E402
from compilerdream.compiler.fileio import atomic_write  # noqa: E402
from compilerdream.compiler.metrics import geomean, percent_below_oz  # noqa: E402
from compilerdream.compiler.progress import line_buffered_stdout, progress_bar  # noqa: E402
from compilerdream.compiler.search import (  # noqa: E402
    Budget,
    RandomSearch,
    SearchPolicy,
    SearchResult,
    make_policy,
    search_benchmark,
)
from compilerdream.optimize import positive  # noqa: E402
from compilerdream.pretrained import resolve_checkpoint  # noqa: E402

PROG = "quality.py"
log = logging.getLogger("quality")

#: Method keys (for --methods) in the order they run on each program: `coreset` before
#: `random` and `guided`, whose budgets are the compilations `coreset` used on the program.
ORDER = (
    "oz", "o3", "oz-outline", "coreset-nvp50", "coreset-nvp50-both", "coreset", "random", "optimize-no-outline",
    "optimize", "agent-rollout", "guided", "agent-vp",
)  # fmt: skip
#: Rows timed around a whole call of their own, floored at -Oz (as `compilerdream optimize` is).
OPTIMIZE_METHODS = ("optimize", "optimize-no-outline")
AGENT_METHODS = ("agent-rollout", "guided", "agent-vp")
BASELINES = ("oz", "o3")
ONE_COMPILATION = Budget(compilations=1)
#: Budget of `random` and `guided` when the `coreset` row is not run (or failed on the program).
DEFAULT_MATCHED = 300
QUICK_MATCHED = 60
QUICK_LIMIT = 14  # two programs from each of the 7 packages of the default test split
TOP_K = 5
#: Seconds a pass may run before it counts as a hang (the env's default).
STEP_TIMEOUT = 60.0
#: Per-package table: these rows when present (else every searching row).
PACKAGE_METHODS = ("optimize", "coreset")


class UsageError(Exception):
    """Bad command line or input: one line on stderr, exit code 2."""


# ============================================================== settings and rows
@dataclass(frozen=True)
class Settings:
    """What every worker needs to build the methods (picklable: sent to each process)."""

    methods: tuple[str, ...]
    seed: int = 0
    coreset: str = "default"
    checkpoint: str | None = None
    device: str = "auto"
    top_k: int = TOP_K
    matched_fallback: int = DEFAULT_MATCHED
    labels: tuple[tuple[str, str], ...] = ()

    def label(self, key: str) -> str:
        return dict(self.labels).get(key, key)


ROW_FIELDS = (
    "benchmark", "package", "method", "O0", "Oz", "final", "reduction", "percent_below_oz",
    "walltime", "compilations", "budget", "start", "error", "final_unfloored", "best_passes", "commandline",
)  # fmt: skip


def program_seed(seed: int, uri: str) -> int:
    """The seed of one program: from --seed and its URI only (so results do not depend on --jobs or order)."""
    return int(hashlib.sha256(f"{seed}:{uri}".encode()).hexdigest()[:8], 16)


def package_of(uri: str) -> str:
    """The dataset-relative folder of a benchmark: benchmark://default/jq/src/main.bc -> jq.

    For a file (file:// URI or path) inside a dataset folder (the nearest folder above it
    with metadata*.json or manifest.json, e.g. data/default/jq/src/main.bc) it is the first
    folder below the dataset folder (jq); a program at the top of its dataset gets the
    dataset's name; any other file its parent folder's name.
    """
    if uri.startswith(("benchmark://", "generator://")):
        rest = uri.split("://", 1)[1]
        dataset, _, inside = rest.partition("/")
        return inside.split("/", 1)[0] if "/" in inside else dataset
    path = Path(uri[len("file://") :] if uri.startswith("file://") else uri).absolute()
    root = _dataset_root(str(path.parent))
    if root is None:
        return path.parent.name or "."
    inside = path.relative_to(root).parts
    return inside[0] if len(inside) > 1 else Path(root).name


_DATASET_ROOTS: dict[str, str | None] = {}  # a plain dict, not lru_cache: Ray sends this script's functions by value


def _dataset_root(directory: str) -> str | None:
    """The nearest folder at or above `directory` holding dataset metadata (as `metrics.dataset_of` finds it)."""
    if directory not in _DATASET_ROOTS:
        _DATASET_ROOTS[directory] = next(
            (
                str(folder)
                for folder in (Path(directory), *Path(directory).parents)
                if (folder / "manifest.json").is_file()
                or (folder / "metadata.json").is_file()
                or any(folder.glob("metadata_*.json"))
            ),
            None,
        )
    return _DATASET_ROOTS[directory]


def result_row(
    result: SearchResult, label: str, package: str, walltime: float | None = None, floor: bool = False
) -> dict:
    """A SearchResult as one row of results.json; `floor` caps `final` at -Oz's count (optimize's guarantee)."""
    row: dict[str, Any] = {
        "benchmark": result.benchmark, "package": package, "method": label, "O0": result.O0, "Oz": result.Oz,
        "final": result.final, "reduction": result.reduction, "percent_below_oz": 0.0,
        "walltime": round(result.walltime if walltime is None else walltime, 4), "compilations": result.compilations,
        "budget": result.budget, "start": result.start, "error": result.error, "final_unfloored": None,
        "best_passes": list(result.best_passes), "commandline": result.commandline,
    }  # fmt: skip
    if result.error:
        row["reduction"] = 0.0
        return row
    if floor and result.final > result.Oz:
        row["final_unfloored"] = result.final
        row["final"] = result.Oz
        row["best_passes"], row["commandline"] = ["default<Oz>"], "opt -passes='default<Oz>' input.bc -o output.bc"
    row["reduction"] = result.Oz / max(1, row["final"])
    row["percent_below_oz"] = percent_below_oz(result.Oz, row["final"])
    return row


def failed_row(uri: str, label: str, package: str, error: str) -> dict:
    row = {k: None for k in ROW_FIELDS}
    row.update(benchmark=uri, package=package, method=label, O0=0, Oz=0, final=0, reduction=0.0, percent_below_oz=0.0,
               walltime=0.0, compilations=0, budget="", start="o0", error=error, best_passes=[], commandline="")  # fmt: skip
    return row


# ============================================================== the agent's policies
def _agent_pieces():
    """The agent modules (torch); imported only with --checkpoint."""
    from compilerdream import coreset as vp
    from compilerdream import search as guided
    from compilerdream.task import TaskSettings

    return guided, vp, TaskSettings


@dataclass
class AgentRows:
    """The agent's policies for one process (loaded once)."""

    rollout: Any = None
    guided: Any = None
    vp: Any = None
    act_space: str = "NoLimit"
    start: str = "o0"
    episode: int = 45
    step_timeout: float = 60.0
    vp_problem: str | None = None


def load_agent_rows(checkpoint: str, device: str, top_k: int, vp_label: str, coreset: str = "default") -> AgentRows:
    guided, vp, TaskSettings = _agent_pieces()
    agent, config = guided.load_agent(checkpoint, device)
    settings = TaskSettings.from_config(config)
    rows = AgentRows(
        act_space=settings.act_space, start=settings.start, episode=guided.episode_length(settings),
        step_timeout=settings.step_timeout,
    )  # fmt: skip
    p_random = float(config.get("search.p_random", guided.P_RANDOM))
    rows.guided = guided.GuidedSearch(
        agent, settings, p_random=p_random, temperature=float(config.get("actor.temp", 1.0))
    )
    greedy = guided.GuidedSearch(agent, settings, p_random=0.0, temperature=None, mode="eval")
    rows.rollout = guided.OneRollout(greedy)
    try:
        rows.vp = vp.ValuePrediction(
            agent, settings, coreset, top_k, bool(config.get("eval_state_mean", True)), vp_label
        )
    except ValueError as exc:
        rows.vp_problem = str(exc)
    return rows


# ============================================================== methods per process
@dataclass
class Methods:
    """Everything a process needs to run the rows of `Settings` (built once per process)."""

    policies: dict[str, SearchPolicy] = field(default_factory=dict)
    budgets: dict[str, Budget] = field(default_factory=dict)
    starts: dict[str, str] = field(default_factory=dict)
    agent: AgentRows | None = None


_PROCESS_METHODS: dict[str, Methods] = {}  # by repr(Settings): built once per process


def coreset_budget(policy) -> Budget:
    """Enough for every sequence of a CoresetPolicy: the cost is the coreset's, not a budget's."""
    return Budget(compilations=policy.coreset.total_passes + len(policy.coreset) + 1)


def build_methods(settings: Settings) -> Methods:
    """The policies of `settings.methods` (availability was checked by `check_methods`)."""
    cached = _PROCESS_METHODS.get(repr(settings))
    if cached is not None:
        return cached
    m = Methods()
    keys = set(settings.methods)
    for key in ("oz", "o3"):
        if key in keys:
            m.policies[key], m.budgets[key] = make_policy(key), ONE_COMPILATION
    coreset_specs = {
        "coreset-nvp50": ("nvp50", None), "coreset-nvp50-both": ("nvp50", "both"), "coreset": (settings.coreset, None),
    }  # fmt: skip
    for key, (spec, start) in coreset_specs.items():
        if key in keys:
            policy = CoresetPolicy(spec, start=start, name=settings.label(key))
            m.policies[key], m.budgets[key] = policy, coreset_budget(policy)
    if "random" in keys:
        m.policies["random"] = RandomSearch()
    for key in OPTIMIZE_METHODS:
        if key in keys:
            m.policies[key], m.budgets[key] = default_policy(settings.coreset, outline=key == "optimize")
    if "oz-outline" in keys:
        m.policies["oz-outline"] = Outline(from_oz=True)
        m.budgets["oz-outline"] = Budget(compilations=1 + len(OUTLINE_PIPELINES))
    if keys & set(AGENT_METHODS):
        m.agent = load_agent_rows(
            settings.checkpoint, settings.device, settings.top_k, settings.label("agent-vp"), settings.coreset
        )
    _PROCESS_METHODS[repr(settings)] = m
    return m


def run_method(
    key: str, bench: Benchmark, m: Methods, settings: Settings, seed: int, matched: int | None, worker
) -> dict:
    """One row: method `key` on `bench`; its envs use the program's compiler `worker` (except `optimize`)."""
    from compilerdream.compiler.env import LlvmEnv

    label, package = settings.label(key), package_of(bench.uri)
    run: dict[str, Any] = dict(seed=seed, dataset=package, action_space="NoLimit")
    run["env_factory"] = lambda: LlvmEnv(action_space="NoLimit", worker=worker)
    if key in ("oz", "o3", "oz-outline"):
        return result_row(search_benchmark(m.policies[key], bench, m.budgets[key], **run), label, package)
    if key.startswith("coreset"):
        row = result_row(search_benchmark(m.policies[key], bench, m.budgets[key], **run), label, package)
        row["budget"] = f"the whole coreset ({m.policies[key].coreset.total_passes} passes)"
        return row
    if key == "random":
        budget = Budget(compilations=matched or settings.matched_fallback)
        return result_row(search_benchmark(m.policies[key], bench, budget, **run, start="both"), label, package)
    if key in OPTIMIZE_METHODS:  # as a call of its own: its own compiler worker, timed around the whole call
        del run["env_factory"]
        clock = time.monotonic()
        result = search_benchmark(m.policies[key], bench, m.budgets[key], **run)
        return result_row(result, label, package, walltime=time.monotonic() - clock, floor=True)
    agent = m.agent
    run.update(action_space=agent.act_space)
    run["env_factory"] = lambda: LlvmEnv(action_space=agent.act_space, step_timeout=agent.step_timeout, worker=worker)
    start = {"start": agent.start}
    if key == "agent-rollout":
        budget = Budget(compilations=agent.episode + (agent.start != "o0"))  # -Oz as the start costs one
        return result_row(search_benchmark(agent.rollout, bench, budget, **run, **start), label, package)
    if key == "guided":
        budget = Budget(compilations=matched or settings.matched_fallback)
        return result_row(search_benchmark(agent.guided, bench, budget, **run, **start), label, package)
    if key == "agent-vp":
        budget = Budget(compilations=10_000)  # the top k sequences are the cost; this never binds
        run.update(action_space="NoLimit")
        row = result_row(search_benchmark(agent.vp, bench, budget, **run), label, package, floor=True)
        row["budget"] = f"top {settings.top_k} predicted sequences"
        return row
    raise ValueError(f"unknown method {key}")


def run_order(keys: Sequence[str]) -> list[str]:
    """`optimize` first (nothing of the program is cached yet, as in a call of its own), then the table's order."""
    return sorted(keys, key=lambda k: (k != "optimize", ORDER.index(k)))


def measure_program(spec: str | Benchmark, settings: Settings) -> list[dict]:
    """Every method of `settings` on one program (runs in a pool process with --jobs > 1).

    Never raises: a program that does not load, or a method that fails on it, gives rows with `error` set.
    The methods share one compiler worker process per program (started once, not once per method);
    a pass that crashes it is isolated as usual (the worker is replaced).
    """
    from compilerdream.compiler.worker import make_worker

    uri = spec.uri if isinstance(spec, Benchmark) else str(spec)
    package = package_of(uri)
    try:
        bench = resolve_benchmark(spec)
    except Exception as exc:  # noqa: BLE001 - a broken program is a failed row, not the end of the run
        log.warning("cannot load %s: %s", uri, exc)
        return [
            failed_row(uri, settings.label(k), package, f"load: {type(exc).__name__}: {exc}") for k in settings.methods
        ]
    m = build_methods(settings)
    seed = program_seed(settings.seed, uri)
    rows: dict[str, dict] = {}
    matched = None
    worker = make_worker("process", timeout=STEP_TIMEOUT)
    try:
        for key in run_order(settings.methods):
            try:
                row = run_method(key, bench, m, settings, seed, matched, worker)
            except Exception as exc:  # noqa: BLE001
                log.warning("%s on %s failed: %s: %s", key, uri, type(exc).__name__, exc)
                row = failed_row(uri, settings.label(key), package, f"{type(exc).__name__}: {exc}")
            if key == "coreset" and not row["error"]:
                matched = row["compilations"]
            rows[key] = row
    finally:
        worker.close()
    return [rows[k] for k in settings.methods]


def _size(spec: str | Benchmark) -> int:
    """Bytes of a program's bitcode (0 when unknown): the scheduling order of --jobs > 1 (results do not depend on it)."""
    if isinstance(spec, Benchmark):
        return len(spec.data)
    path = spec[len("file://") :] if spec.startswith("file://") else spec
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _worker_init() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")


def resume_partial(partial: Path, settings: Settings, specs: Sequence[str | Benchmark]) -> dict[int, list[dict]]:
    """Programs a killed run with the same settings and programs finished (index -> rows); else a fresh start.

    `results.partial.jsonl` gets one line per finished program; `results.partial.settings.json`
    says which settings and programs those lines belong to.
    """
    stamp_path = partial.with_suffix(".settings.json")
    stamp = {
        "settings": repr(settings),
        "programs": [s.uri if isinstance(s, Benchmark) else str(s) for s in specs],
    }
    try:
        same = json.loads(stamp_path.read_text()) == stamp
    except (OSError, ValueError):
        same = False
    done: dict[int, list[dict]] = {}
    if same and partial.exists():
        for line in partial.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                done[int(entry["index"])] = entry["rows"]
            except (ValueError, KeyError, TypeError):  # the line a kill cut short
                continue
        return done
    partial.unlink(missing_ok=True)
    stamp_path.write_text(json.dumps(stamp))
    return done


def _measure_item(item: tuple[int, str | Benchmark], settings: Settings) -> list[dict]:
    return measure_program(item[1], settings)


def measure_all(
    specs: Sequence[str | Benchmark],
    settings: Settings,
    jobs: int,
    progress: bool,
    partial: Path | None,
    executor: Any = None,
    done: dict[int, list[dict]] | None = None,
) -> list[list[dict]]:
    """`measure_program` on every program, in input order; a pool process that dies fails its program only.

    `executor` (compilerdream.compiler.executor): where; None is a local pool of `jobs` processes.
    `done`: rows of programs measured by an earlier run of the same settings (by index; not run again).
    """
    from compilerdream.compiler.executor import LocalExecutor

    results: list[list[dict] | None] = [None] * len(specs)
    for i, rows in (done or {}).items():
        results[i] = rows
    bar = progress_bar(total=len(specs), initial=len(done or {}), desc="quality", unit="prog", disable=not progress)

    def record(i: int, rows: list[dict]) -> None:
        results[i] = rows
        if partial is not None:
            with partial.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"index": i, "rows": rows}) + "\n")
        ok = [r for r in rows if not r["error"] and r["method"] not in ("-Oz", "-O3")]
        best = max((r["percent_below_oz"] for r in ok), default=0.0)
        bar.set_postfix_str(f"{package_of(rows[0]['benchmark'])}: best {best:+.1f}% vs -Oz", refresh=False)
        bar.update(1)

    def fail(i: int, exc: BaseException) -> list[dict]:
        uri = specs[i].uri if isinstance(specs[i], Benchmark) else str(specs[i])
        log.warning("%s: the worker process failed: %s: %s", uri, type(exc).__name__, exc)
        return [
            failed_row(uri, settings.label(k), package_of(uri), f"worker died: {type(exc).__name__}: {exc}")
            for k in settings.methods
        ]

    todo = [i for i in range(len(specs)) if results[i] is None]
    if executor is None and (jobs <= 1 or len(todo) <= 1):
        for i in todo:
            record(i, measure_program(specs[i], settings))
    else:
        # largest programs first (by bitcode size) so that no large one is left alone at the end
        todo.sort(key=lambda i: -_size(specs[i]))
        executor = executor or LocalExecutor(jobs, initializer=_worker_init)
        for (i, _), rows, error in executor.map_unordered(_measure_item, [(i, specs[i]) for i in todo], settings):
            record(i, rows if error is None else fail(i, error))
    bar.close()
    return [r for r in results if r is not None]


# ============================================================== availability
def check_methods(requested: Sequence[str], args) -> tuple[list[str], list[str]]:
    """The rows that can run here and notes for those that cannot (missing components are notes, not crashes).

    Bad input the user gave (an unreadable --coreset FILE, a broken --checkpoint) is a UsageError.
    """
    keep, notes = [], []
    for key in requested:
        if key.startswith("coreset"):
            try:
                load_coreset("nvp50" if key.startswith("coreset-nvp50") else args.coreset)
            except CompilerDreamError as exc:
                if not is_shipped(args.coreset):
                    raise UsageError(f"--coreset {args.coreset}: {_one_line(str(exc))}") from None
                notes.append(f"{key} not run: {_one_line(str(exc))}")
                continue
        elif key in OPTIMIZE_METHODS:
            try:
                default_policy(args.coreset)
            except CompilerDreamError as exc:  # e.g. the shipped coreset file is missing
                if not is_shipped(args.coreset):
                    raise UsageError(f"--coreset {args.coreset}: {_one_line(str(exc))}") from None
                notes.append(f"{key} not run: default_policy() failed: {_one_line(str(exc))}")
                continue
        elif key in AGENT_METHODS:
            if not args.checkpoint:
                notes.append(f"{key} not run: needs --checkpoint DIR (a trained agent)")
                continue
        keep.append(key)
    return keep, notes


def check_agent(args, keys: list[str], notes: list[str], label: str) -> list[str]:
    """Load the checkpoint once here (a broken one is a UsageError); drop agent-vp if the agent cannot rank the coreset."""
    if not set(keys) & set(AGENT_METHODS):
        return keys
    if not os.path.isdir(args.checkpoint):
        raise UsageError(f"--checkpoint {args.checkpoint}: no such directory")
    try:
        rows = load_agent_rows(args.checkpoint, args.device, args.top_k, label, args.coreset)
    except ImportError as exc:
        notes.append(f"agent rows not run: the agent package is unavailable ({exc})")
        return [k for k in keys if k not in AGENT_METHODS]
    except Exception as exc:  # noqa: BLE001
        raise UsageError(
            f"--checkpoint {args.checkpoint}: cannot load the agent: {type(exc).__name__}: {_one_line(str(exc))}"
        ) from None
    if "agent-vp" in keys and rows.vp is None:
        notes.append(f"agent-vp not run: {_one_line(rows.vp_problem or '')}")
        keys = [k for k in keys if k != "agent-vp"]
    return keys


def _one_line(text: str) -> str:
    return " | ".join(line.strip() for line in str(text).splitlines() if line.strip())


# ============================================================== inputs
def spread_subset(items: Sequence[str], limit: int | None) -> list[str]:
    """At most `limit` items, spread over packages (the rule the summary states).

    The `limit` slots are shared among the packages as equally as possible (a package with
    fewer programs than its share gives the rest to the others; the remainder goes to the
    packages that come first in split order); within a package the chosen programs are evenly
    spaced over its programs in split order (positions floor(j * m / q)). When `limit` is
    smaller than the number of packages, `limit` packages evenly spaced over the package list
    get one program each. The result keeps split order.
    """
    if limit is None or limit >= len(items):
        return list(items)
    groups: OrderedDict[str, list[int]] = OrderedDict()
    for i, item in enumerate(items):
        groups.setdefault(package_of(item), []).append(i)
    names = list(groups)
    if limit < len(names):
        names = [names[(j * len(names)) // limit] for j in range(limit)]
    quota = {n: 0 for n in names}
    left = limit
    while left > 0:
        open_ = [n for n in names if quota[n] < len(groups[n])]
        share = max(1, left // len(open_))
        for n in open_:
            take = min(share, len(groups[n]) - quota[n], left)
            quota[n] += take
            left -= take
            if left == 0:
                break
    chosen: list[int] = []
    for n in names:
        members, q = groups[n], quota[n]
        chosen.extend(members[(j * len(members)) // q] for j in range(q))
    return [items[i] for i in sorted(chosen)]


def resolve_inputs(args) -> tuple[list[str | Benchmark], str, int]:
    """(programs, a description of the inputs, the size before --limit); bad input is a UsageError."""
    from compilerdream.evaluate import UsageError as EvalUsage
    from compilerdream.evaluate import dataset_benchmarks, expand_specs

    if args.inputs:
        try:
            specs = expand_specs(args.inputs)
        except EvalUsage as exc:
            raise UsageError(str(exc)) from None
        total = len(specs)
        specs = spread_subset(specs, args.limit)
        programs: list[str | Benchmark] = []
        for spec in specs:  # files are read (and C compiled) here, so a bad one stops the run before any work
            if "://" in spec and not spec.startswith("file://"):
                programs.append(spec)
                continue
            try:
                programs.append(resolve_benchmark(spec))
            except CompilerDreamError as exc:
                raise UsageError(f"{spec}: {_one_line(str(exc))}") from None
        what = f"{total} program(s) given on the command line" + (
            f", {len(programs)} chosen" if len(programs) < total else ""
        )
        return programs, what, total
    try:
        uris = dataset_benchmarks(args.dataset, args.split, None)
    except EvalUsage as exc:
        raise UsageError(str(exc)) from None
    if not uris:
        raise UsageError(f"--dataset {args.dataset} --split {args.split}: the split is empty")
    chosen = spread_subset(uris, args.limit)
    what = f"dataset {args.dataset}, split {args.split}: {len(chosen)} of {len(uris)} programs"
    return list(chosen), what, len(uris)


# ============================================================== tables
def _p95(values: Sequence[float]) -> float:
    """The 95th percentile, linear between the closest ranks (numpy's default)."""
    xs = sorted(values)
    if not xs:
        return math.nan
    pos = 0.95 * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def method_stats(rows: Sequence[dict]) -> dict[str, Any]:
    """The table's columns for one method's rows (failed rows are counted, then left out of the figures)."""
    ok = [r for r in rows if not r["error"]]
    n = len(ok)
    walls = [float(r["walltime"]) for r in ok]
    return {
        "programs": len(rows),
        "failed": len(rows) - n,
        "mean_percent_below_oz": statistics.fmean(r["percent_below_oz"] for r in ok) if ok else math.nan,
        "geomean_reduction": geomean(r["reduction"] for r in ok) if ok else math.nan,
        "better_share": sum(r["final"] < r["Oz"] for r in ok) / n if n else math.nan,
        "worse_share": sum(r["final"] > r["Oz"] for r in ok) / n if n else math.nan,
        "median_seconds": statistics.median(walls) if walls else math.nan,
        "p95_seconds": _p95(walls),
        "mean_compilations": statistics.fmean(r["compilations"] for r in ok) if ok else math.nan,
    }


def _f(value: float, fmt: str) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


MAIN_HEADER = (
    "| method | programs | failed | mean % below -Oz | geomean Oz/final | better than -Oz | worse than -Oz "
    "| median s/program | p95 s/program | mean compilations |"
)


def main_table(stats: dict[str, dict]) -> str:
    lines = [MAIN_HEADER, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for method, s in stats.items():
        lines.append(
            f"| {method} | {s['programs']} | {s['failed']} | {_f(s['mean_percent_below_oz'], '+.2f')} | "
            f"{_f(s['geomean_reduction'], '.4f')} | {_f(100 * s['better_share'], '.0f')}% | "
            f"{_f(100 * s['worse_share'], '.0f')}% | {_f(s['median_seconds'], '.3f')} | {_f(s['p95_seconds'], '.3f')} | "
            f"{_f(s['mean_compilations'], '.0f')} |"
        )
    return "\n".join(lines)


def package_table(rows: Sequence[dict], methods: Sequence[str]) -> str:
    """Per package: programs and, per method, mean % below -Oz, geomean, better/worse counts; worst first."""
    by = defaultdict(list)
    for r in rows:
        if r["method"] in methods:
            by[(r["package"], r["method"])].append(r)
    packages = sorted({p for p, _ in by})
    stats = {(p, m): method_stats(by[(p, m)]) for p in packages for m in methods if by[(p, m)]}
    first = methods[0]

    def worst(p: str) -> tuple:
        v = stats.get((p, first), {}).get("mean_percent_below_oz", math.nan)
        return (math.isnan(v), v, p)

    head = "| package | programs |" + "".join(
        f" {m}: mean % below -Oz | {m}: geomean | {m}: better/worse |" for m in methods
    )
    lines = [head, "|---|---:|" + "---:|---:|---:|" * len(methods)]
    for p in sorted(packages, key=worst):
        n = max(s["programs"] for (q, _), s in stats.items() if q == p)
        cells = []
        for m in methods:
            s = stats.get((p, m))
            if s is None:
                cells.append(" n/a | n/a | n/a |")
                continue
            ok = s["programs"] - s["failed"]
            better = round(s["better_share"] * ok) if ok else 0
            worse = round(s["worse_share"] * ok) if ok else 0
            fail = f", {s['failed']} failed" if s["failed"] else ""
            cells.append(
                f" {_f(s['mean_percent_below_oz'], '+.2f')} | {_f(s['geomean_reduction'], '.4f')} | {better}/{worse}{fail} |"
            )
        lines.append(f"| {p} | {n} |" + "".join(cells))
    return "\n".join(lines)


# ============================================================== outputs
def llvm_version() -> str:
    try:
        from compilerdream.compiler._core import LLVM_VERSION

        return str(LLVM_VERSION)
    except Exception:  # noqa: BLE001
        return "unknown"


def write_csv(path: Path, rows: Sequence[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(ROW_FIELDS))
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(row.get(k)) if isinstance(row.get(k), list) else row.get(k) for k in ROW_FIELDS})
    atomic_write(path, buf.getvalue())


def write_plot(path: Path, rows: Sequence[dict], methods: Sequence[str]) -> str | None:
    """Per-program % below -Oz per method (box + points); returns a note when it cannot be drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot skipped: matplotlib is not installed"
    data = [[r["percent_below_oz"] for r in rows if r["method"] == m and not r["error"]] for m in methods]
    shown = [(m, d) for m, d in zip(methods, data) if d]
    if not shown:
        return "plot skipped: no successful results"
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(shown) + 2), 4.5))
    ax.axhline(0.0, color="grey", lw=1, ls="--")
    ax.boxplot([d for _, d in shown], showfliers=False, widths=0.5)
    for i, (_, d) in enumerate(shown, start=1):
        jitter = [i + 0.18 * (((k * 0.6180339887) % 1.0) - 0.5) for k in range(len(d))]  # deterministic spread
        ax.scatter(jitter, d, s=9, alpha=0.5)
    ax.set_xticks(range(1, len(shown) + 1), [m for m, _ in shown], rotation=25, ha="right")
    ax.set_ylabel("% below -Oz (per program; > 0 is smaller)")
    ax.set_title("Instruction count relative to -Oz, per program")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, buf.getvalue())
    return None


METRICS_TEXT = """\
- **mean % below -Oz** (GRACE's metric): the arithmetic mean over programs of 100 * (Oz - final) / Oz,
  where Oz and final are LLVM IR instruction counts; negative when a method is larger than -Oz.
- **geomean Oz/final** (CompilerDream's metric): the geometric mean over programs of Oz / final; above 1 beats -Oz.
- **better / worse than -Oz**: the share of programs with final < Oz / final > Oz (the rest tie).
- **s/program**: the method's wall time per program (the search harness's clock: baselines and loading are not
  counted), except `optimize`, timed around the whole `search_benchmark` call. **compilations**: passes applied
  (-Oz / -O3: one pipeline = one compilation).
- Failed programs (load error, crash) are counted in `failed` and left out of every other column."""


def method_notes(keys: Sequence[str], settings: Settings, optimize_budget: str | None) -> list[str]:
    lab = settings.label
    text = {
        "coreset-nvp50": "Coreset-NVP's 50 sequences (found on LLVM 10), each from -O0 as published; best prefix kept",
        "coreset-nvp50-both": "the same 50 sequences, each from -O0 and from -Oz's output (-Oz charged once)",
        "coreset": f"the coreset {settings.coreset!r} (`compilerdream.compiler.coreset`), every sequence from its stored start",
        "random": (
            "random search from -O0 and -Oz (half the budget each), with as many "
            f"compilations on each program as the `{lab('coreset')}` row used there"
            + ("" if "coreset" in keys else f" (that row is not run here: {settings.matched_fallback} compilations)")
        ),
        "oz-outline": (
            "-Oz, then each of `optimize`'s outlining pipelines (LLVM's IR outliner + clean-up, "
            "`default_optimizer.OUTLINE_PIPELINES`) on -Oz's output, the best kept"
        ),
        "optimize-no-outline": (
            f"`compilerdream optimize --no-outline`: the `{lab('optimize')}` row without the IR outliner (only "
            "CompilerGym's 124 passes and -Oz), same budget and floor"
        ),
        "optimize": (
            f"`compilerdream optimize`'s default method (`default_policy()`, budget {optimize_budget}): the coreset, "
            "LLVM's IR outliner on the best, then search; final floored at "
            "-Oz's count, as `compilerdream optimize` returns -Oz's output when search loses (`final_unfloored` in "
            "results.json keeps the search's own count); wall time around the whole call"
        ),
        "agent-rollout": "the agent's one greedy rollout: one episode, argmax actions, no random actions (one trial)",
        "guided": "guided search (sampled actions, p_random from the checkpoint's config) with the `random` row's budget",
        "agent-vp": (
            f"value prediction: the agent ranks the sequences of the coreset {settings.coreset!r} by their best "
            f"predicted prefix return; only the top {settings.top_k} are compiled (from their stored start, each "
            "pass one compilation), the best prefix kept, -Oz the fallback"
        ),
    }
    return [f"`{lab(k)}`: {text[k]}" for k in keys if k in text]


def write_outputs(
    out: Path, rows: list[dict], stats: dict[str, dict], settings: Settings, meta: dict[str, Any], notes: list[str]
) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("results.json", "results.csv", "summary.md", "quality.png")}
    methods = [settings.label(k) for k in settings.methods]
    plot_note = write_plot(paths["quality.png"], rows, methods)
    if plot_note:
        notes = [*notes, plot_note]
        paths.pop("quality.png")
    pkg_methods = [settings.label(k) for k in PACKAGE_METHODS if k in settings.methods] or [
        settings.label(k) for k in settings.methods if k not in BASELINES
    ]
    data = _nan_to_none({**meta, "notes": notes, "methods": methods, "summary": stats, "results": rows})
    atomic_write(paths["results.json"], json.dumps(data, indent=1, default=_json_default, allow_nan=False) + "\n")
    write_csv(paths["results.csv"], rows)
    lines = [
        "# Quality on unseen code: how much smaller than -Oz",
        "",
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']}",
        f"- LLVM: {meta['llvm']}",
        f"- programs: {meta['programs']} ({meta['inputs']})",
        f"- subset rule: {meta['subset_rule']}",
        f"- seed: {settings.seed} (each program's seed comes from the seed and its URI: results do not depend on --jobs)",
        f"- jobs: {meta['jobs']}; total wall time {meta['wall_seconds']:.1f} s",
        "",
        "## Results",
        "",
        main_table(stats),
        "",
        "## Methods",
        "",
        *[f"- {n}" for n in meta["method_notes"]],
        "",
        "## Metrics",
        "",
        METRICS_TEXT,
        "",
    ]
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    if pkg_methods:
        lines += ["## Per package (worst first)", "", package_table(rows, pkg_methods), ""]
    failures = [r for r in rows if r["error"]]
    if failures:
        lines += ["## Failures", "", "| program | method | error |", "|---|---|---|"]
        lines += [f"| {r['benchmark']} | {r['method']} | {_one_line(r['error'])[:200]} |" for r in failures[:50]]
        if len(failures) > 50:
            lines.append(f"| ... | | {len(failures) - 50} more in results.json |")
        lines.append("")
    if "quality.png" in paths:
        lines += ["## Plot", "", "![% below -Oz per program](quality.png)", ""]
    atomic_write(paths["summary.md"], "\n".join(lines))
    return paths


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj


# ============================================================== command line
class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise UsageError(message)


_positive_int = positive(int)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="How much smaller than -Oz each method makes unseen programs: one table.")
    p.add_argument("inputs", nargs="*", help="files, folders, globs or benchmark URIs (default: --dataset/--split)")
    p.add_argument("--dataset", default=None, help="dataset or task name (default: default, the offline corpus)")
    p.add_argument(
        "--split", default="test", choices=("train", "val", "test"), help="split of --dataset (default test)"
    )
    p.add_argument("--data-root", default=None, help="datasets folder (default: $COMPILERDREAM_DATA or ./data)")
    p.add_argument("--limit", type=_positive_int, default=None, help="at most N programs, spread over packages")
    p.add_argument(
        "--methods", default=None, help=f"comma-separated subset of {','.join(ORDER)} (default: all available)"
    )
    p.add_argument("--coreset", default="default",
                   help="coreset of the `coreset` and `optimize` rows: default, nvp50 or a JSON file")
    p.add_argument(
        "--checkpoint", default=None, type=resolve_checkpoint,
        help="trained agent directory, or `default` (the shipped agent): adds agent-rollout, guided, agent-vp",
    )
    p.add_argument("--device", default="auto", help="for the agent rows: cpu, cuda or auto")
    p.add_argument("--top-k", type=_positive_int, default=TOP_K, help=f"agent-vp: coreset sequences compiled (default {TOP_K})")
    p.add_argument(
        "--search-compilations", type=_positive_int, default=None,
        help=f"budget of random/guided when the coreset row is not run (default {DEFAULT_MATCHED}; --quick {QUICK_MATCHED})",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/quality", help="output folder (default runs/quality)")
    p.add_argument("--jobs", type=_positive_int, default=1, help="programs measured in parallel (default 1)")
    p.add_argument(
        "--quick", action="store_true",
        help=f"about a minute on 2 cores with --jobs 2: {QUICK_LIMIT} programs (unless --limit), random/guided "
        f"get {QUICK_MATCHED} compilations when the coreset row is not run",
    )  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    from compilerdream.compiler.executor import add_executor_args

    add_executor_args(p)
    return p


def parse_methods(text: str | None) -> list[str]:
    if text is None:
        return list(ORDER)
    aliases = {"-oz": "oz", "-o3": "o3", "nvp50": "coreset-nvp50", "nvp50-both": "coreset-nvp50-both",
               "rollout": "agent-rollout", "vp": "agent-vp"}  # fmt: skip
    asked = [aliases.get(t.strip().lower(), t.strip().lower().lstrip("-")) for t in text.split(",") if t.strip()]
    unknown = [m for m in asked if m not in ORDER]
    if unknown:
        raise UsageError(f"--methods: unknown method(s) {', '.join(unknown)}: choose from {', '.join(ORDER)}")
    if not asked:
        raise UsageError("--methods: no method named")
    return [m for m in ORDER if m in asked]  # run order, whatever order they were given in


def run(argv: Sequence[str]) -> int:
    started = time.monotonic()
    args = build_parser().parse_args(list(argv))
    if args.inputs and args.dataset is not None:
        raise UsageError("give programs on the command line or --dataset, not both")
    args.dataset = args.dataset or "default"
    if args.data_root:
        os.environ["COMPILERDREAM_DATA"] = os.path.abspath(args.data_root)  # read by pool processes too
    if args.quick and args.limit is None:
        args.limit = QUICK_LIMIT
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    requested = parse_methods(args.methods)
    keys, notes = check_methods(requested, args)
    labels = {"oz": "-Oz", "o3": "-O3", "agent-vp": f"agent-vp-top{args.top_k}", "agent-rollout": "agent-1-rollout"}
    keys = check_agent(args, keys, notes, labels["agent-vp"])
    if not keys:
        raise UsageError("no method left to run: " + "; ".join(notes))
    programs, inputs_text, _ = resolve_inputs(args)
    matched = args.search_compilations or (QUICK_MATCHED if args.quick else DEFAULT_MATCHED)
    settings = Settings(
        methods=tuple(keys), seed=args.seed, coreset=args.coreset, checkpoint=args.checkpoint, device=args.device,
        top_k=args.top_k, matched_fallback=matched,
        labels=tuple(labels.items()),
    )  # fmt: skip
    if not is_shipped(args.coreset) and set(keys) & set(OPTIMIZE_METHODS):
        notes.append(f"the optimize rows run the coreset {args.coreset} instead of the shipped one")
    m = build_methods(settings)  # here too: the jobs=1 run uses it, and its budgets go into the summary
    optimize_budget = m.budgets["optimize"].describe() if "optimize" in m.budgets else None
    if "optimize" in keys and m.budgets["optimize"].seconds is not None:
        notes.append(
            "`optimize`'s budget includes seconds: its results depend on machine speed and load (and so on --jobs)"
        )
    for note in notes:
        print(f"{PROG}: note: {note}", file=sys.stderr)
    print(
        f"{PROG}: {inputs_text}; methods {', '.join(settings.label(k) for k in keys)}; jobs {args.jobs}",
        file=sys.stderr,
    )
    out.mkdir(parents=True, exist_ok=True)
    partial = out / "results.partial.jsonl"
    done = resume_partial(partial, settings, programs)
    if done:
        print(f"{PROG}: resuming: {len(done)} of {len(programs)} programs measured by the killed run", file=sys.stderr)
    if args.executor == "local" and not args.ray_address:
        per_program = measure_all(programs, settings, args.jobs, not args.no_progress, partial, done=done)
    else:
        from compilerdream.compiler.executor import RayMissingError, make_executor

        jobs = args.jobs if args.jobs > 1 else None  # Ray started here: every CPU unless --jobs says
        try:
            executor = make_executor(args.executor, jobs, args.ray_address, initializer=_worker_init)
        except RayMissingError as exc:
            raise UsageError(str(exc)) from None
        with executor:
            per_program = measure_all(
                programs, settings, args.jobs, not args.no_progress, partial, executor=executor, done=done
            )
    rows = [r for program_rows in per_program for r in program_rows]
    stats = {settings.label(k): method_stats([r for r in rows if r["method"] == settings.label(k)]) for k in keys}
    meta = {
        **run_header("benchmarks/quality.py", argv, args, inputs_text),
        "programs": len(per_program),
        "subset_rule": (
            "none (every program)"
            if args.limit is None
            else f"--limit {args.limit}: the slots are shared among packages as equally as possible (spare slots of small "
            "packages go to the others, the remainder to packages first in split order); within a package the programs "
            "are evenly spaced in split order; with fewer slots than packages, evenly spaced packages get one each"
        ),  # fmt: skip
        "seed": args.seed,
        "jobs": args.jobs,
        "executor": args.executor,
        "wall_seconds": time.monotonic() - started,
        "method_notes": method_notes(keys, settings, optimize_budget),
    }
    paths = write_outputs(out, rows, stats, settings, meta, notes)
    partial.unlink(missing_ok=True)
    partial.with_suffix(".settings.json").unlink(missing_ok=True)
    print(main_table(stats))
    print(
        f"\n{len(per_program)} programs ({inputs_text}); outputs in {out}/: "
        + ", ".join(p.name for p in paths.values())
    )
    if rows and all(r["error"] for r in rows):
        print(f"{PROG}: every method failed on every program (see {paths['summary.md']})", file=sys.stderr)
        return 1
    return 0


def run_header(script: str, argv: Sequence[str], args, inputs_text: str) -> dict[str, Any]:
    """The first fields of a benchmark script's results.json: how it was run, when, on what."""
    return {
        "command": shlex.join(["python3", script, *argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "llvm": llvm_version(),
        "inputs": inputs_text,
        "dataset": None if args.inputs else args.dataset,
        "split": None if args.inputs else args.split,
    }


def script_main(prog: str, run_script, argv: Sequence[str] | None) -> int:
    """A benchmark script's entry point around `run_script(argv)`: its exit code; a UsageError
    (bad command line or input, before any work) is one line and exit code 2."""
    line_buffered_stdout()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return run_script(argv)
    except UsageError as exc:
        print(f"{prog}: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2: bad command line or input, before any work)."""
    return script_main(PROG, run, argv)


if __name__ == "__main__":
    sys.exit(main())
