"""The LLVM instruction-count leaderboard harness: `eval_llvm_instcount_policy(policy)`.

A policy is `policy(env)`: it gets an `llvm-ic-v0` environment already reset to a benchmark
and optimizes it in place; it must not change the benchmark or the reward space. Each
benchmark of --test_dataset (cbench-v1) is run --n times; each run writes a CSV row
`benchmark,reward,walltime,commandline` to --leaderboard_results (reward: the cumulative
IrInstructionCountOz reward; walltime: seconds inside the policy), validated by replay when
--validate. The summary is the geometric mean of the rewards (clipped at 0) and the mean
walltime, as on CompilerGym's leaderboard. Counts are LLVM 19's, so they differ from the
published LLVM 10 table.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from absl import app, flags

flags.DEFINE_string("leaderboard_results", "llvm_instcount-results.csv", "The path of the results CSV file.")
flags.DEFINE_string("leaderboard_logfile", "llvm_instcount-results.log", "The path of the log file.")
flags.DEFINE_string("test_dataset", "benchmark://cbench-v1", "The dataset whose benchmarks are evaluated.")
flags.DEFINE_integer("max_benchmarks", 0, "Evaluate only this many benchmarks of the dataset (0: all).")
flags.DEFINE_integer("n", 10, "The number of runs of the policy on each benchmark.")
flags.DEFINE_boolean("validate", True, "Replay every result and check its reward.")
flags.DEFINE_boolean("resume", False, "Continue a results file instead of refusing to overwrite it.")

FLAGS = flags.FLAGS

Policy = Callable[..., None]
logger = logging.getLogger("compiler_gym.leaderboard")


class PolicyMisbehaved(RuntimeError):
    """The policy changed what the harness fixed (benchmark, reward space)."""


def geometric_mean(rewards) -> float:
    values = np.clip(np.asarray(list(rewards), dtype=np.float64), 0, None)
    if values.size == 0 or np.any(values == 0):
        return 0.0
    return float(np.exp(np.mean(np.log(values))))


def _run_once(policy: Policy, uri: str):
    import compiler_gym

    env = compiler_gym.make("llvm-ic-v0", benchmark=uri)
    try:
        env.reset()
        started = time.time()
        policy(env)
        walltime = time.time() - started
        if env.benchmark.uri != uri:
            raise PolicyMisbehaved(f"the policy changed the benchmark from {uri} to {env.benchmark.uri}")
        if env.reward_space is None or env.reward_space.name != "IrInstructionCountOz":
            raise PolicyMisbehaved(f"the policy changed the reward space to {env.reward_space}")
        state = env.state
        state = type(state)(state.benchmark, state.commandline, walltime, state.reward)
        validation = env.validate(state) if FLAGS.validate else None
        return state, validation
    finally:
        env.close()


def _evaluate(policy: Policy) -> int:
    from compiler_gym.compiler_env_state import CompilerEnvStateReader

    results = Path(FLAGS.leaderboard_results).expanduser()
    if FLAGS.n <= 0:
        print(f"--n must be positive, got {FLAGS.n}", file=sys.stderr)
        return 2
    if results.is_dir():
        print(f"--leaderboard_results {results} is a directory, not a file", file=sys.stderr)
        return 2
    done: dict[str, int] = {}
    if results.exists():
        if not FLAGS.resume:
            print(f"--leaderboard_results {results} already exists: pass --resume to continue it", file=sys.stderr)
            return 2
        with open(results) as f:
            for state in CompilerEnvStateReader(f):
                done[state.benchmark] = done.get(state.benchmark, 0) + 1
    with _logs_to(Path(FLAGS.leaderboard_logfile).expanduser()):
        return _run_all(policy, results, done)


@contextlib.contextmanager
def _logs_to(path: Path):
    """Stream the `compiler_gym` loggers (all levels) to `path` instead of the console, as CompilerGym's harness."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("compiler_gym")
    saved = root.level, root.propagate
    root.setLevel(logging.DEBUG)
    root.propagate = False
    root.addHandler(handler)
    print(f"Writing logs to {path}")
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(saved[0])
        root.propagate = saved[1]


def _run_all(policy: Policy, results: Path, done: dict[str, int]) -> int:
    import compiler_gym
    from compiler_gym.compiler_env_state import CompilerEnvStateReader, CompilerEnvStateWriter

    env = compiler_gym.make("llvm-ic-v0", benchmark="benchmark://cbench-v1/crc32")
    try:
        uris = list(env.datasets[FLAGS.test_dataset].benchmark_uris())
    except LookupError as exc:
        print(f"--test_dataset {FLAGS.test_dataset}: {exc}", file=sys.stderr)
        return 1
    finally:
        env.close()
    if FLAGS.max_benchmarks > 0:
        uris = uris[: FLAGS.max_benchmarks]

    results.parent.mkdir(parents=True, exist_ok=True)
    invalid = 0
    with open(results, "a") as f:
        writer = CompilerEnvStateWriter(f, header=not done)
        for i, uri in enumerate(uris, start=1):
            for run in range(done.get(uri, 0), FLAGS.n):
                state, validation = _run_once(policy, uri)
                if validation is not None and not validation.okay():
                    invalid += 1
                    logger.error("validation failed for %s: %s", uri, validation.error_details)
                    print(f"validation failed: {uri}: {validation.error_details}", file=sys.stderr)
                writer.write_state(state, flush=True)
                logger.info(
                    "[%d/%d] %s run %d: reward %.4f in %.2fs", i, len(uris), uri, run + 1, state.reward, state.walltime
                )
                print(
                    f"[{i}/{len(uris)}] {uri} run {run + 1}/{FLAGS.n}: reward {state.reward:.4f}, {state.walltime:.2f}s"
                )

    with open(results) as f:
        states = list(CompilerEnvStateReader(f))
    print(f"Codesize reduction (geomean): {geometric_mean(s.reward for s in states):.3f}")
    print(f"Walltime (mean): {np.mean([s.walltime for s in states]):.3f}s over {len(states)} runs")
    print(f"Results written to {results}")
    return 1 if invalid else 0


def eval_llvm_instcount_policy(policy: Policy) -> None:
    """Evaluate `policy` on the leaderboard's benchmarks with the command line's flags, then exit (as CompilerGym)."""

    def main(argv):
        if len(argv) > 1:
            print(f"unexpected arguments: {' '.join(argv[1:])}", file=sys.stderr)
            return 2
        return _evaluate(policy)

    app.run(main)
