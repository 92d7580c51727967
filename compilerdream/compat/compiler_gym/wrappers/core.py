"""Wrapper bases with CompilerGym's behaviour: everything forwards to the wrapped environment.

CompilerEnvWrapper forwards the CompilerGym API (step/multistep/reset/fork, spaces,
benchmark, state, validate ...) and, for anything else, attribute reads. Subclasses
override what they change. Old gym API throughout: `step()` returns four values.
"""

from __future__ import annotations

import abc

from ..envs.llvm.llvm_env import CompilerEnv


def _forwarded(name: str, settable: bool = True) -> property:
    """The wrapped environment's attribute `name`. Settable ones must be forwarded explicitly:
    a plain assignment would land on the wrapper."""

    def get(self):
        return getattr(self.env, name)

    def put(self, value) -> None:
        setattr(self.env, name, value)

    return property(get, put if settable else None, doc=f"The wrapped environment's `{name}`.")


class CompilerEnvWrapper(CompilerEnv):
    """Wraps an environment (or another wrapper) to change part of its behaviour.

    step() is CompilerEnv's: it goes through multistep(), which subclasses override.
    """

    def __init__(self, env):
        if not isinstance(env, CompilerEnv):
            raise TypeError(f"{type(self).__name__} wraps a compiler_gym environment, not {type(env).__name__}")
        self.env = env

    # Anything not defined here (observation, reward, datasets, write_bitcode, ir, ...) is the wrapped env's.
    def __getattr__(self, name: str):
        if name == "env" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.env, name)

    @property
    def unwrapped(self):
        return self.env.unwrapped

    def close(self) -> None:
        self.env.close()

    def reset(self, *args, **kwargs):
        return self.env.reset(*args, **kwargs)

    def fork(self):
        return type(self)(env=self.env.fork())

    def multistep(
        self, actions, observation_spaces=None, reward_spaces=None, observations=None, rewards=None, timeout=300
    ):
        return self.env.multistep(
            list(actions),
            observation_spaces=observation_spaces if observation_spaces is not None else observations,
            reward_spaces=reward_spaces if reward_spaces is not None else rewards,
        )

    def render(self, mode: str = "human"):
        return self.env.render(mode)

    observation_space = _forwarded("observation_space")
    reward_space = _forwarded("reward_space")
    action_space = _forwarded("action_space")
    benchmark = _forwarded("benchmark")
    episode_reward = _forwarded("episode_reward")
    actions = _forwarded("actions", settable=False)
    state = _forwarded("state", settable=False)

    def commandline(self) -> str:
        return self.env.commandline()

    def commandline_to_actions(self, commandline: str) -> list:
        return self.env.commandline_to_actions(commandline)

    def apply(self, state) -> None:
        self.env.apply(state)

    def validate(self, state=None):
        return self.env.validate(state)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}<{self.env!r}>"


class ActionWrapper(CompilerEnvWrapper):
    """Translates actions of a new space into the wrapped one's: implement `action()` (and `reverse_action()`)."""

    def multistep(
        self, actions, observation_spaces=None, reward_spaces=None, observations=None, rewards=None, timeout=300
    ):
        return super().multistep(
            [self.action(a) for a in actions], observation_spaces, reward_spaces, observations, rewards
        )

    def action(self, action):
        raise NotImplementedError(f"{type(self).__name__}.action(action) must translate an action to the wrapped space")

    def reverse_action(self, action):
        raise NotImplementedError(f"{type(self).__name__}.reverse_action(action) must translate an action back")


class ObservationWrapper(CompilerEnvWrapper, abc.ABC):
    """Transforms observations (at reset and every step): implement `convert_observation()`."""

    def reset(self, *args, **kwargs):
        return self.convert_observation(self.env.reset(*args, **kwargs))

    def multistep(
        self, actions, observation_spaces=None, reward_spaces=None, observations=None, rewards=None, timeout=300
    ):
        observation, reward, done, info = super().multistep(
            actions, observation_spaces, reward_spaces, observations, rewards
        )
        return self.convert_observation(observation), reward, done, info

    @abc.abstractmethod
    def convert_observation(self, observation):
        """The observation in the new space."""


class RewardWrapper(CompilerEnvWrapper, abc.ABC):
    """Transforms rewards: implement `convert_reward()`; the episode reward sums the converted rewards."""

    def multistep(
        self, actions, observation_spaces=None, reward_spaces=None, observations=None, rewards=None, timeout=300
    ):
        observation, reward, done, info = super().multistep(
            actions, observation_spaces, reward_spaces, observations, rewards
        )
        if reward is not None and not isinstance(reward, list) and self.env.episode_reward is not None:
            converted = self.convert_reward(reward)
            self.unwrapped.episode_reward += converted - reward
            reward = converted
        return observation, reward, done, info

    @abc.abstractmethod
    def convert_reward(self, reward):
        """The reward in the new space."""
