"""Measure the LLVM environment: µs per step and per reset, against opt-19 run as a subprocess per step.

A measurement, not a test. On modules of about 200, 2,000 and 10,000 IR instructions
(csmith programs from tests/fixtures/programs; the 10k module links all fixture
programs with llvm-link) it reports, in one run:

* median µs per step, in place: one pass + IrInstructionCount, and one pass + Autophase,
  over a fixed seeded list of common passes, in-process (isolation="none") and in the
  default worker process;
* the same pass sequences with `opt-19 -passes=<pass>` as a subprocess per step (the
  module lives in a .bc file: run opt, load its output, count or compute Autophase);
* reset cost with the baselines (IrInstructionCountO0/O3/Oz) cached and uncached;
* resident memory growth over 10,000 steps in 500 episodes, of the worker process
  (/proc/<pid>/status VmRSS) and of the in-process variant.

Targets: a worker step at most 1.5x the in-process step at 200 instructions (the two
alternate, --rounds times); >= 20x faster than the subprocess at 2,000 instructions; <= 1 ms median per
step (pass + Autophase) at 2,000; RSS growth < 50 MB over 10k steps / 500 episodes.

    python benchmarks/env_step.py            # full run, a few minutes on 2 cores
    python benchmarks/env_step.py --quick    # a short run
    python benchmarks/env_step.py --quick --baseline-rev e630dc4   # + worker overhead before/after, one run
    COMPILERDREAM_WORKER_SPIN_US=0 python benchmarks/env_step.py   # the worker without polling
Results go to benchmarks/results/env_step.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# This tree's package, whatever is installed (or the tree a --baseline-rev measurement names).
sys.path.insert(0, os.environ.get("COMPILERDREAM_BENCH_TREE") or str(Path(__file__).resolve().parent.parent))
import compilerdream.compiler as cc  # noqa: E402
from compilerdream.compiler import _core  # noqa: E402
from compilerdream.compiler import env as env_module  # noqa: E402
from compilerdream.compiler import worker as worker_module  # noqa: E402
from compilerdream.compiler.spaces import pass_flags  # noqa: E402
from compilerdream.compiler.toolchain import DEFAULT_FRONTEND_FLAGS, compile_source, find_tool  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PROGRAMS = REPO / "tests" / "fixtures" / "programs"
CSMITH_INCLUDE = "/usr/include/csmith"

#: Common passes drawn (seeded) into episodes; they act on -O0 style IR and on its optimized forms.
COMMON_PASSES = (
    "-mem2reg", "-sroa", "-instcombine", "-simplifycfg", "-early-cse", "-gvn", "-licm", "-loop-rotate",
    "-indvars", "-dse", "-adce", "-reassociate", "-jump-threading", "-sccp", "-loop-unroll", "-inline",
    "-globalopt", "-correlated-propagation", "-memcpyopt", "-tailcallelim",
)  # fmt: skip
STEPS_PER_EPISODE = 20


# --------------------------------------------------------------------------- modules
def build_modules(workdir: Path) -> dict[str, Path]:
    """The three benchmark modules as bitcode files: ~200, ~2,000 and ~10,000 instructions."""

    def compile_one(name: str, rename_main: bool) -> Path:
        source = next(PROGRAMS.glob(name + ".c*"))
        flags = (*DEFAULT_FRONTEND_FLAGS, f"-Dmain=main_{name}") if rename_main else DEFAULT_FRONTEND_FLAGS
        include = (CSMITH_INCLUDE,) if name.startswith("csmith_") else ()
        out = workdir / (name + (".linkable" if rename_main else "") + ".bc")
        out.write_bytes(compile_source(source, flags=flags, include_dirs=include))
        return out

    modules = {"200": compile_one("csmith_258", False), "2k": compile_one("csmith_94", False)}
    parts = [
        compile_one(n, True)
        for n in ("csmith_333", "csmith_94", "csmith_258", "qsort", "crc32", "matmul", "statemachine")
    ]
    linked = workdir / "linked_10k.bc"
    subprocess.run([find_tool("llvm-link"), *map(str, parts), "-o", str(linked)], check=True)
    modules["10k"] = linked
    return modules


def instruction_count(path: Path) -> int:
    return _core.Module.load(path.read_bytes(), path.name, strip=False).instruction_count()


def variants(path: Path, n: int, workdir: Path) -> list[Path]:
    """n copies of a module that differ only by one unused global: distinct content hashes, so no cache hits."""
    text = subprocess.run(
        [find_tool("llvm-dis"), str(path), "-o", "-"], check=True, capture_output=True, text=True
    ).stdout
    out = []
    for i in range(n):
        ll = workdir / f"{path.stem}.variant{i}.ll"
        ll.write_text(text + f"\n@__benchmark_variant_{i} = global i32 {i}\n")
        bc = ll.with_suffix(".bc")
        subprocess.run([find_tool("llvm-as"), str(ll), "-o", str(bc)], check=True)
        out.append(bc)
    return out


def pass_sequences(seed: int, episodes: int) -> list[list[str]]:
    rng = random.Random(seed)
    return [[rng.choice(COMMON_PASSES) for _ in range(STEPS_PER_EPISODE)] for _ in range(episodes)]


# --------------------------------------------------------------------------- timings
def time_env_steps(path: Path, isolation: str, observation: str, sequences: list[list[str]]) -> list[float]:
    """µs of each env.step(pass) returning `observation`, in place, after one untimed warm-up episode."""
    times = []
    with cc.make("llvm-v0", benchmark=path, observation_space=observation, isolation=isolation) as env:
        for i, sequence in enumerate([sequences[0], *sequences]):
            env.reset()
            for flag in sequence:
                start = time.perf_counter()
                _, _, terminated, _, info = env.step(flag)
                elapsed = time.perf_counter() - start
                assert not terminated, info
                if i > 0:
                    times.append(elapsed * 1e6)
    return times


def time_subprocess_steps(path: Path, observation: str, sequences: list[list[str]], workdir: Path) -> list[float]:
    """µs per step when each pass is `opt-19 -passes=<pass> cur.bc -o next.bc` plus loading next.bc to observe it."""
    opt = find_tool("opt")
    pipelines = {f.flag: f.pipeline for f in pass_flags()}
    times = []
    for sequence in sequences:
        current = workdir / "subprocess-cur.bc"
        current.write_bytes(path.read_bytes())
        following = workdir / "subprocess-next.bc"
        for flag in sequence:
            start = time.perf_counter()
            subprocess.run([opt, f"-passes={pipelines[flag]}", str(current), "-o", str(following)], check=True)
            module = _core.Module.load(following.read_bytes(), "next", strip=False)
            _ = module.autophase() if observation == "Autophase" else module.instruction_count()
            times.append((time.perf_counter() - start) * 1e6)
            current, following = following, current
    return times


def clear_caches(env) -> None:
    """Forget baselines and parsed programs (in-process worker and this process)."""
    env_module._BASELINE_CACHE.clear()
    server = getattr(env.worker, "server", None)
    if server is not None:
        server.baselines.clear()
        server.programs.clear()


def time_resets(path: Path, isolation: str, uncached_inputs: list[Path], repeats: int) -> dict[str, float]:
    """Median µs of reset() on llvm-autophase-ic-v0 (Autophase + IrInstructionCountOz reward, so baselines needed)."""
    out = {}
    with cc.make("llvm-autophase-ic-v0", benchmark=path, isolation=isolation) as env:
        env.reset()  # warm: program parsed, baselines cached
        cached = []
        for _ in range(repeats):
            start = time.perf_counter()
            env.reset()
            cached.append((time.perf_counter() - start) * 1e6)
        uncached = []
        for variant in uncached_inputs:
            clear_caches(env)
            start = time.perf_counter()
            env.reset(benchmark=variant)
            uncached.append((time.perf_counter() - start) * 1e6)
    out["cached_us"] = statistics.median(cached)
    out["uncached_us"] = statistics.median(uncached)
    return out


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def rss_growth(modules: list[Path], isolation: str, episodes: int, warmup_episodes: int) -> dict:
    """RSS of the session process before and after `episodes` episodes of STEPS_PER_EPISODE passes over `modules`."""
    sequences = pass_sequences(seed=99, episodes=episodes + warmup_episodes)
    with cc.make("llvm-autophase-ic-v0", isolation=isolation) as env:

        def pid() -> int:
            return env.worker.process.pid if isolation == "process" else os.getpid()

        samples = []
        start = time.perf_counter()
        for i, sequence in enumerate(sequences):
            env.reset(benchmark=modules[i % len(modules)])
            for flag in sequence:
                env.step(flag)
            if i + 1 == warmup_episodes:
                baseline, baseline_pid = rss_kib(pid()), pid()
            if i >= warmup_episodes and (i - warmup_episodes) % max(1, episodes // 10) == 0:
                samples.append(rss_kib(pid()))
        final = rss_kib(pid())
        assert pid() == baseline_pid, "the worker was replaced during the run"
        elapsed = time.perf_counter() - start
    return {
        "episodes": episodes,
        "steps": episodes * STEPS_PER_EPISODE,
        "rss_after_warmup_mib": baseline / 1024,
        "rss_final_mib": final / 1024,
        "rss_growth_mib": (final - baseline) / 1024,
        "rss_samples_mib": [s / 1024 for s in samples],
        "seconds": elapsed,
    }


# --------------------------------------------------------------------------- report
def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (fewer episodes, 1,000-step RSS run)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating in-process/worker measurements per row")
    parser.add_argument("--baseline-rev", default=None,
                        help="also measure the worker overhead at 200 instructions of this git revision, alternating "
                             "with this tree (e.g. e630dc4, the commit before the worker-protocol work)")  # fmt: skip
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "env_step.json"))
    args = parser.parse_args(argv)

    env_episodes, subprocess_episodes, reset_repeats, uncached_resets = (5, 2, 10, 3) if args.quick else (25, 5, 50, 5)
    rss_episodes, rss_warmup = (50, 6) if args.quick else (500, 12)

    results: dict = {
        "machine": {
            "python": platform.python_version(),
            "llvm": str(_core.LLVM_VERSION),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_at_start": os.getloadavg(),
        },
        "protocol": {
            "rounds": args.rounds,
            "worker_spin_us": worker_module.spin_seconds() * 1e6,
            "passes": list(COMMON_PASSES),
            "steps_per_episode": STEPS_PER_EPISODE,
            "env_episodes": env_episodes,
            "subprocess_episodes": subprocess_episodes,
            "quick": args.quick,
        },
        "modules": {},
        "steps": [],
        "resets": [],
    }
    with tempfile.TemporaryDirectory(prefix="compilerdream-bench-") as tmp:
        workdir = Path(tmp)
        modules = build_modules(workdir)
        for label, path in modules.items():
            results["modules"][label] = instruction_count(path)
            print(f"module {label}: {results['modules'][label]} instructions", flush=True)

        for label, path in modules.items():
            sequences = pass_sequences(seed=0, episodes=env_episodes)
            for observation in ("IrInstructionCount", "Autophase"):
                row = {"module": label, "instructions": results["modules"][label], "observation": observation}
                samples: dict[str, list[float]] = {"none": [], "process": []}
                for _ in range(args.rounds):  # alternating, so a load change on a shared machine hits both
                    for isolation in ("none", "process"):
                        samples[isolation] += time_env_steps(path, isolation, observation, sequences)
                for isolation, values in samples.items():
                    row[f"env_{isolation}_us"] = median(values)
                row["worker_over_in_process"] = row["env_process_us"] / row["env_none_us"]
                row["opt_subprocess_us"] = median(
                    time_subprocess_steps(path, observation, sequences[:subprocess_episodes], workdir)
                )
                row["speedup_none"] = row["opt_subprocess_us"] / row["env_none_us"]
                row["speedup_process"] = row["opt_subprocess_us"] / row["env_process_us"]
                results["steps"].append(row)
                print(json.dumps(row), flush=True)
            inputs = variants(path, uncached_resets, workdir)
            for isolation in ("none", "process"):
                row = {"module": label, "isolation": isolation, **time_resets(path, isolation, inputs, reset_repeats)}
                results["resets"].append(row)
                print(json.dumps(row), flush=True)

        if args.baseline_rev:
            results["against_baseline"] = compare_worker_overhead(modules["200"], args.baseline_rev, args.rounds,
                                                                  env_episodes)  # fmt: skip
            print(json.dumps(results["against_baseline"]), flush=True)

        rotation = list(modules.values())
        results["rss"] = {
            isolation: rss_growth(rotation, isolation, rss_episodes, rss_warmup) for isolation in ("process", "none")
        }
        print(json.dumps(results["rss"]), flush=True)

    results["machine"]["load_average_at_end"] = os.getloadavg()
    results["targets"] = evaluate_targets(results)
    print_report(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out}")
    return results


def _overhead_in(tree: Path, module: Path, episodes: int) -> dict:
    """Median µs per step, in-process and worker, of `tree`'s compilerdream, in a fresh interpreter."""
    code = (
        "import json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import env_step as es; "
        "seqs = es.pass_sequences(0, int(sys.argv[3])); "
        "print('RESULT ' + json.dumps({o: {i: es.median(es.time_env_steps(Path(sys.argv[2]), i, o, seqs)) "
        "for i in ('none', 'process')} for o in ('IrInstructionCount', 'Autophase')}))"
    )
    env = dict(os.environ, COMPILERDREAM_BENCH_TREE=str(tree), PYTHONPATH=str(tree))
    proc = subprocess.run([sys.executable, "-c", code, str(REPO / "benchmarks"), str(module), str(episodes)],
                          cwd=tree, env=env, capture_output=True, text=True)  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"env_step: the measurement of {tree} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def compare_worker_overhead(module: Path, rev: str, rounds: int, episodes: int) -> dict:
    """Worker / in-process step time at ~200 instructions, this tree against `rev`, alternating rounds."""
    from train_speed import Worktree

    ratios: dict[str, dict[str, list[float]]] = {"baseline": {}, "current": {}}
    with Worktree(rev) as baseline:
        trees = {"baseline": baseline, "current": REPO}
        for index in range(rounds):
            for name in (list(trees) if index % 2 == 0 else list(trees)[::-1]):
                for observation, row in _overhead_in(trees[name], module, episodes).items():
                    ratios[name].setdefault(observation, []).append(row["process"] / row["none"])
    out = {"baseline_rev": rev, "rounds": rounds}
    for name, per_observation in ratios.items():
        out[name] = {obs: {"worker_over_in_process_median": median(values), "per_round": values}
                     for obs, values in per_observation.items()}  # fmt: skip
    return out


