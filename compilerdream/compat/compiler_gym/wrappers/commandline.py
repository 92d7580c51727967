"""Action-space wrappers of the LLVM flag space: a terminal action, and a subset of the flags."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..spaces import Commandline, CommandlineFlag
from .core import ActionWrapper, CompilerEnvWrapper

END_OF_EPISODE = CommandlineFlag(name="end-of-episode", flag="# end-of-episode", description="End the episode")


def _derived_space(inner, picks: Sequence[int], name: str, extra: CommandlineFlag | None = None) -> Commandline:
    """A Commandline space of the actions `picks` of `inner` (then `extra`, an action with no pass),
    tied to the LLVM space `inner` maps to, so its strings are the environment's."""
    descriptions = getattr(inner, "descriptions", [""] * inner.n)
    items = [CommandlineFlag(n, f, d) for n, f, d in zip(inner.names, inner.flags, descriptions)]
    if isinstance(inner, Commandline) and inner.base is not None and inner.base_indices is not None:
        base, indices = inner.base, list(inner.base_indices)
    else:
        base, indices = inner, list(range(inner.n))
    return Commandline(
        [items[a] for a in picks] + ([extra] if extra is not None else []),
        name=name,
        base=base,
        base_indices=[indices[a] for a in picks] + ([None] if extra is not None else []),
    )


class _OwnActionSpace:
    """A wrapper whose action space is its own (derived from the wrapped one's), not the wrapped environment's."""

    _action_space: Commandline

    @property
    def action_space(self) -> Commandline:
        return self._action_space

    @action_space.setter
    def action_space(self, space) -> None:
        self._action_space = space


class CommandlineWithTerminalAction(_OwnActionSpace, CompilerEnvWrapper):
    """Adds one action after the flags (`# end-of-episode`): taking it ends the episode (done=True).

    Actions before it in the same multistep() are applied; its step applies no pass.
    """

    def __init__(self, env, terminal: CommandlineFlag = END_OF_EPISODE):
        super().__init__(env)
        inner = env.action_space
        name = f"{type(self).__name__}<{inner.name}>"
        self._action_space = _derived_space(inner, range(inner.n), name, extra=terminal)

    def multistep(
        self, actions, observation_spaces=None, reward_spaces=None, observations=None, rewards=None, timeout=300
    ):
        actions = list(actions)
        terminal = self._action_space.n - 1
        ends = terminal in actions
        if ends:
            actions = actions[: actions.index(terminal)]
        observation, reward, done, info = super().multistep(
            actions, observation_spaces, reward_spaces, observations, rewards
        )
        if ends and not done:
            done = True
            info["terminal_action"] = True
        return observation, reward, done, info

    def fork(self) -> CommandlineWithTerminalAction:
        terminal = self._action_space.items[-1]
        return CommandlineWithTerminalAction(self.env.fork(), terminal=terminal)


class ConstrainedCommandline(_OwnActionSpace, ActionWrapper):
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
        name = f"{type(self).__name__}<{name or inner.name}, {len(self._flags)}>"
        self._action_space = _derived_space(inner, self._forward, name)

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
