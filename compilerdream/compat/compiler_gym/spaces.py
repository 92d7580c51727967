"""CompilerGym's space classes: the LLVM flag action space, Commandline/CommandlineFlag, observation specs, Reward.

The LLVM action space is CompilerGym's 124 flags in CompilerGym's order. What differs:
each flag runs its LLVM 19 new-pass-manager pipeline, so `to_string()` writes an
`opt -passes='...'` command (LLVM 19's opt has no `-mem2reg`-style flags);
`from_string()` reads that form and CompilerGym's `opt -flag ...` form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from compilerdream.compiler.errors import UnknownNameError
from compilerdream.compiler.spaces import (
    REWARD_SPACES,
    ActionSpace,
    RewardSpec,
    action_space,
    observation_space_spec,
    pass_flags,
)


@dataclass(frozen=True)
class CommandlineFlag:
    """One action of a Commandline space."""

    name: str
    flag: str
    description: str = ""


class _FlagIndex:
    """CompilerGym's `space["-mem2reg"]` (the action index of a flag) and `space.wrapped`."""

    name: str
    flags: Sequence[str]

    @property
    def wrapped(self):
        return self

    def __getitem__(self, flag: str) -> int:
        """The action index of a flag (CompilerGym: `space["-mem2reg"]`)."""
        try:
            return self.flags.index(flag)
        except ValueError:
            raise UnknownNameError(f"unknown flag '{flag}' in action space {self.name}") from None


class Commandline(_FlagIndex, spaces.Discrete):
    """A discrete space whose actions are command-line flags (`flags`, `names`, `descriptions`).

    Spaces made by wrappers over the LLVM space keep a map to it (`base`, `base_indices`),
    so `to_string`/`from_string` write and read the same `opt` commands as the environment.
    """

    def __init__(
        self,
        items: Sequence[CommandlineFlag],
        name: str,
        base: Commandline | ActionSpace | None = None,
        base_indices: Sequence[int | None] | None = None,
        seed: int | None = None,
    ):
        if not items:
            raise ValueError(f"Commandline space {name}: no flags given")
        super().__init__(len(items), seed=seed)
        self.n = len(items)  # a Python int, as gym's Discrete had (gymnasium stores numpy's)
        self.name = name
        self.items = tuple(items)
        self.base = base
        self.base_indices = tuple(base_indices) if base_indices is not None else None

    @property
    def flags(self) -> list[str]:
        return [item.flag for item in self.items]

    @property
    def names(self) -> list[str]:
        return [item.name for item in self.items]

    @property
    def descriptions(self) -> list[str]:
        return [item.description for item in self.items]

    def _tied(self) -> tuple[Commandline | ActionSpace, tuple[int | None, ...]]:
        """The LLVM space this one maps to, and each action's index there."""
        if self.base is None or self.base_indices is None:
            raise TypeError(f"action space {self.name} is not tied to the LLVM action space")
        return self.base, self.base_indices

    def _to_base(self, actions) -> list[int]:
        _, indices = self._tied()
        out = []
        for a in actions:
            b = indices[int(a)]
            if b is not None:  # None: an action with no pass (the terminal action)
                out.append(b)
        return out

    def to_string(self, actions) -> str:
        return self._tied()[0].to_string(self._to_base(actions))

    def from_string(self, commandline: str) -> list[int]:
        base, indices = self._tied()
        back = {b: i for i, b in enumerate(indices) if b is not None}
        out = []
        for b in base.from_string(commandline):
            if b not in back:
                raise UnknownNameError(f"flag '{base.flags[b]}' of the command line is not in action space {self.name}")
            out.append(back[b])
        return out

    def __repr__(self) -> str:
        return f"Commandline({self.name}, n={self.n})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Commandline) and (self.name, self.items) == (other.name, other.items)

    def __hash__(self) -> int:
        return hash((self.name, self.items))


class LlvmActionSpace(_FlagIndex, ActionSpace):
    """The environment's action space: our ActionSpace plus CompilerGym's extras (`descriptions`, `space[flag]`)."""

    def __init__(self, name: str = "NoLimit", seed: int | None = None):
        native = action_space(name)
        super().__init__(name, native.entries, seed=seed)
        self.n = len(self.entries)  # a Python int, as gym's Discrete had (gymnasium stores numpy's)

    @property
    def descriptions(self) -> list[str]:
        notes = pass_flags()
        return [" ; ".join(notes[i].pipeline for i in entry) for entry in self.entries]


#: CompilerGym's name of the LLVM action space -> ours.
ACTION_SPACE_ALIASES = {"PassesAll": "NoLimit"}


def llvm_action_space(name: str | None) -> LlvmActionSpace:
    """A fresh action space per environment (its RNG is its own): `PassesAll` (CompilerGym's name) or one of ours."""
    key = ACTION_SPACE_ALIASES.get(name or "PassesAll", name or "NoLimit")
    return LlvmActionSpace(key)


_DETERMINISTIC_EXCEPT = ("ObjectTextSizeBytes", "ObjectTextSizeO0", "ObjectTextSizeO3", "ObjectTextSizeOz")


@dataclass(frozen=True)
class ObservationSpaceSpec:
    """What CompilerGym says about an observation space: its id, gym space and properties."""

    id: str
    space: Any
    deterministic: bool = True
    platform_dependent: bool = False

    @property
    def name(self) -> str:
        return self.id

    @property
    def default_value(self):
        if isinstance(self.space, spaces.Box):
            return np.zeros(self.space.shape, dtype=self.space.dtype)
        return None

    def __str__(self) -> str:
        return self.id


def observation_spec(name: str) -> ObservationSpaceSpec:
    return ObservationSpaceSpec(
        id=name,
        space=observation_space_spec(name),
        platform_dependent=name in _DETERMINISTIC_EXCEPT,
    )


class Reward:
    """A reward space by name (CompilerGym's `Reward`): `name`, `id`, and the cost it measures."""

    def __init__(self, spec: RewardSpec):
        self.spec = spec
        self.name = spec.name
        self.id = spec.name
        self.cost = spec.cost
        self.deterministic = spec.name not in ("ObjectTextSizeBytes",) and not spec.name.startswith("ObjectTextSize")
        self.platform_dependent = spec.name.startswith("ObjectTextSize")
        self.default_negates_returns = True
        self.success_threshold = 1.0 if spec.baseline in ("O3", "Oz") else None
        self.reward_range = (-np.inf, np.inf)

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            return other == self.name
        return isinstance(other, Reward) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return self.name

    __str__ = __repr__


def reward_names() -> list[str]:
    return list(REWARD_SPACES)


def space_name(space) -> str | None:
    """The name of an observation or reward space given as a name, a spec or a Reward (None stays None)."""
    if space is None or isinstance(space, str):
        return space
    for attribute in ("id", "name"):
        value = getattr(space, attribute, None)
        if isinstance(value, str):
            return value
    raise TypeError(f"expected a space name or spec, got {type(space).__name__}: {space!r}")


__all__ = [
    "Commandline",
    "CommandlineFlag",
    "LlvmActionSpace",
    "ObservationSpaceSpec",
    "Reward",
    "llvm_action_space",
    "observation_spec",
    "space_name",
]
