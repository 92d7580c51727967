"""A fixed policy for the instruction-count leaderboard, written as CompilerGym's leaderboard docs write one.

    python leaderboard_fixed_policy.py --n=2 --leaderboard_results=out/results.csv

`--cheat` claims one unit of reward more than the passes give, which validation (on by default) catches.
"""

from absl import flags
from compiler_gym.leaderboard.llvm_instcount import eval_llvm_instcount_policy

flags.DEFINE_boolean("cheat", False, "Claim one more unit of reward than the passes give.")
FLAGS = flags.FLAGS


def policy(env) -> None:
    env.multistep([env.action_space.flags.index("-mem2reg"), env.action_space.flags.index("-gvn")])
    if FLAGS.cheat:
        env.episode_reward += 1.0


if __name__ == "__main__":
    eval_llvm_instcount_policy(policy)
