"""`run_search` over programs on an executor (a process pool or Ray), resumable.

The unit of work is one program with every method (`search_one`): the same `search_benchmark`
calls, with the same seeds, as `run_search` makes one after the other, so results are the same
whatever runs them. Each program's results are appended to `results.jsonl` as it finishes;
a run killed half way and started again with the same settings and `--out` searches only the
programs that are not in that file yet. Other settings start the file afresh (`run.json` says
which settings the file belongs to).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

from .benchmarks import Benchmark, resolve_benchmark
from .executor import LocalExecutor, RayExecutor
from .progress import progress_bar
from .search import (
    PARTIAL_FILE,
    BenchmarkLike,
    Budget,
    SearchPolicy,
    SearchResult,
    check_start,
    make_policy,
    search_benchmark,
    write_results,
)

__all__ = ["RUN_FILE", "PolicySpec", "build_policies", "run_search_on", "search_one"]

RUN_FILE = "run.json"

#: How a worker makes a policy: (method, keyword arguments of `make_policy`), or
#: ("guided", {"checkpoint": DIR, "device": ...}) for the agent's guided search (needs torch).
PolicySpec = tuple[str, dict[str, Any]]

_policy_cache: dict[str, list[SearchPolicy]] = {}


def build_policies(specs: Sequence[PolicySpec]) -> list[SearchPolicy]:
    """The policies of `specs`, made once per process (a coreset or a checkpoint is loaded once)."""
    key = repr(list(specs))
    if key not in _policy_cache:
        policies = []
        for method, kwargs in specs:
            if method == "guided":
                from compilerdream.optimize import load_guided

                policy, why_not = load_guided(kwargs["checkpoint"], kwargs.get("device", "auto"))
                if policy is None:
                    raise RuntimeError(f"guided search unavailable in this worker: {why_not}")
                policies.append(policy)
            else:
                policies.append(make_policy(method, **kwargs))
        _policy_cache[key] = policies
    return _policy_cache[key]


def search_one(
    item: tuple[str | None, Benchmark],
    specs: Sequence[PolicySpec],
    budget: Budget,
    budgets: dict[str, Budget],
    action_space: str,
    seed: int,
    start: str,
) -> list[dict]:
    """Every policy on one benchmark (in policy order), as result dicts."""
    name, bench = item
    out = []
    for policy in build_policies(specs):
        b = budgets.get(policy.name, budget)
        result = search_benchmark(policy, bench, b, action_space=action_space, seed=seed, dataset=name, start=start)
        out.append(result.to_json())
    return out


def _failed(item: tuple[str | None, Benchmark], policy: SearchPolicy, budget: Budget, action_space: str, error: str) -> dict:
    from .search import dataset_of

    name, bench = item
    return SearchResult(
        benchmark=bench.uri,
        dataset=name or dataset_of(bench.uri),
        method=policy.name,
        best_actions=[],
        commandline="",
        O0=0,
        Oz=0,
        final=0,
        reduction=0.0,
        leaderboard=0.0,
        walltime=0.0,
        compilations=0,
        budget=budget.describe(),
        error=f"worker died: {error}",
        action_space=action_space,
    ).to_json()


def _settings(policies, specs, budget, budgets, action_space, seed, start, items) -> dict:
    return {
        "methods": [p.name for p in policies],
        "policies": [[method, {k: repr(v) for k, v in sorted(kwargs.items())}] for method, kwargs in specs],
        "budget": budget.describe(),
        "budgets": {k: v.describe() for k, v in sorted(budgets.items())},
        "action_space": action_space,
        "seed": seed,
        "start": start,
        "benchmarks": [[name, bench.uri] for name, bench in items],
    }


def _resume(out_dir: str, settings: dict, n_policies: int) -> dict[str, list[dict]]:
    """Finished programs of an earlier run with the same settings (URI -> its rows); else a fresh file."""
    run_path, partial = os.path.join(out_dir, RUN_FILE), os.path.join(out_dir, PARTIAL_FILE)
    try:
        with open(run_path, encoding="utf-8") as f:
            same = json.load(f) == settings
    except (OSError, ValueError):
        same = False
    done: dict[str, list[dict]] = {}
    if same and os.path.exists(partial):
        with open(partial, encoding="utf-8") as f:
            for line in f:
                try:
                    rows = json.loads(line)
                except ValueError:  # the line a kill cut short
                    continue
                if isinstance(rows, list) and len(rows) == n_policies:
                    done[rows[0]["benchmark"]] = rows
        return done
    os.makedirs(out_dir, exist_ok=True)
    if os.path.exists(partial):
        os.unlink(partial)
    tmp = run_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(settings, f, indent=1)
    os.replace(tmp, run_path)
    return done


def run_search_on(
    executor: LocalExecutor | RayExecutor,
    specs: Sequence[PolicySpec],
    benchmarks: Iterable[BenchmarkLike | tuple[str, BenchmarkLike]],
    budget: Budget,
    action_space: str = "NoLimit",
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
    budgets: dict[str, Budget] | None = None,
    start: str | None = "o0",
) -> list[SearchResult]:
    """`run_search`'s results (same order, same values but walltime), computed on `executor`.

    `specs` name the policies (each worker makes its own, see `build_policies`).
    With `out_dir`, `results.jsonl` holds one line per finished program (a list of one row per
    method) and a rerun with the same settings resumes from it.
    """
    start = check_start(start or "o0")
    budgets = dict(budgets or {})
    policies = build_policies(specs)  # here too: bad settings fail before any work, and names come from them
    items: list[tuple[str | None, Benchmark]] = []
    for item in benchmarks:
        name, spec = item if isinstance(item, tuple) else (None, item)
        items.append((name, resolve_benchmark(spec)))
    out = os.fspath(out_dir) if out_dir else None
    done = _resume(out, _settings(policies, specs, budget, budgets, action_space, seed, start, items), len(policies)) if out else {}
    todo = [it for it in items if it[1].uri not in done]
    bar = progress_bar(total=len(items), initial=len(items) - len(todo), desc="search", unit="prog", disable=not progress)
    partial = open(os.path.join(out, PARTIAL_FILE), "a", encoding="utf-8") if out else None
    try:
        for item, rows, error in executor.map_unordered(search_one, todo, list(specs), budget, budgets, action_space, seed, start):
            if error is not None:
                rows = [_failed(item, p, budgets.get(p.name, budget), action_space, str(error)) for p in policies]
            done[item[1].uri] = rows
            if partial is not None:
                partial.write(json.dumps(rows) + "\n")
                partial.flush()
                os.fsync(partial.fileno())
            bar.update(1)
    finally:
        if partial is not None:
            partial.close()
        bar.close()
    results = [SearchResult(**row) for _, bench in items for row in done[bench.uri]]
    if out:
        write_results(results, out)
    return results
