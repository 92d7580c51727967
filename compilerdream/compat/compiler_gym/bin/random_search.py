"""Random search on one benchmark: `python -m compiler_gym.bin.random_search --env=llvm-ic-v0 --benchmark=cbench-v1/crc32 --runtime=60`.

Writes progress.csv, best_actions.txt, best_commandline.txt and random_search.json into
--output_dir (default ./random_search/<benchmark name>) and prints the best reward.
--max_steps and --seed (ours) make a search reproducible.
"""

from __future__ import annotations

import sys
from pathlib import Path

from absl import app, flags

from ..util.flags import FLAGS, env_from_flags

flags.DEFINE_float("runtime", None, "Seconds to search (default: 600 when --max_steps is not given).")
flags.DEFINE_integer("max_steps", None, "Stop after this many steps (all episodes together).")
flags.DEFINE_integer(
    "patience", 0, "Steps without improvement before an episode is abandoned (0: the number of actions)."
)
flags.DEFINE_integer("nproc", 1, "Accepted for CompilerGym's command line; the search runs in one process.")
flags.DEFINE_integer("seed", None, "Seed of the random actions.")
flags.DEFINE_string("output_dir", None, "Where to write the results.")


def main(argv) -> int:
    if len(argv) > 1:
        print(f"random_search: unexpected arguments {' '.join(argv[1:])}", file=sys.stderr)
        return 2
    from compilerdream.compiler.errors import CompilerDreamError

    from ..random_search import random_search

    runtime = FLAGS.runtime if FLAGS.runtime is not None or FLAGS.max_steps is not None else 600.0
    try:
        probe = env_from_flags()
        name = probe.benchmark.name
        probe.close()
        outdir = Path(FLAGS.output_dir) if FLAGS.output_dir else Path("random_search") / name
        env = random_search(
            env_from_flags,
            outdir=outdir,
            total_runtime=runtime,
            patience=FLAGS.patience,
            max_steps=FLAGS.max_steps,
            seed=FLAGS.seed,
        )
    except (CompilerDreamError, LookupError, OSError, ValueError) as exc:
        print(f"random_search: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"Best reward: {env.episode_reward:.4f} ({len(env.actions)} passes) on {env.benchmark.uri}")
        print(f"Command line: {env.commandline()}")
        print(f"Results written to {outdir}")
    finally:
        env.close()
    return 0


if __name__ == "__main__":
    app.run(main)
