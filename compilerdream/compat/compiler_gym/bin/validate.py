"""Validate CompilerEnvState CSV files: `python -m compiler_gym.bin.validate --env=llvm-ic-v0 results.csv` (or < results.csv).

Each state is replayed: the module must verify and the replay must reproduce the
recorded reward. One line per state, then a summary; the exit status is 1 when any failed.
"""

from __future__ import annotations

import sys

from absl import app, flags

from ..util.flags import FLAGS

flags.DEFINE_boolean("inorder", True, "Accepted for CompilerGym's command line; states are always validated in order.")
flags.DEFINE_boolean("debug_force_valid", False, "Report every state as valid (for debugging).")


def main(argv) -> int:
    import compiler_gym
    from compiler_gym.compiler_env_state import CompilerEnvStateReader

    paths = argv[1:]
    try:
        states = list(CompilerEnvStateReader.read_paths(paths)) if paths else list(CompilerEnvStateReader(sys.stdin))
    except (OSError, ValueError) as exc:
        print(f"validate: {exc}", file=sys.stderr)
        return 1
    if not states:
        print(
            "validate: no states to validate (expected CSV rows benchmark,reward,walltime,commandline)", file=sys.stderr
        )
        return 1
    failed = 0
    rewards = []
    try:
        env = compiler_gym.make(FLAGS.env, benchmark=states[0].benchmark)
    except LookupError as exc:
        print(f"validate: --env={FLAGS.env}: {exc}", file=sys.stderr)
        return 1
    try:
        for state in states:
            result = env.validate(state)
            ok = result.okay() or FLAGS.debug_force_valid
            failed += 0 if ok else 1
            if ok and result.actual_reward is not None:
                rewards.append(result.actual_reward)
            print(result)
            if not ok:
                for error in result.errors:
                    print(f"    {error.type}")
    finally:
        env.close()
    print(f"Number of validated results: {len(states) - failed} of {len(states)}")
    if rewards:
        print(f"Mean reward: {sum(rewards) / len(rewards):.4f}")
    return 1 if failed else 0


if __name__ == "__main__":
    app.run(main)
