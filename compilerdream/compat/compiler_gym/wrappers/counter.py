"""Counter (how often each operation was called) and ForkOnStep (a fork before every step, for undo)."""

from __future__ import annotations

from .core import CompilerEnvWrapper


class Counter(CompilerEnvWrapper):
    """Counts calls to close, reset, step and fork in `counters` (not reset by reset())."""

    def __init__(self, env):
        super().__init__(env)
        self.counters: dict[str, int] = {"close": 0, "reset": 0, "step": 0, "fork": 0}

    def close(self) -> None:
        self.counters["close"] += 1
        self.env.close()

    def reset(self, *args, **kwargs):
        self.counters["reset"] += 1
        return self.env.reset(*args, **kwargs)

    def step(self, *args, **kwargs):
        self.counters["step"] += 1
        return self.env.step(*args, **kwargs)

    def fork(self):
        self.counters["fork"] += 1
        return self.env.fork()


class ForkOnStep(CompilerEnvWrapper):
    """Forks the environment before every step; `undo()` goes back one step. `stack` holds the forks, oldest first."""

    def __init__(self, env):
        super().__init__(env)
        self.stack: list = []

    def undo(self):
        """Drop the last step (the environment becomes the fork taken before it); returns the environment."""
        if not self.stack:
            return None
        self.env.close()
        self.env = self.stack.pop()
        return self.env

    def _drop_stack(self) -> None:
        for env in self.stack:
            env.close()
        self.stack = []

    def close(self) -> None:
        self._drop_stack()
        self.env.close()

    def reset(self, *args, **kwargs):
        observation = self.env.reset(*args, **kwargs)
        self._drop_stack()
        return observation

    def step(self, *args, **kwargs):
        self.stack.append(self.env.fork())
        return self.env.step(*args, **kwargs)

    def fork(self):
        raise NotImplementedError("ForkOnStep cannot be forked: fork the environment it wraps")
