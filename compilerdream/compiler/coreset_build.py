"""`compilerdream coreset build`: a coreset of K pass sequences found on LLVM 19 (Coreset-NVP's recipe).

1. Candidates: every sampled training program is searched from -O0 and from -Oz (random
   search, CompilerGym's patience rule); the best sequence of each search is kept,
   minimized (passes that change nothing or do not help are dropped) and capped in length.
   Coreset-NVP's 50 sequences join the pool, from -O0 and from -Oz.
2. Measurement: every candidate runs on every sampled training program; the best prefix
   within each length cap is recorded (one worker call per candidate and program).
3. Selection: greedy maximum coverage of the summed per-program best reduction below -Oz
   (a program's score is its best reduction over the chosen set, 0 when -Oz is better).
4. Choice of K and of the length cap on the validation split: the selected sequences run
   on validation programs; the smallest configuration within `--tolerance` of the best mean
   reduction (and within `--max-passes` per program) wins. The test split is never read.

Work is split per program and runs in parallel (`--jobs`); each finished program is one
line in `OUT/work/*.jsonl`, so a killed build resumes where it stopped. Results are
deterministic by `--seed`. Outputs: OUT/coreset.json and OUT/report.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shlex
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .coreset import OZ_PIPELINE, Coreset, CoresetError, CoresetSequence, nvp50, unique
from .default_optimizer import MINSIZE_PREPARE  # how optimize prepares a program it compiles under options
from .errors import CompilerDreamError, UnknownNameError
from .executor import LocalExecutor, RayExecutor, add_executor_args, make_executor
from .fileio import atomic_write
from .progress import line_buffered_stdout, progress_bar

log = logging.getLogger(__name__)
PROG = "compilerdream coreset build"
START_LABEL = {"o0": "-O0", "oz": "-Oz"}
WORK = "work"


class BuildError(CompilerDreamError, ValueError):
    """Bad input to the builder: one line, before any work."""


@dataclass
class BuildSettings:
    dataset: str = "default"
    k: int = 40  # the most sequences the greedy selection picks; the kept K is chosen on validation
    lengths: tuple[int, ...] = (8, 16, 32, 64)  # length caps tried; the kept one is chosen on validation
    programs: int = 240  # sampled training programs: candidates are searched on them
    measure_programs: int = 0  # how many of them (evenly spread) every candidate is measured on; 0: all
    val_programs: int = 120  # sampled validation programs (choice of K and length)
    search_compilations: int = 600  # random-search budget per program and start
    max_instructions: int = 20000  # programs larger than this at -O0 are left out (build time)
    max_passes: int = 800  # the most passes per program the chosen coreset may cost
    tolerance: float = 0.02  # relative: the smallest configuration within this of the best validation mean
    include_nvp: bool = True
    seed: int = 0
    data_root: str | None = None
    #: opt's options every program is compiled under (e.g. `optimize`'s fourth set): the -O0 start
    #: is the program after `forceattrs`, the -Oz start and the reference -Oz under the options
    options: tuple[str, ...] = ()

    def fingerprint(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("data_root")
        d["lengths"] = list(self.lengths)
        if self.options:
            d["options"] = list(self.options)
        else:
            d.pop("options")  # a build without options keeps the fingerprint it always had
        return d

    def check(self) -> None:
        if self.k <= 0:
            raise BuildError(f"--k must be a positive number of sequences, got {self.k}")
        if not self.lengths or any(n <= 0 for n in self.lengths):
            raise BuildError(f"--lengths must be positive pass counts, got {list(self.lengths)}")
        if self.measure_programs < 0:
            raise BuildError(f"--measure-programs must be 0 (all) or positive, got {self.measure_programs}")
        for name in ("programs", "val_programs", "search_compilations", "max_instructions", "max_passes"):
            if getattr(self, name) <= 0:
                raise BuildError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if not 0 <= self.tolerance < 1:
            raise BuildError(f"--tolerance must be in [0, 1), got {self.tolerance}")
        if self.options:
            from ._core import Module

            try:  # every option checked by LLVM, before any work
                Module.load(_PROBE_IR, "options-check").apply("function(instsimplify)", list(self.options))
            except ValueError as exc:
                raise BuildError(f"--options {' '.join(self.options)}: {exc}") from None


#: The smallest module there is, to check --options on.
_PROBE_IR = b"define i32 @f(i32 %x) {\n  ret i32 %x\n}\n"


# ----------------------------------------------------------------------------- programs
def split_uris(dataset: str, mode: str, data_root: str | None = None) -> list[str]:
    """A split's URIs; a missing dataset or an empty split is one BuildError line."""
    from .datasets import Datasets, dataset_for_task, split

    try:
        try:
            ds = dataset_for_task(dataset, data_root)
        except UnknownNameError:  # a dataset name (cbench-v1) rather than a task name (cbench)
            ds = Datasets(data_root)[dataset]
        uris = [str(u) for u in split(ds, mode)]
    except (CompilerDreamError, LookupError) as exc:
        raise BuildError(f"dataset '{dataset}': {' | '.join(str(exc).splitlines())}") from None
    if not uris:
        raise BuildError(f"dataset '{dataset}': its {mode} split is empty")
    return uris


