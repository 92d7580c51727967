"""Training throughput of the agent: this tree against a baseline revision, in one run.

    python benchmarks/train_speed.py                           # small preset: this tree vs e630dc4, 3 rounds
    python benchmarks/train_speed.py --rounds 5 --updates 20   # more, longer rounds (a noisy machine)
    python benchmarks/train_speed.py --baseline-rev none       # this tree only
    python benchmarks/train_speed.py --presets small,paper     # also the paper-sized model
    python benchmarks/train_speed.py --env-steps 1000          # also env steps/s of one task (this tree)

How: `--baseline-rev` is checked out with `git worktree` into a temporary folder. Each
measurement is a fresh subprocess that imports one tree's `compilerdream`, sets torch's
threads as that tree's driver does, builds the preset's agent with the same seed, fills a
replay with the same seeded synthetic episodes, runs warm-up updates, then times
`--updates` updates (wall clock and CPU time). Trees alternate within each round, so a
load change on a shared machine hits both; the ratio is the median of the per-round
ratios. The same seed and batches go to both trees, so the per-update losses must agree:
the script prints the largest relative difference of `model_loss` (bit-identical maths
gives 0; a reordered float sum gives ~1e-6). Results: benchmarks/results/train_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

PRESETS = {
    "small": ["compilergym", "compilergym_dv3", "small"],
    "paper": ["compilergym", "compilergym_dv3"],
    "tiny": ["compilergym", "compilergym_dv3", "tiny"],
    "debug": ["compilergym", "compilergym_dv3", "debug"],
}
DEFAULT_BASELINE = "e630dc4"  # the commit before the training-speed work (issue 10, part 4)


# ----------------------------------------------------------------- one measurement
def fake_episode(obs_space, num_actions: int, length: int, rng) -> dict:
    ep = {k: rng.random((length + 1, *shape)).astype(np.float32) for k, shape in obs_space.items() if shape}
    actions = np.eye(num_actions, dtype=np.float32)[rng.integers(num_actions, size=length + 1)]
    actions[0] = 0
    ep.update(
        action=actions,
        reward=rng.normal(0, 0.05, length + 1).astype(np.float32),
        is_first=np.eye(1, length + 1, 0, dtype=bool)[0],
        is_last=np.eye(1, length + 1, length, dtype=bool)[0],
        is_terminal=np.eye(1, length + 1, length, dtype=bool)[0],
    )
    ep["reward"][0] = 0
    return ep


def measure_agent(preset: str, device: str, updates: int, warmup: int, seed: int) -> dict:
    """Updates/s of the `compilerdream` found first on sys.path (this tree or a baseline's worktree)."""
    import torch

    from compilerdream import driver
    from compilerdream.agent import Agent
    from compilerdream.config import load_configs
    from compilerdream.replay import Replay
    from compilerdream.search import agent_spaces
    from compilerdream.task import TaskSettings

    config = load_configs(PRESETS[preset]).update({"device": device})
    if device == "cpu":
        config = config.update({"precision": 32})
    if hasattr(driver, "set_threads"):
        driver.set_threads(device)
    else:  # the baseline's driver set one thread on CPU inside run()
        torch.set_num_threads(1 if device == "cpu" else max(1, min(os.cpu_count() or 1, 4)))
    obs_space, num_actions = agent_spaces(TaskSettings.from_config(config))
    torch.manual_seed(seed)
    agent = Agent(obs_space, num_actions, config, device)
    replay = Replay(None, maxlen=int(config["replay.maxlen"]), seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(20):
        replay.add_episode(fake_episode(obs_space, num_actions, 45, rng))
    batch, length = int(config["dataset.batch"]), int(config["dataset.length"])
    batches = [replay.sample(batch, length) for _ in range(warmup + updates)]
    losses = []
    for b in batches[:warmup]:  # lazy initialisation, allocator, any compilation
        losses.append(agent.train(b)[1]["model_loss"])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    for b in batches[warmup:]:
        losses.append(agent.train(b)[1]["model_loss"])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "updates_per_s": updates / wall,
        "ms_per_update": 1e3 * wall / updates,
        "cpu_ms_per_update": 1e3 * cpu / updates,
        "threads": torch.get_num_threads(),
        "batch": batch,
        "length": length,
        "deter": int(config["rssm.deter"]),
        "imag_horizon": int(config["imag_horizon"]),
        "model_losses": [float(x) for x in losses],
        "package": str(Path(driver.__file__).parents[1]),
    }


def measure_env(steps: int) -> float:
    """Random-policy env steps/s of one CompilerTask (worker process) on the example programs (this tree only)."""
    from compilerdream.config import load_configs
    from compilerdream.task import CompilerTask

    config = load_configs(PRESETS["small"])
    programs = sorted(str(p) for p in (REPO / "examples" / "programs").glob("*.c"))
    task = CompilerTask("samples", "train", config, seed=0, benchmarks=programs)
    rng = np.random.default_rng(0)
    obs = task.reset()
    start = time.perf_counter()
    for _ in range(steps):
        obs = task.step(int(rng.integers(task.num_actions)))
        if obs["is_last"]:
            obs = task.reset()
    elapsed = time.perf_counter() - start
    task.close()
    return steps / elapsed


# ------------------------------------------------------------------ the comparison
def run_tree(tree: Path, args, preset: str) -> dict:
    """One measurement in a fresh interpreter that imports `tree`'s compilerdream."""
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(1, sys.argv[2]); "
        "import train_speed as ts; "
        "print('RESULT ' + json.dumps(ts.measure_agent(sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), "
        "int(sys.argv[7]))))"
    )
    env = dict(os.environ, PYTHONPATH=str(tree))
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tree), str(REPO / "benchmarks"), preset, args.device, str(args.updates),
         str(args.warmup), str(args.seed)],
        cwd=tree, env=env, capture_output=True, text=True,
    )  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"train_speed: the measurement of {tree} failed:\n{proc.stderr[-3000:]}")
    row = json.loads(lines[-1][len("RESULT ") :])
    if Path(row["package"]).resolve() != tree.resolve():
        raise SystemExit(f"train_speed: measured the compilerdream in {row['package']}, not {tree}")
    return row


