"""Action-space wrappers of the LLVM flag space: a terminal action, and a subset of the flags."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..spaces import Commandline, CommandlineFlag
from .core import ActionWrapper, CompilerEnvWrapper

END_OF_EPISODE = CommandlineFlag(name="end-of-episode", flag="# end-of-episode", description="End the episode")


def _items(space) -> list[CommandlineFlag]:
    descriptions = getattr(space, "descriptions", [""] * space.n)
    return [CommandlineFlag(n, f, d) for n, f, d in zip(space.names, space.flags, descriptions)]


def _base_of(space) -> tuple[object, list[int | None]]:
    """The LLVM space a (possibly derived) space maps to, and each action's index there."""
    if isinstance(space, Commandline) and space.base is not None and space.base_indices is not None:
        return space.base, list(space.base_indices)
    return space, list(range(space.n))


class CommandlineWithTerminalAction(CompilerEnvWrapper):
    """Adds one action after the flags (`# end-of-episode`): taking it ends the episode (done=True).

    Actions before it in the same multistep() are applied; its step applies no pass.
    """

    def __init__(self, env, terminal: CommandlineFlag = END_OF_EPISODE):
        super().__init__(env)
        inner = env.action_space
        base, indices = _base_of(inner)
        self._action_space = Commandline(
            _items(inner) + [terminal],
            name=f"{type(self).__name__}<{inner.name}>",
            base=base,
            base_indices=indices + [None],
        )

    @property
    def action_space(self) -> Commandline:
        return self._action_space

    @action_space.setter
    def action_space(self, space) -> None:
        self._action_space = space

    def multistep(
        self, actions, observation_spaces=None, reward_spaces=None, observations=None, rewards=None, timeout=300
    ):
        actions = list(actions)
        terminal = self._action_space.n - 1
        ends = terminal in actions
        if ends:
            actions = actions[: actions.index(terminal)]
        observation, reward, done, info = self.env.multistep(
            actions,
            observation_spaces=observation_spaces if observation_spaces is not None else observations,
            reward_spaces=reward_spaces if reward_spaces is not None else rewards,
        )
        if ends and not done:
            done = True
            info["terminal_action"] = True
        return observation, reward, done, info

    def fork(self) -> CommandlineWithTerminalAction:
        terminal = self._action_space.items[-1]
        return CommandlineWithTerminalAction(self.env.fork(), terminal=terminal)


class ConstrainedCommandline(ActionWrapper):
    """Restricts the action space to `flags` (entries of `env.action_space.flags`); action i is flags[i]."""

    def __init__(self, env, flags: Iterable[str], name: str | None = None):
        super().__init__(env)
        self._flags: Sequence[str] = list(flags)
        if not self._flags:
            raise TypeError("ConstrainedCommandline: no flags given")
        inner = env.action_space
        known = list(inner.flags)
        unknown = [f for f in self._flags if f not in known]
        if unknown:
            raise LookupError(f"ConstrainedCommandline: flag(s) {', '.join(unknown)} not in action space {inner.name}")
        self._forward = [known.index(f) for f in self._flags]
        self._reverse = {v: i for i, v in enumerate(self._forward)}
        base, indices = _base_of(inner)
        items = _items(inner)
        self._action_space = Commandline(
            [items[a] for a in self._forward],
            name=f"{type(self).__name__}<{name or inner.name}, {len(self._flags)}>",
            base=base,
            base_indices=[indices[a] for a in self._forward],
        )

    @property
    def action_space(self) -> Commandline:
        return self._action_space

    @action_space.setter
    def action_space(self, space) -> None:
        self._action_space = space

    def action(self, action):
        if isinstance(action, Iterable) and not isinstance(action, str):
            return [self._forward[int(a)] for a in action]
        return self._forward[int(action)]

    def reverse_action(self, action):
        if isinstance(action, Iterable) and not isinstance(action, str):
            return [self._reverse[int(a)] for a in action]
        return self._reverse[int(action)]

    @property
    def actions(self) -> list[int]:
        """The episode's actions in this (constrained) space."""
        return self.reverse_action(self.env.actions)

    def commandline_to_actions(self, commandline: str) -> list[int]:
        return self.reverse_action(self.env.commandline_to_actions(commandline))

    def fork(self) -> ConstrainedCommandline:
        return ConstrainedCommandline(self.env.fork(), flags=self._flags, name=self._action_space.name)