def evaluate_targets(results: dict) -> dict:
    at_2k = {r["observation"]: r for r in results["steps"] if r["module"] == "2k"}
    at_200 = [r for r in results["steps"] if r["module"] == "200"]
    growth = max(r["rss_growth_mib"] for r in results["rss"].values())
    return {
        "worker_at_200_<=1.5x_in_process": max(r["worker_over_in_process"] for r in at_200) <= 1.5,
        "speedup_at_2k_>=20x": min(at_2k[o]["speedup_process"] for o in at_2k) >= 20,
        "autophase_step_at_2k_<=1ms": at_2k["Autophase"]["env_process_us"] <= 1000,
        "rss_growth_<50MB": growth < 50,
    }


def print_report(results: dict) -> None:
    print("\nmedian µs per step (pass + observation), in place")
    header = f"{'module':>7} {'instrs':>7} {'observation':>18} {'in-process':>11} {'worker':>9} {'worker/in-proc':>15} {'opt subproc':>12} {'x in-proc':>10} {'x worker':>9}"
    print(header)
    print("-" * len(header))
    for r in results["steps"]:
        print(
            f"{r['module']:>7} {r['instructions']:>7} {r['observation']:>18} {r['env_none_us']:>11.0f} "
            f"{r['env_process_us']:>9.0f} {r['worker_over_in_process']:>14.2f}x {r['opt_subprocess_us']:>12.0f} {r['speedup_none']:>9.1f}x {r['speedup_process']:>8.1f}x"
        )
    print("\nmedian µs per reset (llvm-autophase-ic-v0: Autophase + IrInstructionCountOz)")
    print(f"{'module':>7} {'isolation':>10} {'cached baselines':>17} {'uncached':>10}")
    for r in results["resets"]:
        print(f"{r['module']:>7} {r['isolation']:>10} {r['cached_us']:>17.0f} {r['uncached_us']:>10.0f}")
    print("\nresident memory over the RSS run")
    for isolation, r in results["rss"].items():
        print(
            f"{isolation:>8}: {r['steps']} steps / {r['episodes']} episodes in {r['seconds']:.0f} s, "
            f"RSS {r['rss_after_warmup_mib']:.1f} -> {r['rss_final_mib']:.1f} MiB (growth {r['rss_growth_mib']:+.1f} MiB)"
        )
    machine = results["machine"]
    print(
        f"\n{machine['cpus']} CPUs, load average {machine['load_average_at_start'][0]:.1f} at start, {machine['load_average_at_end'][0]:.1f} at end"
    )
    if "against_baseline" in results:
        compared = results["against_baseline"]
        for obs in compared["current"]:
            print(f"worker / in-process at 200 instructions ({obs}): {compared['current'][obs]['worker_over_in_process_median']:.2f}x "
                  f"now, {compared['baseline'][obs]['worker_over_in_process_median']:.2f}x at {compared['baseline_rev']} "
                  f"(medians of {compared['rounds']} alternating rounds)")  # fmt: skip
    print("targets: " + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in results["targets"].items()))


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
