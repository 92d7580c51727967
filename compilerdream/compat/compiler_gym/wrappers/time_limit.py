"""TimeLimit: end episodes after a number of steps."""

from __future__ import annotations

from .core import CompilerEnvWrapper


class TimeLimit(CompilerEnvWrapper):
    """Sets done=True once `max_episode_steps` actions were taken since reset (None: no limit).

    `info["TimeLimit.truncated"]` is True when the limit, not the environment, ended the episode.
    Every action of a multistep() counts.
    """

    def __init__(self, env, max_episode_steps: int | None = None):
        super().__init__(env)
        if max_episode_steps is None and getattr(getattr(env, "spec", None), "max_episode_steps", None) is not None:
            max_episode_steps = env.spec.max_episode_steps
        if max_episode_steps is not None and max_episode_steps <= 0:
            raise ValueError(f"TimeLimit: max_episode_steps must be positive, got {max_episode_steps}")
        self._max_episode_steps = max_episode_steps
        self._elapsed_steps: int | None = None

    def multistep(
        self, actions, observation_spaces=None, reward_spaces=None, observations=None, rewards=None, timeout=300
    ):
        if self._elapsed_steps is None:
            raise RuntimeError("TimeLimit: call reset() before step()")
        actions = list(actions)
        observation, reward, done, info = super().multistep(
            actions, observation_spaces, reward_spaces, observations, rewards
        )
        self._elapsed_steps += len(actions)
        if self._max_episode_steps is not None and self._elapsed_steps >= self._max_episode_steps:
            info["TimeLimit.truncated"] = not done
            done = True
        return observation, reward, done, info

    def reset(self, *args, **kwargs):
        self._elapsed_steps = 0
        return self.env.reset(*args, **kwargs)

    def fork(self) -> TimeLimit:
        other = TimeLimit(self.env.fork(), max_episode_steps=self._max_episode_steps)
        other._elapsed_steps = self._elapsed_steps
        return other
