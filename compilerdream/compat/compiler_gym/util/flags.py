"""absl flags shared by `python -m compiler_gym.bin.*` (CompilerGym's env flags: --env, --benchmark, ...)."""

from __future__ import annotations

from absl import flags

flags.DEFINE_string("env", "llvm-ic-v0", "The environment id (llvm-v0, llvm-ic-v0, ...).")
flags.DEFINE_string("benchmark", None, "The benchmark URI or file to use.")
flags.DEFINE_string("observation", None, "The observation space to use.")
flags.DEFINE_string("reward", None, "The reward space to use.")

FLAGS = flags.FLAGS


def env_from_flags(benchmark=None):
    """An environment made from --env, --benchmark, --observation, --reward."""
    import compiler_gym

    kwargs = {}
    if FLAGS.observation:
        kwargs["observation_space"] = FLAGS.observation
    if FLAGS.reward:
        kwargs["reward_space"] = FLAGS.reward
    return compiler_gym.make(FLAGS.env, benchmark=benchmark or FLAGS.benchmark, **kwargs)