def sample(uris: Sequence[str], n: int, seed: int, salt: str) -> list[str]:
    """n URIs drawn without replacement, deterministic by seed; fewer when the split is smaller."""
    rng = random.Random(f"{seed}:{salt}")
    if len(uris) <= n:
        return list(uris)
    return sorted(rng.sample(list(uris), n), key=list(uris).index)


def evenly(items: Sequence[str], n: int) -> list[str]:
    """n items spread evenly over `items` (all of them when n is 0 or not smaller)."""
    if n <= 0 or n >= len(items):
        return list(items)
    return [items[(i * len(items)) // n] for i in range(n)]


def unit_seed(seed: int, uri: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(uri.encode())) & 0x7FFFFFFF


# ----------------------------------------------------------------------------- per-process worker
_ENV = None


def _env():
    """One LlvmEnv (one compiler worker process) per pool process."""
    global _ENV
    if _ENV is None:
        from .env import LlvmEnv

        _ENV = LlvmEnv(reward_space="IrInstructionCountOz", step_timeout=120.0)
    return _ENV


def _bases(uri: str, max_instructions: int, options: Sequence[str] = ()):
    """The program at -O0 and at -Oz (two sessions to fork from) and their counts, under opt's
    `options` (then the -O0 base is the program after `forceattrs`, as `optimize` prepares it,
    and the -Oz count is that of -Oz under them).

    Raises CompilerDreamError when it does not load, is larger than `max_instructions` or
    -Oz crashes. A pass that later crashes a fork does not lose the bases: the env replays
    its session in the new worker the next time it is forked.
    """
    env = _env()
    env.compiler_options = tuple(options)
    env.reset(benchmark=uri)
    o0 = int(env.observation["IrInstructionCountO0"])
    if o0 > max_instructions:
        raise CompilerDreamError(f"skipped: {o0} instructions at -O0 > --max-instructions {max_instructions}")
    oz = int(env.observation["IrInstructionCountOz"])
    if options:
        prepared = env.trace(list(MINSIZE_PREPARE))
        if prepared.error:
            raise CompilerDreamError(f"{' '.join(MINSIZE_PREPARE)} under {' '.join(options)} crashed: {prepared.error}")
        o0 = int(env.observation["IrInstructionCount"])
    oz_env = env.fork()
    traced = oz_env.trace([OZ_PIPELINE])
    if traced.error:
        raise CompilerDreamError(f"-Oz crashed: {traced.error}")
    if options:
        oz = int(traced.counts[-1])
    return {"o0": (env, o0), "oz": (oz_env, oz)}


def _counts_from(base, passes: Sequence[str]):
    """`base.trace(passes)` on a fork of `base` (base itself is left as it is)."""
    child = base.fork()
    try:
        return child.trace(list(passes))
    finally:
        child.close()


def minimize(base, passes: Sequence[str], start_count: int) -> tuple[list[str], int]:
    """Shorten a found sequence without losing its result on its own program.

    Passes that change nothing are dropped (exact), the sequence is cut after its best
    prefix, then each remaining pass is dropped when the rest does at least as well.
    """
    counts, changed, _, err = _counts_from(base, passes)
    if err or not counts:
        return [], start_count
    best_i = min(range(len(counts)), key=lambda i: (counts[i], i))
    best = counts[best_i]
    if best >= start_count:
        return [], start_count
    seq = [p for p, c in zip(passes[: best_i + 1], changed[: best_i + 1]) if c]
    i = len(seq) - 1
    while i >= 0 and len(seq) <= 64:
        trial = seq[:i] + seq[i + 1 :]
        tc, _, _, terr = _counts_from(base, trial) if trial else ([start_count], [], [], None)
        if not terr and tc and min(tc) <= best:
            cut = min(range(len(tc)), key=lambda j: (tc[j], j))
            seq, best = trial[: cut + 1], tc[cut]
            i = min(i, len(seq)) - 1
        else:
            i -= 1
    return seq, best


def candidates_unit(uri: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Search one training program from -O0 and from -Oz; the minimized best sequence of each."""
    from .env import LlvmEnv
    from .search import Budget, RandomSearch, search_benchmark

    out: dict[str, Any] = {"uri": uri}
    try:
        options = tuple(settings.get("options", ()))
        bases = _bases(uri, settings["max_instructions"], options)
        out.update(O0=bases["o0"][1], Oz=bases["oz"][1])
        budget = Budget(compilations=settings["search_compilations"])
        seed = unit_seed(settings["seed"], uri)
        cap = max(settings["lengths"])
        worker = bases["o0"][0].worker
        for start, (base, base_count) in bases.items():
            result = search_benchmark(
                RandomSearch(), uri, budget, seed=seed, start=start,
                env_factory=lambda: _with_options(LlvmEnv(worker=worker, step_timeout=120.0), options),
            )
            passes = [p for p in result.best_passes if p != OZ_PIPELINE] if not result.error else []
            seq, count = minimize(base, passes, base_count) if passes else ([], base_count)
            out[start] = {"passes": seq[:cap], "count": count, "searched": result.final if not result.error else None}
        bases["oz"][0].close()
    except CompilerDreamError as exc:
        out["error"] = " | ".join(str(exc).splitlines())[:500]
    return out


def _with_options(env, options: Sequence[str]):
    """`env` compiling under opt's `options` (the search from -O0 starts without `forceattrs`)."""
    env.compiler_options = tuple(options)
    return env


def measure_unit(uri: str, settings: dict[str, Any], pool: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Every candidate on one program: its best count within each length cap (-1: crashed)."""
    out: dict[str, Any] = {"uri": uri}
    lengths = settings["lengths"]
    try:
        bases = _bases(uri, settings["max_instructions"], tuple(settings.get("options", ())))
        out.update(O0=bases["o0"][1], Oz=bases["oz"][1])
        best: list[list[int]] = []
        for cand in pool:
            base, start_count = bases[cand["start"]]
            traced = _counts_from(base, cand["passes"][: max(lengths)])
            if traced.error:
                best.append([-1] * len(lengths))
                continue
            best.append([min([start_count, *traced.counts[:cap]]) for cap in lengths])
        bases["oz"][0].close()
        out["best"] = best
    except CompilerDreamError as exc:
        out["error"] = " | ".join(str(exc).splitlines())[:500]
    return out


# ----------------------------------------------------------------------------- resumable stages
def _read_jsonl(path: Path) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    if path.exists():
        with path.open(encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill: that program is redone
                done[row["uri"]] = row
    return done


def run_stage(
    name: str,
    path: Path,
    uris: Sequence[str],
    fn: Callable[..., dict[str, Any]],
    args: tuple,
    jobs: int,
    progress: bool = True,
    executor: LocalExecutor | RayExecutor | None = None,
) -> dict[str, dict[str, Any]]:
    """Run fn(uri, *args) for every URI not yet in `path` (JSONL, one line per program, fsynced).

    `executor`: where (compilerdream.compiler.executor); None is a local pool of `jobs` processes.
    """
    done = _read_jsonl(path)
    todo = [u for u in uris if u not in done]
    bar = progress_bar(total=len(uris), initial=len(uris) - len(todo), desc=name, unit="prog", disable=not progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:

        def record(row: dict[str, Any]) -> None:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
            done[row["uri"]] = row
            bar.update(1)

        if executor is None and (jobs <= 1 or len(todo) <= 1):
            for uri in todo:
                record(fn(uri, *args))
        else:
            for uri, row, error in (executor or LocalExecutor(jobs)).map_unordered(fn, todo, *args):
                # a process (or node) that died for good: that program is logged and skipped
                record(row if error is None else {"uri": uri, "error": str(error)})
    bar.close()
    return {u: done[u] for u in uris if u in done}


# ----------------------------------------------------------------------------- selection
def gains(rows: Iterable[dict[str, Any]], n_candidates: int, length_index: int) -> list[list[float]]:
    """Per measured program: each candidate's reduction below -Oz (0 when not better, or crashed)."""
    table = []
    for row in rows:
        if row.get("error") or "best" not in row:
            continue
        oz = max(int(row["Oz"]), 1)
        table.append([max(0.0, (oz - b[length_index]) / oz) if b[length_index] >= 0 else 0.0 for b in row["best"][:n_candidates]])
    return table


def greedy_cover(table: Sequence[Sequence[float]], k: int) -> list[int]:
    """Greedy maximum coverage: each pick adds the most to sum_p max_{c in set} gain[p][c]."""
    if not table:
        return []
    n = len(table[0])
    covered = [0.0] * len(table)
    chosen: list[int] = []
    for _ in range(min(k, n)):
        best_c, best_add = -1, 1e-12
        for c in range(n):
            if c in chosen:
                continue
            add = sum(max(0.0, row[c] - cov) for row, cov in zip(table, covered))
            if add > best_add:
                best_c, best_add = c, add
        if best_c < 0:
            break
        chosen.append(best_c)
        covered = [max(cov, row[best_c]) for row, cov in zip(table, covered)]
    return chosen


def mean_percent(table: Sequence[Sequence[float]], columns: Sequence[int]) -> float:
    """Arithmetic mean % below -Oz over programs, taking each program's best column (0: -Oz)."""
    if not table:
        return 0.0
    return 100.0 * sum(max([0.0, *(row[c] for c in columns)]) for row in table) / len(table)


# ----------------------------------------------------------------------------- the build
def build_pool(cand_rows: Sequence[dict[str, Any]], include_nvp: bool, cap: int) -> list[dict[str, Any]]:
    seqs: list[CoresetSequence] = []
    for row in cand_rows:
        for start in ("o0", "oz"):
            found = row.get(start)
            if found and found["passes"]:
                seqs.append(CoresetSequence(start, tuple(found["passes"][:cap])))
    if include_nvp:
        for s in nvp50().sequences:
            seqs += [CoresetSequence("o0", s.passes[:cap]), CoresetSequence("oz", s.passes[:cap])]
    return [s.to_json() | {"origin": i} for i, s in enumerate(unique(seqs))]


def build(
    settings: BuildSettings,
    out: str | os.PathLike,
    jobs: int = 2,
    progress: bool = True,
    command: str = "",
    executor: LocalExecutor | RayExecutor | None = None,
) -> Coreset:
    """The whole build (resumable); returns the coreset and writes OUT/coreset.json and OUT/report.md.

    `executor`: where the per-program stages run (None: a local pool of `jobs` processes).
    """
    settings.check()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BuildError(f"--out {out}: is a file, not a folder")
    train = split_uris(settings.dataset, "train", settings.data_root)  # bad datasets stop here, before any write
    val = split_uris(settings.dataset, "val", settings.data_root)
    work = out / WORK
    work.mkdir(parents=True, exist_ok=True)
    fp_path = work / "settings.json"
    fp = settings.fingerprint()
    if fp_path.exists():
        old = json.loads(fp_path.read_text())
        if old != fp:
            changed = sorted(k for k in set(old) | set(fp) if old.get(k) != fp.get(k))
            raise BuildError(f"--out {out}: holds a build with other settings ({', '.join(changed)}); use another --out")
    else:
        atomic_write(fp_path, json.dumps(fp, indent=1))
    t0 = time.monotonic()
    programs = sample(train, settings.programs, settings.seed, "train")
    val_programs = sample(val, settings.val_programs, settings.seed, "val")
    # 1. candidates
    cand_rows = run_stage("candidates", work / "candidates.jsonl", programs, candidates_unit, (fp,), jobs, progress, executor)
    pool_path = work / "pool.json"
    if pool_path.exists():
        pool = json.loads(pool_path.read_text())
    else:
        pool = build_pool([cand_rows[u] for u in programs if u in cand_rows], settings.include_nvp, max(settings.lengths))
        atomic_write(pool_path, json.dumps(pool))
    # 2. measurement on the training programs
    measure_set = evenly(programs, settings.measure_programs)
    measured = run_stage("measure", work / "measure.jsonl", measure_set, measure_unit, (fp, pool), jobs, progress, executor)
    rows = [measured[u] for u in measure_set if u in measured]
    # 3. greedy selection per length cap
    selections: dict[int, list[int]] = {}
    train_means: dict[int, list[float]] = {}
    for li, cap in enumerate(settings.lengths):
        table = gains(rows, len(pool), li)
        chosen = greedy_cover(table, settings.k)
        selections[cap] = chosen
        train_means[cap] = [mean_percent(table, chosen[:k]) for k in range(1, len(chosen) + 1)]
    # 4. validation: the union of the selections, measured once
    union = sorted({c for chosen in selections.values() for c in chosen})
    val_pool = [pool[c] for c in union]
    vmeasured = run_stage("validate", work / "validate.jsonl", val_programs, measure_unit, (fp, val_pool), jobs, progress, executor)
    vrows = [vmeasured[u] for u in val_programs if u in vmeasured]
    grid: list[dict[str, Any]] = []
    for li, cap in enumerate(settings.lengths):
        vtable = gains(vrows, len(val_pool), li)
        cols = [union.index(c) for c in selections[cap]]
        for k in range(1, len(cols) + 1):
            passes = sum(min(cap, len(pool[c]["passes"])) for c in selections[cap][:k])
            grid.append(
                {"length": cap, "k": k, "passes": passes, "val_mean": mean_percent(vtable, cols[:k]),
                 "train_mean": train_means[cap][k - 1]}
            )
    affordable = [g for g in grid if g["passes"] <= settings.max_passes] or grid
    if not affordable:
        raise BuildError("no candidate sequence improved on -Oz for any measured program: nothing to select")
    best_val = max(g["val_mean"] for g in affordable)
    good = [g for g in affordable if g["val_mean"] >= best_val * (1 - settings.tolerance)]
    chosen_cfg = min(good, key=lambda g: (g["passes"], -g["val_mean"]))
    cap, k = chosen_cfg["length"], chosen_cfg["k"]
    sequences = [CoresetSequence(pool[c]["start"], tuple(pool[c]["passes"][:cap])) for c in selections[cap][:k]]
    ok_train = sum(1 for r in rows if not r.get("error"))
    ok_val = sum(1 for r in vrows if not r.get("error"))
    meta = {
        "command": command,
        "llvm": _llvm_version(),
        "dataset": settings.dataset,
        "settings": fp,
        "chosen": chosen_cfg,
        "figures": {
            "train_programs_measured": ok_train,
            "val_programs_measured": ok_val,
            "train_mean_percent_below_oz": chosen_cfg["train_mean"],
            "val_mean_percent_below_oz": chosen_cfg["val_mean"],
            "val_best_mean_percent_below_oz": best_val,
            "candidates": len(pool),
            "build_seconds_this_run": round(time.monotonic() - t0, 1),
        },
    }
    coreset = Coreset(f"llvm19-{settings.dataset}", sequences, meta)
    coreset.save(out / "coreset.json")
    atomic_write(out / "report.md", report(coreset, grid, rows, vrows, cand_rows, programs))
    atomic_write(out / "grid.json", json.dumps(grid, indent=1))
    return coreset


def _llvm_version() -> str:
    try:
        from ._core import LLVM_VERSION

        return str(LLVM_VERSION)
    except Exception:  # pragma: no cover
        return "unknown"


def report(coreset: Coreset, grid, rows, vrows, cand_rows, programs) -> str:
    f = coreset.meta["figures"]
    c = coreset.meta["chosen"]
    errors = [r for r in list(rows) + list(vrows) if r.get("error")]
    lines = [
        f"# Coreset {coreset.name}",
        "",
        f"Built with: `{coreset.meta['command']}` (LLVM {coreset.meta['llvm']}).",
        "",
        f"- candidates: {f['candidates']} sequences (searched on {len(programs)} training programs from -O0 and from -Oz"
        + (", plus Coreset-NVP's 50 from both starts)" if coreset.meta["settings"]["include_nvp"] else ")"),
        f"- measured on {f['train_programs_measured']} training and {f['val_programs_measured']} validation programs"
        f" ({len(errors)} skipped: too large, crashed or failed to load)",
        f"- chosen on validation: K = {c['k']} sequences, length cap {c['length']}, {c['passes']} passes per program",
        f"- mean % below -Oz (best prefix over the set, -Oz as fallback): train {f['train_mean_percent_below_oz']:.2f}%,"
        f" validation {f['val_mean_percent_below_oz']:.2f}% (best on the grid {f['val_best_mean_percent_below_oz']:.2f}%)",
        f"- sequences from -Oz: {sum(1 for s in coreset.sequences if s.start == 'oz')} of {len(coreset)}",
        "",
        "## Validation grid (mean % below -Oz)",
        "",
        "| length cap | K | passes/program | train | validation |",
        "|---|---|---|---|---|",
    ]
    for g in grid:
        if g["k"] in (1, 2, 3, 5, 8, 10, 15, 20, 25, 30, 40, 50) or (g["k"] == c["k"] and g["length"] == c["length"]):
            mark = " **(chosen)**" if (g["k"], g["length"]) == (c["k"], c["length"]) else ""
            lines.append(f"| {g['length']} | {g['k']}{mark} | {g['passes']} | {g['train_mean']:.2f} | {g['val_mean']:.2f} |")
    lines += ["", "## Sequences (greedy order)", ""]
    for i, s in enumerate(coreset.sequences):
        lines.append(f"{i + 1}. from {START_LABEL[s.start]}: `{' '.join(s.passes)}`")
    if errors:
        lines += ["", "## Skipped programs", ""]
        lines += [f"- {r['uri']}: {r['error']}" for r in errors[:50]]
        if len(errors) > 50:
            lines.append(f"- ... and {len(errors) - 50} more")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- command line
class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise BuildError(message)


def build_parser() -> argparse.ArgumentParser:
    d = BuildSettings()
    p = _Parser(prog="compilerdream coreset", description="Build or show a coreset of pass sequences (LLVM 19).")
    sub = p.add_subparsers(dest="command")
    b = sub.add_parser("build", help="build a coreset from a dataset's train split (K and length chosen on its val split)")
    b.add_argument("--dataset", default=d.dataset, help="dataset or task name with train/val splits (default: the default corpus)")
    b.add_argument("--out", required=True, help="output folder: coreset.json, report.md, and work/ (resumable)")
    b.add_argument("--k", type=int, default=d.k, help=f"most sequences to select (default {d.k}); K is chosen on validation")
    b.add_argument("--lengths", default=",".join(map(str, d.lengths)), help="length caps to try, comma-separated")
    b.add_argument("--programs", type=int, default=d.programs, help="training programs sampled")
    b.add_argument("--measure-programs", type=int, default=d.measure_programs,
                   help="of the training programs, how many (evenly spread) the candidates are measured on (0: all)")
    b.add_argument("--val-programs", type=int, default=d.val_programs, help="validation programs sampled")
    b.add_argument("--search-compilations", type=int, default=d.search_compilations, help="random search budget per program and start")
    b.add_argument("--max-instructions", type=int, default=d.max_instructions)
    b.add_argument("--max-passes", type=int, default=d.max_passes, help="most passes per program for the chosen coreset")
    b.add_argument("--tolerance", type=float, default=d.tolerance)
    b.add_argument("--no-nvp", action="store_true", help="leave Coreset-NVP's 50 sequences out of the candidates")
    b.add_argument("--options", default="", help="opt options every program is compiled under, space-separated "
                   "(e.g. optimize's fourth set; the -O0 start then gets forceattrs, and -Oz is -Oz under them)")
    b.add_argument("--seed", type=int, default=d.seed)
    b.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    b.add_argument("--data-root", default=None)
    add_executor_args(b)
    s = sub.add_parser("show", help="print a coreset (name or file)")
    s.add_argument("coreset", nargs="?", default="default")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    line_buffered_stdout()
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        args = build_parser().parse_args(argv)
        if args.command == "show":
            from .coreset import describe, load_coreset

            cs = load_coreset(args.coreset)
            print(describe(cs))
            for k in ("command", "figures"):
                if k in cs.meta:
                    print(f"{k}: {json.dumps(cs.meta[k])}")
            for i, seq in enumerate(cs.sequences):
                print(f"{i + 1:3d}. from {START_LABEL[seq.start]}: {' '.join(seq.passes)}")
            return 0
        if args.command != "build":
            print(f"usage: {PROG.rsplit(' ', 1)[0]} build|show ...", file=sys.stderr)
            return 2
        try:
            lengths = tuple(int(x) for x in args.lengths.split(",") if x.strip())
        except ValueError:
            raise BuildError(f"--lengths must be comma-separated integers, got {args.lengths!r}") from None
        if args.jobs <= 0:
            raise BuildError(f"--jobs must be positive, got {args.jobs}")
        settings = BuildSettings(
            dataset=args.dataset, k=args.k, lengths=lengths, programs=args.programs, measure_programs=args.measure_programs, val_programs=args.val_programs,
            search_compilations=args.search_compilations, max_instructions=args.max_instructions,
            max_passes=args.max_passes, tolerance=args.tolerance, include_nvp=not args.no_nvp, seed=args.seed,
            data_root=args.data_root, options=tuple(args.options.split()),
        )
        settings.check()
        if args.executor == "local" and not args.ray_address:
            coreset = build(settings, args.out, jobs=args.jobs, command=portable_command(argv))
        else:
            with make_executor(args.executor, args.jobs, args.ray_address) as executor:
                coreset = build(settings, args.out, jobs=args.jobs, command=portable_command(argv), executor=executor)
    except (BuildError, CoresetError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except CompilerDreamError as exc:
        print(f"{PROG}: error: {' | '.join(str(exc).splitlines())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted (run the same command again to resume)", file=sys.stderr)
        return 130
    f = coreset.meta["figures"]
    print(
        f"coreset: {len(coreset)} sequences, {coreset.total_passes} passes; mean below -Oz: "
        f"train {f['train_mean_percent_below_oz']:.2f}%, validation {f['val_mean_percent_below_oz']:.2f}%"
    )
    print(f"wrote {Path(args.out) / 'coreset.json'} and {Path(args.out) / 'report.md'}")
    return 0


def portable_command(argv: Sequence[str]) -> str:
    """The command as a user reruns it (`--jobs` and where it ran do not change the result and are left out)."""
    out, skip = ["compilerdream", "coreset"], False
    for t in argv:
        if skip:
            skip = False
            continue
        if t in ("--jobs", "--executor", "--ray-address"):
            skip = True
            continue
        if t.startswith(("--jobs=", "--executor=", "--ray-address=")):
            continue
        out.append(t)
    return shlex.join(out)


if __name__ == "__main__":
    sys.exit(main())
