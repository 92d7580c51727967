"""`compilerdream demo`: the README's main job on an embedded default.

1. Corpus: the offline default corpus (`data/default`), built here when missing (~6 min on
   2 cores, resumable); with `--quick`, or if it cannot be built, a quick subset of it
   (two Debian source packages + a few csmith programs, seconds).
2. Training: the agent with the `small` preset for a bounded time (tqdm progress).
3. Test: the trained agent's test table against -Oz and random search with the same
   number of compilations (one 45-step rollout = 45 compilations).
4. `compilerdream evaluate` of the trained agent (guided search included) with the
   baselines, as a report directory with plots.
5. `compilerdream optimize` on a sample C file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "examples" / "programs"


def banner(text: str) -> None:
    print("\n" + "=" * 78 + f"\n{text}\n" + "=" * 78, flush=True)


def corpus_ready(directory: Path) -> bool:
    return (directory / "metadata.json").exists() or (directory / "manifest.json").exists()


def prepare_corpus(data_root: Path, quick_name: str, jobs: int, quick: bool) -> str:
    """Name of the file dataset to train on: `default` (built if missing), else a quick subset."""
    from compilerdream.compiler.datasets import cli as datasets_cli

    full = data_root / "default"
    if corpus_ready(full):
        print(f"using the default corpus in {full}")
        return "default"
    if not quick:
        print(f"building the default corpus in {full} (about 6 minutes on 2 cores; --quick skips this)")
        if datasets_cli.main(["build-default", "--out", str(full), "--jobs", str(jobs)]) == 0 and corpus_ready(full):
            return "default"
        print("building the default corpus failed (messages above); falling back to a quick subset")
    target = data_root / quick_name
    if corpus_ready(target):
        print(f"using the quick corpus in {target} (build the full one with: compilerdream datasets build-default)")
        return quick_name
    print(f"building a quick subset of the default corpus in {target}")

    code = datasets_cli.main(["build-default", "--tiny", "--out", str(target), "--jobs", str(jobs)])
    if code != 0 or not corpus_ready(target):
        raise SystemExit(f"compilerdream demo: building the quick corpus failed (exit {code}); see the messages above")
    return quick_name


def train(logdir: Path, dataset: str, data_root: Path, minutes: float, seed: int, test_eps: int) -> dict:
    from compilerdream.config import load_configs
    from compilerdream.driver import run

    config = load_configs(["compilergym", "compilergym_dv3", "small"]).update(
        {
            "logdir": str(logdir),
            "task": f"compilergym_file_dataset_{dataset}",
            "data_root": str(data_root),
            "enable_test": True,
            "test_dataset": f"file_dataset_{dataset}",
            "test_eps": test_eps,
            "test_interval": 1000,  # test before training and at the end only
            "train_minutes": minutes,
            "seed": seed,
            "device": "auto",
        }
    )
    return run(config, ["compilerdream demo"])


def pretrained_rollouts(dataset: str, benchmarks: list[str], out_dir: Path) -> list:
    """The shipped agent's one greedy rollout on the test programs (its row of the test table); [] if none is shipped."""
    from compilerdream.compiler.search import Budget, run_search
    from compilerdream.pretrained import names
    from compilerdream.search import GuidedSearch, OneRollout, load_agent
    from compilerdream.task import TaskSettings

    if "default" not in names():
        print("(no pretrained agent in this installation: its row is left out)")
        return []
    agent, config = load_agent("default", "auto")
    settings = TaskSettings.from_config(config)
    policy = OneRollout(GuidedSearch(agent, settings, p_random=0.0, temperature=None, mode="eval"))
    policy.name = "pretrained agent (default)"
    return run_search(
        [policy], [(dataset, b) for b in benchmarks], Budget(compilations=45 + (settings.start != "o0")),
        action_space=settings.act_space, out_dir=out_dir, progress=True, start=settings.start,
    )  # fmt: skip


def test_benchmarks(logdir: Path) -> list[str]:
    results = json.loads((logdir / "test_results.json").read_text())["results"]
    return list(results)


def _positive_minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of minutes: '{text}'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"minutes must be positive, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="compilerdream demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--logdir", default="runs/demo", help="every output of the demo goes here")
    p.add_argument("--data-root", default=None, help="datasets folder (default: $COMPILERDREAM_DATA or ./data)")
    p.add_argument("--minutes", type=_positive_minutes, default=15.0, help="training time limit (minutes, > 0)")
    p.add_argument("--quick", action="store_true", help="train on a tiny corpus subset instead of the default corpus")
    p.add_argument("--search-compilations", type=int, default=300, help="budget per program in the evaluation")
    p.add_argument("--test-eps", type=int, default=12, help="test programs")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    from compilerdream.compiler.datasets import data_root as default_data_root

    data_root = Path(args.data_root or default_data_root()).absolute()
    logdir = Path(args.logdir).absolute()
    started = time.time()

    banner("1/5 corpus")
    dataset = prepare_corpus(data_root, "default-quick", args.jobs, args.quick)

    banner(f"2/5 training the agent (small preset, up to {args.minutes:g} minutes)")
    outcome = train(logdir / "agent", dataset, data_root, args.minutes, args.seed, args.test_eps)
    steps = outcome["counters"]["step"]

    banner("3/5 the trained agent against -Oz and random search with the same compilations (45 per program)")
    from compilerdream.compiler.search import Budget, make_policy, run_search, summary_table

    benchmarks = test_benchmarks(logdir / "agent")
    print((logdir / "agent" / "test_results.md").read_text())
    baseline = run_search(
        [make_policy("oz"), make_policy("random")],
        [(dataset, b) for b in benchmarks],
        Budget(compilations=45),
        out_dir=logdir / "baselines-45",
        budgets={"-Oz": Budget(compilations=1)},
        progress=True,
    )
    pretrained = pretrained_rollouts(dataset, benchmarks, logdir / "pretrained-45")
    print(summary_table(baseline + pretrained))
    agent_geo = outcome["test"].get("test_reduction_geomean", 0.0)
    print(
        f"\ntrained agent (one greedy rollout, 45 compilations): CompilerDream reduction geomean {agent_geo:.4f} "
        f"after {steps} training steps"
    )
    if pretrained:
        from compilerdream.compiler.metrics import geomean

        print(
            f"shipped pretrained agent (`--checkpoint default`, one greedy rollout): CompilerDream reduction geomean "
            f"{geomean(r.reduction for r in pretrained):.4f} on the same programs"
        )

    banner(
        f"4/5 compilerdream evaluate: guided search vs baselines, {args.search_compilations} compilations per program"
    )
    from compilerdream import evaluate

    report = logdir / "report"
    code = evaluate.main(
        [
            "--checkpoint",
            str(logdir / "agent"),
            "--benchmarks",
            *benchmarks,
            "--methods",
            "oz,o3,random,greedy,guided",
            "--search-compilations",
            str(args.search_compilations),
            "--out",
            str(report),
            "--validate",
        ]
    )
    if code == 0 and (report / "summary.md").exists():
        print(f"report: {report / 'summary.md'}; plots: {', '.join(str(p) for p in sorted(report.glob('*.png')))}")

    banner("5/5 compilerdream optimize on a sample C file")
    from compilerdream import optimize

    sample = SAMPLES / "qsort.c"
    optimize.main(
        [
            str(sample),
            "--checkpoint",
            str(logdir / "agent"),
            "--search-compilations",
            str(args.search_compilations),
            "-o",
            str(logdir / "qsort.opt.bc"),
            "--validate",
        ]
    )
    print(f"\ndemo finished in {(time.time() - started) / 60:.1f} minutes; everything is under {logdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
