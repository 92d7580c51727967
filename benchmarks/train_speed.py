"""Training throughput: env steps/s, world-model updates/s and imagination steps/s, per preset and device.

    python benchmarks/train_speed.py                       # small + paper presets on CPU
    python benchmarks/train_speed.py --device cuda         # the same on a GPU
    python benchmarks/train_speed.py --presets small --updates 20

The peer in the same run is the paper-sized preset (`compilergym compilergym_dv3`):
the script prints how many times faster the `small` preset updates, so a CPU user
knows what the small preset buys. Results go to benchmarks/results/train_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PRESETS = {
    "small": ["compilergym", "compilergym_dv3", "small"],
    "paper": ["compilergym", "compilergym_dv3"],
}


def measure_env(config, steps: int) -> float:
    """Random-policy env steps per second of one CompilerTask (process-isolated worker) on the sample programs."""
    from compilerdream.task import CompilerTask

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


def fake_episode(obs_space, num_actions: int, length: int, rng) -> dict:
    ep = {k: rng.random((length + 1, *shape)).astype(np.float32) for k, (shape, _) in obs_space.items()}
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


def measure_agent(config, device: str, updates: int) -> dict:
    import torch

    from compilerdream.agent import Agent
    from compilerdream.replay import Replay
    from compilerdream.task import CompilerTask

    torch.manual_seed(0)
    programs = sorted(str(p) for p in (REPO / "examples" / "programs").glob("*.c"))
    task = CompilerTask("samples", "train", config, seed=0, benchmarks=programs[:1])
    obs_space, num_actions = task.obs_space, task.num_actions
    task.close()
    agent = Agent({k: s for k, (s, _) in obs_space.items()}, num_actions, config, device)
    replay = Replay(None, maxlen=int(config["replay.maxlen"]), seed=0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        replay.add_episode(fake_episode(obs_space, num_actions, 45, rng))
    batch, length = int(config["dataset.batch"]), int(config["dataset.length"])
    state = None
    state, _ = agent.train(replay.sample(batch, length), state)  # warm-up (lazy init, allocator)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(updates):
        state, _ = agent.train(replay.sample(batch, length), state)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    horizon = int(config["imag_horizon"])
    return {
        "updates_per_s": updates / elapsed,
        "replayed_steps_per_s": updates * batch * length / elapsed,
        "imagination_steps_per_s": updates * batch * length * horizon / elapsed,
        "batch": batch,
        "length": length,
        "deter": int(config["rssm.deter"]),
        "precision": str(config["precision"]),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--presets", default="small,paper")
    p.add_argument("--updates", type=int, default=10, help="timed updates for the small preset (paper: a third)")
    p.add_argument("--env-steps", type=int, default=1000)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "train_speed.json"))
    args = p.parse_args()

    import torch

    from compilerdream.config import load_configs
    from compilerdream.driver import resolve_device

    args.device = resolve_device(args.device)  # a clear message when --device cuda has no GPU
    if args.device == "cpu":
        torch.set_num_threads(1)  # as the driver does on CPU: the compiler workers need the other core
    rows = {}
    for name in args.presets.split(","):
        config = load_configs(PRESETS[name]).update({"device": args.device})
        if args.device == "cpu":
            config = config.update({"precision": 32})
        updates = args.updates if name == "small" else max(2, args.updates // 3)
        row = measure_agent(config, args.device, updates)
        row["env_steps_per_s"] = measure_env(config, args.env_steps)
        rows[name] = row
        print(
            f"{name:>6} on {args.device}: env {row['env_steps_per_s']:.0f} steps/s | "
            f"{row['updates_per_s']:.2f} updates/s (batch {row['batch']}x{row['length']}, deter {row['deter']}) | "
            f"{row['imagination_steps_per_s']:.0f} imagined steps/s"
        )
    if "small" in rows and "paper" in rows:
        ratio = rows["small"]["updates_per_s"] / rows["paper"]["updates_per_s"]
        print(f"ratio: the small preset updates {ratio:.1f}x faster than the paper preset on {args.device}")
        rows["small_vs_paper_updates_ratio"] = ratio
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(out.read_text()) if out.exists() else {}
    existing[args.device] = {"machine": platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__, **rows}
    out.write_text(json.dumps(existing, indent=1))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
