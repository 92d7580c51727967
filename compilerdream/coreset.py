"""Value prediction on the coreset (REFERENCE §4.3, §1.5): the world model ranks coreset prefixes, the top 45 are compiled.

Per benchmark: the agent imagines each of the 50 coreset sequences from the
unoptimized program's observation; every prefix (the empty one included) becomes a
candidate scored by its predicted return; the `top_k` best-scored candidates are
compiled for real and the best real one is the model's pick. For comparison the
same run measures every prefix for real (the oracle over the coreset), the best
single fixed sequence over the benchmarks, and -Oz, and it reports how well the
predicted rewards match the real ones (MSE, Spearman rank correlation).

Fixes of REFERENCE §4.4: numpy scalars and arrays are converted before arithmetic
and JSON; every output goes to `logdir/coreset/`; benchmarks are matched by URI,
not by the order of a cycling iterator.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import sys
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from compilerdream.compiler.default_optimizer import O0_OUTLINE, OPTION_CANDIDATES, Outline, prelude, prelude_parts
from compilerdream.compiler.env import LlvmEnv
from compilerdream.compiler.metrics import dataset_of, leaderboard_reward, percent_below_oz, reduction, summarize
from compilerdream.compiler.progress import line_buffered_stdout, progress_bar
from compilerdream.compiler.search import BudgetExhausted, SearchContext, SearchPolicy, SearchResult, summary_table
from compilerdream.compiler.spaces import action_space
from compilerdream.search import (
    AgentObserver,
    BenchmarkRef,
    _load_dir,
    agent_config,
    agent_on_benchmark,
    load_agent,
    prepare_output,
    require_checkpoint,
    single_thread_on_cpu,
    split_benchmarks,
    write_json_atomic,
)
from compilerdream.task import OZ_PIPELINE, TaskSettings, coreset_action_sequences, step_reward

if TYPE_CHECKING:
    from compilerdream.agent import Agent

log = logging.getLogger(__name__)

TOP_K = 45  # real compilations per benchmark for the model's pick (REFERENCE §4.3 step 2)
ACTION_SPACE = "NoLimit"  # coreset sequences are NoLimit indices (REFERENCE §4.1)
OUTPUT_DIR = "coreset"
METHODS = ("model", "oracle", "fixed", "-Oz")
METHOD_LABELS = {
    "model": "model pick (top-k compiled)",
    "oracle": "oracle (best coreset prefix)",
    "fixed": "best fixed sequence",
    "-Oz": "-Oz",
}


# ---------------------------------------------------------------------------------------------
# Spearman rank correlation (numpy only)


def average_ranks(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing the average of the ranks they span: [10, 20, 20, 5] -> [2, 3.5, 3.5, 1]."""
    x = np.asarray(values, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    ranks = np.empty(len(x), np.float64)
    start = 0
    while start < len(x):
        stop = start
        while stop + 1 < len(x) and sorted_x[stop + 1] == sorted_x[start]:
            stop += 1
        ranks[order[start : stop + 1]] = (start + stop) / 2.0 + 1.0
        start = stop + 1
    return ranks


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman's rho: the Pearson correlation of the average ranks; NaN when fewer than 2 values or one side is constant."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"spearman needs two sequences of equal length, got {a.shape} and {b.shape}")
    if len(a) < 2:
        return float("nan")
    ra, rb = average_ranks(a) - (len(a) + 1) / 2.0, average_ranks(b) - (len(b) + 1) / 2.0
    denominator = math.sqrt(float(np.sum(ra * ra)) * float(np.sum(rb * rb)))
    if denominator == 0.0:
        return float("nan")
    return float(np.sum(ra * rb) / denominator)


# ---------------------------------------------------------------------------------------------
# Per-benchmark records


@dataclass
class SequenceRun:
    """One coreset sequence on one benchmark: imagined and real (REFERENCE §4.3 step 1)."""

    index: int
    actions: list[int]
    predicted: list[float]  # r̂_1..r̂_L
    counts: list[int]  # IR instruction count after 0..n steps (n < L when a pass crashed)
    real: list[float]  # real rewards r_1..r_n
    error: str | None = None
    predicted_autophase: list[list[float]] | None = None
    real_autophase: list[list[float]] | None = None


@dataclass
class Candidate:
    """A prefix `actions = sequence[:length]` with its predicted return and (if it ran) its real count."""

    sequence: int
    length: int
    actions: tuple[int, ...]
    predicted_return: float
    real_return: float | None
    count: int | None


@dataclass
class Pick:
    """A chosen pass list and what it measured.

    `compilations` counts the programs compiled to choose it: top_k for the model, every
    prefix for the oracle, one for a fixed pipeline (-Oz, the best fixed sequence).
    """

    actions: list[int]
    final: int
    sequence: int | None = None
    length: int | None = None
    predicted_return: float | None = None
    rank: int | None = None
    compilations: int = 0
    walltime: float = 0.0


@dataclass
class BenchmarkReport:
    """Everything measured on one benchmark."""

    uri: str
    dataset: str
    O0: int
    Oz: int
    runs: list[SequenceRun]
    candidates: list[Candidate]
    model: Pick
    oracle: Pick
    oz: Pick
    reward_mse: float
    spearman: float
    walltime: float
    mismatches: int = 0  # candidates whose recompiled count differed from the enumerated one
    fixed: Pick | None = field(default=None)
    error: str | None = None


# ---------------------------------------------------------------------------------------------
# The algorithm (REFERENCE §4.3)


def one_hots(actions: Sequence[int], num_actions: int) -> np.ndarray:
    """(L, A) float32 one-hot rows."""
    rows = np.zeros((len(actions), num_actions), np.float32)
    rows[np.arange(len(actions)), np.asarray(actions, dtype=np.int64)] = 1.0
    return rows


def predict_sequences(
    agent: Agent, obs: Mapping[str, Any], sequences: Sequence[Sequence[int]], state_mean: bool, decode: bool = False
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Predicted per-step rewards (and decoded autophase with `decode`) of each sequence from `obs`."""
    out: list[tuple[np.ndarray, np.ndarray | None]] = []
    for seq in sequences:
        result = agent.imagine_sequence(obs, one_hots(seq, agent.num_actions), state_mean=state_mean, decode=decode)
        if decode:
            rewards, decoded = result
            out.append((np.asarray(rewards, np.float64), decoded.get("autophase")))
        else:
            out.append((np.asarray(result, np.float64), None))
    return out


def env_actions(actions: Sequence[int | str]) -> list[int | str]:
    """Task action indices as env actions: the -Oz action (index 124, after the NoLimit flags) is `default<Oz>`."""
    n = action_space(ACTION_SPACE).n
    return [a if isinstance(a, str) else (OZ_PIPELINE if int(a) >= n else int(a)) for a in actions]


def run_sequence(env: LlvmEnv, actions: Sequence[int], names: Sequence[str]) -> tuple[list[dict[str, Any]], str | None]:
    """Reset and apply `actions` one at a time; the observations after 0..n steps, and the error that stopped it."""
    env.reset()
    values, *_ = env.multistep([], observation_spaces=list(names), reward_spaces=[])
    seen = [dict(zip(names, values))]
    for action in env_actions(actions):
        values, _, died, _, info = env.step(action, observation_spaces=list(names), reward_spaces=[])
        if died:
            return seen, f"{info.get('error_type', 'Error')}: {info.get('error_details', '')}"
        seen.append(dict(zip(names, values)))
    return seen, None


def real_rewards(costs: Sequence[float], init: float, baseline: float, settings: TaskSettings) -> list[float]:
    """The task's per-step rewards (REFERENCE §2.3) of a cost trajectory c_0..c_n."""
    s = settings
    return [
        step_reward(costs[t - 1], costs[t], init, baseline, s.baseline_thre, s.leakiness, s.step_penalty)
        for t in range(1, len(costs))
    ]


def enumerate_sequence(
    env: LlvmEnv,
    index: int,
    actions: Sequence[int],
    predicted: np.ndarray,
    observer: AgentObserver,
    record_autophase: bool,
    predicted_autophase: np.ndarray | None,
) -> SequenceRun:
    """Every prefix of one sequence in the real compiler, in one pass (REFERENCE §4.3 step 1, diagnostics)."""
    names = list(
        dict.fromkeys(["IrInstructionCount", observer.cost_name, *(["Autophase"] if record_autophase else [])])
    )
    seen, error = run_sequence(env, actions, names)
    if error:
        log.warning(
            "%s: coreset sequence %d stopped after %d of %d passes: %s",
            env.benchmark.uri,
            index,
            len(seen) - 1,
            len(actions),
            error,
        )
    costs = [float(v[observer.cost_name]) for v in seen]
    run = SequenceRun(
        index=index,
        actions=[int(a) for a in actions],
        predicted=[float(r) for r in predicted],
        counts=[int(v["IrInstructionCount"]) for v in seen],
        real=real_rewards(costs, observer.init, observer.baseline, observer.settings),
        error=error,
    )
    if record_autophase:
        run.real_autophase = [np.asarray(v["Autophase"]).tolist() for v in seen[1:]]
        run.predicted_autophase = None if predicted_autophase is None else np.asarray(predicted_autophase).tolist()
    return run


def build_candidates(runs: Sequence[SequenceRun], dedupe: bool = True) -> list[Candidate]:
    """Every prefix of every sequence, the empty one included, with Σ predicted rewards (REFERENCE §4.3 step 1).

    With `dedupe` an action prefix already listed (the empty prefix of every sequence,
    shared beginnings) is kept once: the imagination is deterministic, so copies would
    only spend real compilations on the same program.
    """
    seen: set[tuple[int, ...]] = set()
    candidates: list[Candidate] = []
    for run in runs:
        predicted = np.concatenate([[0.0], np.cumsum(run.predicted)])
        real = np.concatenate([[0.0], np.cumsum(run.real)])
        for length in range(len(run.actions) + 1):
            actions = tuple(run.actions[:length])
            if dedupe and actions in seen:
                continue
            seen.add(actions)
            ran = length < len(run.counts)
            candidates.append(
                Candidate(
                    sequence=run.index,
                    length=length,
                    actions=actions,
                    predicted_return=float(predicted[length]),
                    real_return=float(real[length]) if ran else None,
                    count=run.counts[length] if ran else None,
                )
            )
    return candidates


def rank_candidates(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Highest predicted return first; equal predictions keep their order (stable)."""
    return sorted(candidates, key=lambda c: -c.predicted_return)


def compile_prefix(env: LlvmEnv, actions: Sequence[int | str]) -> int | None:
    """One real compilation: reset, apply `actions`, the IR instruction count (None if a pass crashed)."""
    env.reset()
    values, _, died, _, _ = env.multistep(env_actions(actions), observation_spaces=["IrInstructionCount"], reward_spaces=[])
    return None if died else int(values[0])


def pick_by_model(env: LlvmEnv, ranked: Sequence[Candidate], top_k: int, o0: int, oz: int) -> tuple[Pick, int]:
    """Compile the `top_k` best-predicted candidates; the one with the best real reduction (REFERENCE §4.3 step 2).

    Returns the pick and how many compiled counts differed from the enumerated ones.
    When every compiled candidate crashed the pick is the unoptimized program.
    """
    best = Pick(actions=[], final=o0)
    best_reduction = -1.0
    mismatches = 0
    chosen = list(ranked[:top_k])
    for rank, candidate in enumerate(chosen):
        count = compile_prefix(env, candidate.actions)
        if candidate.count is not None and count is not None and count != candidate.count:
            mismatches += 1
        if count is None:
            continue
        value = reduction(oz, count)
        if value > best_reduction:
            best_reduction = value
            best = Pick(
                list(candidate.actions), count, candidate.sequence, candidate.length, candidate.predicted_return, rank
            )
    best.compilations = len(chosen)
    return best, mismatches


def oracle_pick(candidates: Sequence[Candidate]) -> Pick:
    """The best real count over every prefix that ran (the empty prefix always did)."""
    ran = [c for c in candidates if c.count is not None]
    best = min(ran, key=lambda c: c.count)  # first of the smallest: stable
    return Pick(list(best.actions), int(best.count), best.sequence, best.length, best.predicted_return)


def prediction_errors(runs: Sequence[SequenceRun], candidates: Sequence[Candidate]) -> tuple[float, float]:
    """(MSE of predicted vs real per-step rewards, Spearman of predicted vs real returns over the candidates)."""
    squared = [(p - r) ** 2 for run in runs for p, r in zip(run.predicted, run.real)]
    mse = float(np.mean(squared)) if squared else float("nan")
    ran = [c for c in candidates if c.real_return is not None]
    rho = spearman([c.predicted_return for c in ran], [c.real_return for c in ran])
    return mse, rho


def evaluate_benchmark(
    agent: Agent,
    env: LlvmEnv,
    uri: str,
    bench: Any,
    sequences: Sequence[Sequence[int]],
    settings: TaskSettings,
    top_k: int = TOP_K,
    state_mean: bool = True,
    dedupe: bool = True,
    record_autophase: bool = False,
) -> BenchmarkReport:
    """REFERENCE §4.3 on one benchmark, plus the oracle, -Oz and the prediction errors.

    Each pick's `walltime` is the time its method took: the model's = imagination + its
    `top_k` compilations; the oracle's = compiling every prefix; -Oz's = one compilation.
    """
    start = time.monotonic()
    env.reset(benchmark=bench)
    observer = AgentObserver(settings, agent.num_actions)
    obs = observer.start(env)
    o0, oz = observer.o0, observer.oz
    clock = time.monotonic()
    predictions = predict_sequences(agent, obs, sequences, state_mean, decode=record_autophase)
    predict_time, clock = time.monotonic() - clock, time.monotonic()
    runs = [
        enumerate_sequence(env, k, seq, pred, observer, record_autophase, decoded)
        for k, (seq, (pred, decoded)) in enumerate(zip(sequences, predictions))
    ]
    enumerate_time, clock = time.monotonic() - clock, time.monotonic()
    candidates = build_candidates(runs, dedupe=dedupe)
    model, mismatches = pick_by_model(env, rank_candidates(candidates), top_k, o0, oz)
    model.walltime = predict_time + time.monotonic() - clock
    if mismatches:
        log.warning("%s: %d recompiled candidates measured a different count than before", uri, mismatches)
    clock = time.monotonic()
    oz_count = compile_prefix(env, [OZ_PIPELINE])
    oz_pick = Pick([], o0 if oz_count is None else oz_count, compilations=1, walltime=time.monotonic() - clock)
    oracle = oracle_pick(candidates)
    oracle.walltime = enumerate_time
    oracle.compilations = sum(len(run.counts) for run in runs)  # every prefix program was measured
    mse, rho = prediction_errors(runs, candidates)
    return BenchmarkReport(
        uri=uri, dataset=dataset_of(uri), O0=o0, Oz=oz, runs=runs, candidates=candidates, model=model,
        oracle=oracle, oz=oz_pick, reward_mse=mse, spearman=rho, walltime=time.monotonic() - start,
        mismatches=mismatches,
    )  # fmt: skip


def full_sequence_count(run: SequenceRun, o0: int) -> int:
    """The count after the whole sequence; a sequence that crashed leaves the program unoptimized."""
    return run.counts[-1] if run.error is None else o0


def best_fixed_sequence(reports: Sequence[BenchmarkReport]) -> int:
    """The sequence whose full application has the best raw geomean reduction over `reports` (ties: lowest index)."""
    n_sequences = len(reports[0].runs)
    scores = []
    for k in range(n_sequences):
        logs = [math.log(reduction(r.Oz, full_sequence_count(r.runs[k], r.O0))) for r in reports]
        scores.append(sum(logs) / len(logs))
    return int(np.argmax(scores))


def assign_fixed(reports: Sequence[BenchmarkReport], k: int) -> None:
    for report in reports:
        run = report.runs[k]
        report.fixed = Pick(
            list(run.actions), full_sequence_count(run, report.O0), sequence=k, length=len(run.actions), compilations=1
        )


# ---------------------------------------------------------------------------------------------
# Ranking whole sequences: compile only the top k (the k-table)

#: k values of the k-table: how many sequences the model may compile per program.
K_VALUES = (1, 3, 5, 10)
K_METHODS = ("model", "coreset order", "oracle", "best fixed", "-Oz")


def sequence_values(report: BenchmarkReport) -> tuple[np.ndarray, np.ndarray]:
    """Per sequence: (predicted score, best real count) on one benchmark.

    Compiling a sequence once gives the count after every pass, so the harness keeps its
    best prefix: the real value of a sequence is its smallest count over its prefixes
    (the empty prefix included), and the model's score is its highest predicted
    cumulative return over the same prefixes. A sequence that crashed keeps the prefixes
    that ran.
    """
    best = [min(run.counts) if run.counts else report.O0 for run in report.runs]
    return sequence_scores([run.predicted for run in report.runs]), np.asarray(best, np.int64)


def sequence_scores(predicted: Sequence[Sequence[float]]) -> np.ndarray:
    """Each sequence's score: its highest predicted cumulative return over its prefixes (the empty one = 0)."""
    return np.asarray([float(np.max(np.concatenate([[0.0], np.cumsum(p)]))) for p in predicted])


def rank_sequences(predicted: Sequence[Sequence[float]]) -> list[int]:
    """Sequence indices, best score first; ties keep coreset order (its greedy-coverage order)."""
    return [int(i) for i in np.argsort(-sequence_scores(predicted), kind="stable")]


class ValuePrediction(SearchPolicy):
    """The agent ranks a coreset's sequences by predicted return; only the top `k` are compiled.

    The agent imagines every sequence from the unoptimized program's observation (a
    sequence from -Oz begins with the -Oz action); each sequence's score is its best
    predicted prefix return. The `k` best are applied for real from their stored start,
    one worker call each, and the harness keeps the best prefix seen (-Oz being the
    caller's fallback). One pass is one compilation, as for `CoresetPolicy`.
    """

    name = "value-prediction"
    fixed_start = "o0"

    def __init__(self, agent: Agent, settings: TaskSettings, coreset: str = "default", k: int = 5,
                 state_mean: bool = True, name: str | None = None):  # fmt: skip
        from compilerdream.compiler.coreset import load_coreset

        check_coreset_agent(agent, settings)
        self.agent, self.settings, self.k, self.state_mean = agent, settings, int(k), bool(state_mean)
        self.sequences = coreset_action_sequences(coreset, settings)  # ValueError: one line
        self.coreset = load_coreset(coreset)
        self.last_ranking: list[int] = []
        if name:
            self.name = name

    def ranking(self, ctx: SearchContext) -> list[int]:
        """The coreset's sequence indices, best predicted first (the program is reset to -O0 for it)."""
        import torch

        ctx.env.action_space = ACTION_SPACE
        ctx.reset("o0")
        observer = AgentObserver(self.settings, self.agent.num_actions)
        obs = observer.start(ctx.env)
        with torch.no_grad(), agent_on_benchmark(self.agent, ctx):
            predicted = predict_sequences(self.agent, obs, self.sequences, self.state_mean)
        return rank_sequences([p for p, _ in predicted])

    def search(self, ctx: SearchContext) -> None:
        self.last_ranking = self.ranking(ctx)  # kept for reports and tests
        for i in self.last_ranking[: self.k]:
            seq = self.coreset.sequences[i]
            ctx.reset(start=seq.start)
            ctx.trace(list(seq.passes))


class ValueThenGuided(SearchPolicy):
    """An agent's whole method: value prediction's top-k coreset sequences, then guided search.

    Guided search rolls out from the harness's start (pass the agent's `settings.start`)
    while the budget lasts; the harness keeps the best prefix over both. With `outline` (beyond
    CompilerGym's actions, as `optimize`'s default method): first the opt option set whose -Oz is
    smallest and the IR outliner on the unoptimized program (`default_optimizer.prelude`), and
    the outliner on value prediction's best.
    """

    def __init__(self, guided: Any, value_prediction: ValuePrediction | None, outline: bool = False):
        self.guided, self.value_prediction = guided, value_prediction
        self.name = "value-prediction+guided" if value_prediction is not None else "guided"
        self.option_candidates = OPTION_CANDIDATES if outline else ()
        self.o0_outline = Outline(O0_OUTLINE) if outline else None
        # on value prediction's best: guided search alone spends the whole budget, nothing is left after it
        self.outline = Outline() if outline and value_prediction is not None else None

    def describe(self) -> str:
        vp = self.value_prediction
        head = "".join(part + ", then " for part in prelude_parts(self.option_candidates, self.o0_outline))
        head += f"the agent's top {vp.k} of the {vp.coreset.name} coreset's {len(vp.coreset)} sequences, then " if vp else ""
        return head + ("the IR outliner on the best, then " if self.outline else "") + "guided search"

    def search(self, ctx: SearchContext) -> None:
        prelude(ctx, self.option_candidates, self.o0_outline)  # a budget spent here ends the search (the harness)
        if self.value_prediction is not None:
            self.value_prediction.search(ctx)
        if self.outline is not None and not ctx.exhausted:
            try:
                self.outline.search(ctx)
            except BudgetExhausted:
                return
        if not ctx.exhausted:
            self.guided.search(ctx)


def agent_policy(
    guided: Any, coreset: Any = "default", k: int = 5, outline: bool = False
) -> tuple[ValueThenGuided, str]:
    """Value prediction (when the agent can rank `coreset` and k > 0), the IR outliner on the
    best (`outline`), then guided search; and why not VP.

    An agent trained without the NoLimit action space, or without the -Oz-continue action
    for a coreset with sequences from -Oz, cannot rank it: it runs guided search alone.
    """
    if coreset is None or k <= 0:
        return ValueThenGuided(guided, None, outline), "no value prediction (no coreset or top k 0)"
    try:
        vp = ValuePrediction(guided.agent, guided.settings, coreset, k)
    except ValueError as exc:
        return ValueThenGuided(guided, None, outline), f"no value prediction: {str(exc).splitlines()[0]}"
    return ValueThenGuided(guided, vp, outline), ""


def k_table(reports: Sequence[BenchmarkReport], ks: Sequence[int] = K_VALUES) -> dict[str, Any]:
    """The value-prediction k-table: compile only the k best-predicted sequences, against the alternatives.

    Every method keeps -Oz as the fallback (a program is never worse than -Oz), so they
    differ only in which sequences they compile:

    * `model`: the k sequences with the highest predicted score (ties: coreset order);
    * `coreset order`: the first k sequences of the coreset (its greedy-coverage order:
      the same number of compilations without a model);
    * `oracle`: every sequence;
    * `best fixed`: the one sequence with the best mean % below -Oz over these same
      programs (chosen on them, so an upper bound for any single fixed sequence);
    * `-Oz`.

    Each row: mean % below -Oz, geomean Oz/final, share of programs better than -Oz,
    sequences and passes compiled per program, and for the model the share of the
    oracle's mean reduction it captures. `rank_correlation` is the mean over programs of
    Spearman's rho between predicted scores and real best-prefix counts (negated, so
    that 1 is a perfect ranking).
    """
    if not reports:
        raise ValueError("the k-table needs at least one benchmark")
    values = [sequence_values(r) for r in reports]
    n_seq = len(values[0][0])
    passes = [np.asarray([len(run.actions) for run in r.runs]) for r in reports]
    oz = np.asarray([r.Oz for r in reports], np.int64)

    def row(method: str, k: int | None, chosen: Sequence[np.ndarray]) -> dict[str, Any]:
        finals = [int(min(o, int(best[idx].min()) if len(idx) else o)) for o, (_, best), idx in zip(oz, values, chosen)]
        pct = [percent_below_oz(o, f) for o, f in zip(oz, finals)]
        return {
            "method": method,
            "k": k,
            "mean_percent_below_oz": float(np.mean(pct)),
            "geomean_reduction": float(math.exp(np.mean([math.log(reduction(o, f)) for o, f in zip(oz, finals)]))),
            "better": float(np.mean([f < o for o, f in zip(oz, finals)])),
            "worse": float(np.mean([f > o for o, f in zip(oz, finals)])),
            "sequences": float(np.mean([len(idx) for idx in chosen])),
            "passes": float(np.mean([int(p[idx].sum()) for p, idx in zip(passes, chosen)])),
            "finals": finals,
        }

    all_idx = [np.arange(n_seq) for _ in reports]
    oracle = row("oracle", n_seq, all_idx)
    fixed_pct = [
        np.mean([percent_below_oz(o, min(o, int(best[s]))) for o, (_, best) in zip(oz, values)]) for s in range(n_seq)
    ]
    fixed = int(np.argmax(fixed_pct))
    rows = []
    for k in ks:
        kk = min(int(k), n_seq)
        model = row("model", kk, [np.argsort(-scores, kind="stable")[:kk] for scores, _ in values])
        oracle_mean = oracle["mean_percent_below_oz"]
        model["share_of_oracle"] = model["mean_percent_below_oz"] / oracle_mean if oracle_mean > 0 else None
        rows += [model, row("coreset order", kk, [np.arange(kk) for _ in reports])]
    rows += [
        oracle,
        row("best fixed", 1, [np.asarray([fixed]) for _ in reports]),
        row("-Oz", 0, [np.asarray([], np.int64) for _ in reports]),
    ]
    rhos = [spearman(scores, -best.astype(np.float64)) for scores, best in values]
    finite = [r for r in rhos if math.isfinite(r)]
    return {
        "rows": rows,
        "best_fixed_sequence": fixed,
        "rank_correlation": float(np.mean(finite)) if finite else None,
        "rank_correlation_programs": len(finite),
        "programs": len(reports),
        "sequences": n_seq,
    }


def k_table_markdown(table: Mapping[str, Any]) -> str:
    """The k-table as Markdown (finals per program left out)."""

    def f(value: Any, fmt: str) -> str:
        return "n/a" if value is None else format(value, fmt)

    lines = [
        f"## Compiling only the top k sequences ({table['programs']} programs, {table['sequences']} sequences)",
        "",
        "Each sequence is compiled once and its best prefix kept; -Oz is every method's fallback. "
        f"`best fixed` is sequence #{table['best_fixed_sequence']}, chosen on these same programs. "
        f"Rank correlation (Spearman, predicted score vs real best count, mean over "
        f"{table['rank_correlation_programs']} programs): {f(table['rank_correlation'], '.3f')}.",
        "",
        "| method | k | mean % below -Oz | geomean Oz/final | better / worse than -Oz | sequences | passes | share of oracle |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in table["rows"]:
        share = r.get("share_of_oracle")
        lines.append(
            f"| {r['method']} | {r['k']} | {r['mean_percent_below_oz']:+.2f} | {r['geomean_reduction']:.4f} | "
            f"{100 * r['better']:.0f}% / {100 * r['worse']:.0f}% | {r['sequences']:.1f} | {r['passes']:.1f} | "
            f"{'' if share is None else f'{100 * share:.0f}%'} |"
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Outputs


def method_rows(reports: Sequence[BenchmarkReport], top_k: int) -> list[SearchResult]:
    """One harness-format row per benchmark and method (both metrics computed from measured counts)."""
    space = action_space(ACTION_SPACE)
    rows = []
    for r in reports:
        for method, pick in (("model", r.model), ("oracle", r.oracle), ("fixed", r.fixed), ("-Oz", r.oz)):
            actions = env_actions(pick.actions)
            commandline = "opt -passes='default<Oz>'" if method == "-Oz" else space.to_string(actions)
            rows.append(
                SearchResult(
                    benchmark=r.uri,
                    dataset=r.dataset,
                    method=METHOD_LABELS[method],
                    best_actions=list(pick.actions),
                    commandline=commandline,
                    action_space=space.name,
                    best_passes=space.passes(actions),
                    O0=r.O0,
                    Oz=r.Oz,
                    final=pick.final,
                    reduction=reduction(r.Oz, pick.final),
                    leaderboard=leaderboard_reward(r.O0, r.Oz, pick.final),
                    walltime=round(pick.walltime, 4),
                    compilations=pick.compilations,
                    budget=f"top {top_k}" if method == "model" else "-",
                )  # fmt: skip
            )
    return rows


def _finite_mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def prediction_summary(reports: Sequence[BenchmarkReport]) -> dict[str, Any]:
    """Mean reward MSE and Spearman per dataset and overall (NaN Spearman, e.g. constant returns, left out)."""
    groups: dict[str, list[BenchmarkReport]] = defaultdict(list)
    for r in reports:
        groups[r.dataset].append(r)
    per = {
        ds: {
            "reward_mse": _finite_mean([r.reward_mse for r in rs]),
            "spearman": _finite_mean([r.spearman for r in rs]),
            "n": len(rs),
        }
        for ds, rs in sorted(groups.items())
    }
    overall = {
        "reward_mse": _finite_mean([r.reward_mse for r in reports]),
        "spearman": _finite_mean([r.spearman for r in reports]),
        "n": len(reports),
    }
    return {"per_dataset": per, "all": overall}


def pick_json(pick: Pick | None, report: BenchmarkReport) -> dict[str, Any] | None:
    if pick is None:
        return None
    return {
        "actions": [int(a) for a in pick.actions],
        "sequence": pick.sequence,
        "length": pick.length,
        "predicted_return": pick.predicted_return,
        "rank": pick.rank,
        "final": int(pick.final),
        "reduction": reduction(report.Oz, pick.final),
        "leaderboard": leaderboard_reward(report.O0, report.Oz, pick.final),
        "compilations": pick.compilations,
        "walltime": round(pick.walltime, 4),
    }


def report_json(report: BenchmarkReport) -> dict[str, Any]:
    return {
        "benchmark": report.uri,
        "dataset": report.dataset,
        "O0": report.O0,
        "Oz": report.Oz,
        "model": pick_json(report.model, report),
        "oracle": pick_json(report.oracle, report),
        "fixed": pick_json(report.fixed, report),
        "-Oz": pick_json(report.oz, report),
        "reward_mse": _nan_to_none(report.reward_mse),
        "spearman": _nan_to_none(report.spearman),
        "candidates": len(report.candidates),
        "mismatches": report.mismatches,
        "walltime": round(report.walltime, 4),
    }


def _nan_to_none(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def detail_lines(report: BenchmarkReport) -> list[dict[str, Any]]:
    """test_detail.jsonl: one line per benchmark × sequence (REFERENCE §1.5), JSON-safe."""
    lines = []
    for run in report.runs:
        line = {"benchmark": report.uri, "sequence": run.index, "actions": run.actions, "predicted_rewards": run.predicted,
                "real_rewards": run.real, "counts": run.counts, "error": run.error}  # fmt: skip
        if run.real_autophase is not None:
            line.update(predicted_autophase=run.predicted_autophase, real_autophase=run.real_autophase)
        lines.append(line)
    return lines


def markdown_summary(
    rows: Sequence[SearchResult], prediction: Mapping[str, Any], fixed: int, top_k: int, n_bench: int
) -> str:
    """summary.md: both metrics per method and dataset, then the prediction errors."""

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    lines = [
        "# Value prediction on the coreset (REFERENCE §4.3)",
        "",
        f"{n_bench} benchmarks; the model's pick is the best of its top {top_k} predicted prefixes, compiled for real. "
        f"The oracle is the best prefix of any coreset sequence (every prefix compiled). The best fixed sequence "
        f"(#{fixed}) is chosen on these same benchmarks, so it is an upper bound for one fixed sequence.",
        "",
        summary_table(rows),
        "",
        "## Reward prediction",
        "",
        "| dataset | n | reward MSE (per step) | Spearman (predicted vs real return over candidates) |",
        "|---|---|---|---|",
    ]
    for ds, v in prediction["per_dataset"].items():
        lines.append(f"| {ds} | {v['n']} | {fmt(v['reward_mse'])} | {fmt(v['spearman'])} |")
    v = prediction["all"]
    lines.append(f"| **all** | {v['n']} | {fmt(v['reward_mse'])} | {fmt(v['spearman'])} |")
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: Sequence[SearchResult], reports: Sequence[BenchmarkReport]) -> None:
    """results.csv: one row per benchmark × method, with the benchmark's prediction errors."""
    errors = {r.uri: (r.reward_mse, r.spearman) for r in reports}
    buf = io.StringIO()
    fields = [*SearchResult.__dataclass_fields__, "reward_mse", "spearman"]
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for row in rows:
        data = {k: (" ".join(map(str, v)) if isinstance(v, list) else v) for k, v in row.to_json().items()}
        mse, rho = errors[row.benchmark]
        writer.writerow({**data, "reward_mse": _nan_to_none(mse), "spearman": _nan_to_none(rho)})
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(buf.getvalue())
    os.replace(tmp, path)


def write_outputs(reports: Sequence[BenchmarkReport], out_dir: Path, fixed: int, top_k: int) -> dict[str, Any]:
    """results.json, results.csv and summary.md in `out_dir`; returns the summary dict."""
    rows = method_rows(reports, top_k)
    as_dicts = [r.to_json() for r in rows]
    summary = {
        label: {"reduction": summarize([d for d in as_dicts if d["method"] == label], "reduction"),
                "leaderboard": summarize([d for d in as_dicts if d["method"] == label], "leaderboard")}
        for label in METHOD_LABELS.values()
    }  # fmt: skip
    prediction = prediction_summary(reports)
    table = k_table(reports)
    data = {
        "top_k": top_k,
        "best_fixed_sequence": fixed,
        "summary": summary,
        "prediction": prediction,
        "k_table": table,
        "benchmarks": [report_json(r) for r in reports],
    }
    write_json_atomic(out_dir / "results.json", data)
    write_csv(out_dir / "results.csv", rows, reports)
    write_k_table_csv(out_dir / "k_table.csv", table)
    text = markdown_summary(rows, prediction, fixed, top_k, len(reports)) + "\n" + k_table_markdown(table)
    (out_dir / "summary.md").write_text(text)
    return data


def write_k_table_csv(path: Path, table: Mapping[str, Any]) -> None:
    """k_table.csv: one row per method and k (the per-program finals are in results.json)."""
    buf = io.StringIO()
    fields = ["method", "k", "mean_percent_below_oz", "geomean_reduction", "better", "worse", "sequences", "passes",
              "share_of_oracle"]  # fmt: skip
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for r in table["rows"]:
        writer.writerow(r)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(buf.getvalue())
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Driver


def check_coreset_agent(agent: Agent, settings: TaskSettings) -> None:
    """Coreset sequences index the 124-action NoLimit space (+ the -Oz-continue action); the agent must use exactly it."""
    n = action_space(ACTION_SPACE).n
    expected = n + int(settings.oz_continue)
    if settings.act_space != ACTION_SPACE or settings.null_act or settings.oz_act or agent.num_actions != expected:
        raise ValueError(
            f"the coreset test needs an agent trained with compilergym.act_space {ACTION_SPACE} ({n} actions, "
            f"no null action, optionally the -Oz-continue action); this one has act_space {settings.act_space} and "
            f"{agent.num_actions} actions (train with --configs compilergym compilergym_dv3 coreset_train)"
        )


def run_coreset(
    agent: Agent,
    benchmarks: Sequence[BenchmarkRef],
    settings: TaskSettings,
    out_dir: Path,
    top_k: int = TOP_K,
    state_mean: bool = True,
    dedupe: bool = True,
    record_autophase: bool = False,
    sequences: Sequence[Sequence[int]] | None = None,
    progress: bool = True,
    coreset: str = "default",
) -> dict[str, Any]:
    """REFERENCE §4.3 over `benchmarks`; writes coreset/test_detail.jsonl, results.json/.csv, summary.md."""
    import torch

    check_coreset_agent(agent, settings)
    if sequences is None:
        sequences = coreset_action_sequences(coreset, settings)
    sequences = [list(s) for s in sequences]
    out_dir.mkdir(parents=True, exist_ok=True)
    detail = out_dir / "test_detail.jsonl"
    detail.write_text("")
    reports: list[BenchmarkReport] = []
    env = LlvmEnv(action_space=ACTION_SPACE, step_timeout=settings.step_timeout)
    bar = progress_bar(benchmarks, desc="coreset", unit="benchmark", disable=not progress, dynamic_ncols=True)
    try:
        for ref in bar:
            try:
                bench = ref.load()
                with torch.no_grad(), single_thread_on_cpu(agent):
                    report = evaluate_benchmark(
                        agent, env, ref.uri, bench, sequences, settings, top_k, state_mean, dedupe, record_autophase
                    )
            except Exception as exc:  # noqa: BLE001 - one broken benchmark must not end the run
                log.warning("coreset test on %s failed: %s: %s", ref.uri, type(exc).__name__, exc)
                continue
            reports.append(report)
            with detail.open("a") as f:
                for line in detail_lines(report):
                    f.write(json.dumps(line) + "\n")
            bar.set_postfix_str(f"{ref.uri.rsplit('/', 1)[-1]} {reduction(report.Oz, report.model.final):.3f}x", refresh=False)
    finally:
        env.close()
    if not reports:
        raise RuntimeError(f"the coreset test failed on all {len(benchmarks)} benchmarks (see the warnings)")
    fixed = best_fixed_sequence(reports)
    assign_fixed(reports, fixed)
    return write_outputs(reports, out_dir, fixed, top_k)


def main_coreset(argv: Sequence[str] | None = None) -> int:
    """examples/test_on_coreset.py (REFERENCE §1.5): value prediction on the coreset with a trained agent."""
    line_buffered_stdout()
    from compilerdream.config import main_parse
    from compilerdream.driver import seed_everything

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    cli = main_parse(
        argv, description="Value prediction on the coreset with a trained CompilerDream agent (REFERENCE §4)"
    )
    require_checkpoint(cli)
    config = agent_config(cli)
    out_dir = prepare_output(cli, ["test_on_coreset.py", *argv], OUTPUT_DIR)
    seed_everything(int(cli["seed"]))
    benchmarks = split_benchmarks(cli)
    try:
        agent, config = load_agent(_load_dir(cli), str(cli["device"]), config)
        settings = TaskSettings.from_config(config)
        check_coreset_agent(agent, settings)
        sequences = coreset_action_sequences(str(cli["coreset"]), settings)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"compilerdream: {exc}") from None
    print(
        f"coreset test: {len(benchmarks)} benchmarks of {cli['test_dataset']}, top {TOP_K} of the predicted prefixes compiled"
    )
    run_coreset(agent, benchmarks, settings, out_dir, TOP_K, state_mean=bool(cli["eval_state_mean"]), sequences=sequences)
    print((out_dir / "summary.md").read_text())
    print(f"results: {out_dir}")
    return 0