class Worktree:
    """`git worktree add --detach` of a revision in a temporary folder, removed on exit."""

    def __init__(self, rev: str):
        self.rev = rev
        self.tmp = tempfile.TemporaryDirectory(prefix="compilerdream-baseline-")
        self.path = Path(self.tmp.name) / "tree"

    def __enter__(self) -> Path:
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(self.path), self.rev],
                       check=True)  # fmt: skip
        # The C++ engine is a build output, not in git: the baseline uses this tree's (it is not what is compared).
        for built in (REPO / "compilerdream" / "compiler" / "_core").glob("*.so"):
            shutil.copy2(built, self.path / "compilerdream" / "compiler" / "_core" / built.name)
        return self.path

    def __exit__(self, *exc) -> None:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(self.path)], check=False)
        subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], check=False)
        self.tmp.cleanup()


def relative_difference(a: list[float], b: list[float]) -> float:
    return max((abs(x - y) / max(abs(x), abs(y), 1e-12) for x, y in zip(a, b)), default=0.0)


def compare(args, preset: str, baseline: Path | None) -> dict:
    trees = {"current": REPO} if baseline is None else {"baseline": baseline, "current": REPO}
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    for round_index in range(args.rounds):
        order = list(trees) if round_index % 2 == 0 else list(trees)[::-1]  # alternate who goes first
        for name in order:
            row = run_tree(trees[name], args, preset)
            runs[name].append(row)
            print(f"  round {round_index + 1} {name:>8}: {row['updates_per_s']:.2f} updates/s "
                  f"({row['ms_per_update']:.0f} ms wall, {row['cpu_ms_per_update']:.0f} ms CPU per update, "
                  f"{row['threads']} thread(s))", flush=True)  # fmt: skip
    summary: dict = {"preset": preset, "rounds": args.rounds, "updates": args.updates}
    for name, rows in runs.items():
        summary[name] = {
            "updates_per_s_median": statistics.median(r["updates_per_s"] for r in rows),
            "cpu_ms_per_update_median": statistics.median(r["cpu_ms_per_update"] for r in rows),
            "updates_per_s": [r["updates_per_s"] for r in rows],
            "threads": rows[0]["threads"],
            "batch": rows[0]["batch"],
            "length": rows[0]["length"],
            "deter": rows[0]["deter"],
        }
    if baseline is not None:
        ratios = [c["updates_per_s"] / b["updates_per_s"] for b, c in zip(runs["baseline"], runs["current"])]
        summary["ratio_per_round"] = ratios
        summary["ratio_median"] = statistics.median(ratios)
        summary["cpu_time_ratio_median"] = statistics.median(
            b["cpu_ms_per_update"] / c["cpu_ms_per_update"] for b, c in zip(runs["baseline"], runs["current"])
        )
        summary["model_loss_max_relative_difference"] = relative_difference(
            runs["baseline"][0]["model_losses"], runs["current"][0]["model_losses"]
        )
    return summary


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--presets", default="small", help="comma-separated: small, paper, debug")
    p.add_argument("--baseline-rev", default=DEFAULT_BASELINE, help="git revision to compare with; 'none' to skip")
    p.add_argument("--rounds", type=int, default=3, help="alternating measurements of each tree")
    p.add_argument("--updates", type=int, default=10, help="timed updates per measurement")
    p.add_argument("--warmup", type=int, default=2, help="untimed updates first")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--env-steps", type=int, default=0, help="also time this many env steps of one task (this tree)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "train_speed.json"))
    args = p.parse_args()
    if min(args.rounds, args.updates) < 1 or args.warmup < 0:
        raise SystemExit("train_speed: --rounds and --updates must be at least 1, --warmup not negative")

    import torch

    sys.path.insert(0, str(REPO))
    from compilerdream.driver import resolve_device

    args.device = resolve_device(args.device)  # a clear message when --device cuda has no GPU
    rows: dict = {}
    baseline_rev = None if args.baseline_rev.lower() == "none" else args.baseline_rev
    worktree = Worktree(baseline_rev) if baseline_rev else None
    baseline = worktree.__enter__() if worktree else None
    try:
        for preset in args.presets.split(","):
            print(f"{preset} preset on {args.device}" + (f", against {baseline_rev}" if baseline_rev else ""), flush=True)
            row = compare(args, preset, baseline)
            rows[preset] = row
            line = f"{preset:>6}: {row['current']['updates_per_s_median']:.2f} updates/s"
            if baseline is not None:
                line += (f" vs {row['baseline']['updates_per_s_median']:.2f} at {baseline_rev}: "
                         f"{row['ratio_median']:.2f}x (median of {args.rounds} rounds; CPU time per update "
                         f"{row['cpu_time_ratio_median']:.2f}x less); model_loss max relative difference "
                         f"{row['model_loss_max_relative_difference']:.1e}")  # fmt: skip
            print(line, flush=True)
    finally:
        if worktree is not None:
            worktree.__exit__(None, None, None)
    if args.env_steps:
        rows["env_steps_per_s"] = measure_env(args.env_steps)
        print(f"env: {rows['env_steps_per_s']:.0f} random-policy steps/s of one task", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(out.read_text()) if out.exists() else {}
    existing[args.device] = {"machine": platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
                             "load_average": os.getloadavg(), "baseline_rev": baseline_rev, **rows}  # fmt: skip
    out.write_text(json.dumps(existing, indent=1) + "\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
