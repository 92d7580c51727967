"""Episode replay buffer with DreamSmooth rewards and sequence sampling (REFERENCE.md §5.5, §5.6)."""

from __future__ import annotations

import datetime
import logging
import math
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from compilerdream.compiler.fileio import atomic_open

__all__ = ["Replay", "dreamsmooth", "episode_steps"]

log = logging.getLogger(__name__)

Episode = dict[str, np.ndarray]
_FILENAME = re.compile(r"^(\d{8}T\d{6})-([0-9a-f]{32})-(\d+)\.npz$")


def dreamsmooth(reward: np.ndarray, alpha: float) -> np.ndarray:
    """Causal EMA of an episode's rewards (DreamSmooth): r̃_0 = 0, r̃_t = α·r̃_{t−1} + (1−α)·r_t.

    Entry 0 is the reset step, whose reward is not a real one. α = 0 returns the rewards unchanged
    (with entry 0 set to 0). Returns float32.
    """
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"dreamsmooth alpha must be in [0, 1), got {alpha}")
    raw = np.asarray(reward, dtype=np.float64)
    smoothed = np.zeros_like(raw)
    for t in range(1, len(raw)):
        smoothed[t] = alpha * smoothed[t - 1] + (1.0 - alpha) * raw[t]
    return smoothed.astype(np.float32)


def episode_steps(episode: Mapping[str, np.ndarray]) -> int:
    """Number of environment steps of an episode: entries − 1 (entry 0 is the reset)."""
    return len(next(iter(episode.values()))) - 1


def _as_episode(episode: Mapping[str, Any]) -> Episode:
    """Dict of numpy arrays with one common, non-empty leading time axis."""
    arrays = {key: np.asarray(value) for key, value in episode.items()}
    if "reward" not in arrays:
        raise ValueError(f"An episode needs a 'reward' array; got keys {sorted(arrays)}")
    lengths = {key: (value.shape[0] if value.ndim else None) for key, value in arrays.items()}
    if len(set(lengths.values())) != 1 or None in lengths.values() or lengths["reward"] == 0:
        raise ValueError(f"Episode arrays must share a non-empty leading time axis; lengths {lengths}")
    objects = [key for key, value in arrays.items() if value.dtype == object]
    if objects:
        raise ValueError(f"Episode arrays must not have dtype object (not reloadable): {objects}")
    return arrays


def _has_error(value: Any) -> bool:
    """Whether an episode's `error` entry reports an error (None, '', False, all-False: no)."""
    if value is None:
        return False
    array = np.asarray(value)
    if array.dtype.kind in "US":
        return any(len(item) > 0 for item in array.flat)
    return bool(np.any(array))


def _with_is_first(episode: Episode) -> Episode:
    if "is_first" not in episode:
        is_first = np.zeros(len(episode["reward"]), dtype=bool)
        is_first[0] = True
        episode = {**episode, "is_first": is_first}
    return episode


def _slice(sequence: Episode, start: int, stop: int | None = None) -> Episode:
    return {key: value[start:stop] for key, value in sequence.items()}


def _save_episode(directory: Path, episode: Episode) -> Path:
    """np.savez_compressed to a temp file in `directory`, then os.replace to the final name."""
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    path = directory / f"{stamp}-{uuid.uuid4().hex}-{episode_steps(episode)}.npz"
    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, **episode)
    return path


def _steps_from_name(path: Path) -> int | None:
    match = _FILENAME.match(path.name)
    return int(match.group(3)) if match else None


def _load_episode(path: Path) -> Episode:
    with np.load(path, allow_pickle=False) as data:
        return _as_episode({key: data[key] for key in data.files})


class Replay:
    """Complete episodes kept in memory (FIFO up to `capacity` steps) and saved one .npz each.

    An episode is a dict of arrays with a leading time axis; entry 0 is the reset (zero action,
    reward 0), so an episode of N entries has N − 1 steps. Episodes are filtered on insertion
    (errors, non-finite rewards, |return| > max_return_limit, max |reward| > max_reward_limit,
    fewer than `minlen` steps), each filter counted in `stats()`. Evicted episodes stay on disk. Accepted episodes keep their raw
    rewards under `reward_raw` and DreamSmooth-ed rewards (α = `dreamsmooth`) under `reward`.

    `sample(batch, length)` returns (batch, length, ...) arrays. Row b of successive calls is one
    continuous stream of episode pieces: a piece cut at the end of a row continues in row b of the
    next call, and `is_first` is True exactly where a new piece starts, so a learner may carry its
    recurrent state from one batch to the next.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None,
        capacity: int = 2_000_000,
        minlen: int = 1,
        maxlen: int = 45,
        prioritize_ends: bool = True,
        dreamsmooth: float = 0.0,
        max_return_limit: float = math.inf,
        max_reward_limit: float = math.inf,
        seed: int = 0,
    ) -> None:
        if minlen < 1 or maxlen < minlen:
            raise ValueError(f"Replay needs 1 <= minlen <= maxlen, got minlen={minlen} maxlen={maxlen}")
        if not 0.0 <= dreamsmooth < 1.0:
            raise ValueError(f"replay.dreamsmooth must be in [0, 1), got {dreamsmooth}")
        self.directory = Path(directory) if directory is not None else None
        self.capacity = int(capacity)
        self.minlen = int(minlen)
        self.maxlen = int(maxlen)
        self.prioritize_ends = bool(prioritize_ends)
        self.dreamsmooth = float(dreamsmooth)
        self.max_return_limit = float(max_return_limit)
        self.max_reward_limit = float(max_reward_limit)
        self._rng = np.random.default_rng(seed)
        self._episodes: dict[str, Episode] = {}  # insertion order = age
        self._keys: list[str] = []  # same order, for uniform sampling by index
        self._num_steps = 0
        self._streams: list[Episode | None] = []  # per-row leftover piece
        self._stream_shape: tuple[int, int] | None = None
        self._counts = dict.fromkeys(
            ("total_steps", "total_episodes", "loaded_steps", "loaded_episodes", "filtered_return",
             "filtered_reward", "filtered_short", "errored", "evicted_episodes", "load_errors"),
            0,
        )  # fmt: skip
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._load()

    @classmethod
    def from_config(
        cls, directory: str | os.PathLike[str] | None, config: Mapping[str, Any], **overrides: Any
    ) -> Replay:
        """Build from a flat config (`replay.*`, `max_return_limit`, `max_reward_limit`, `seed`)."""
        kwargs: dict[str, Any] = {
            "capacity": config["replay.capacity"],
            "minlen": config["replay.minlen"],
            "maxlen": config["replay.maxlen"],
            "prioritize_ends": config["replay.prioritize_ends"],
            "dreamsmooth": config["replay.dreamsmooth"],
            "max_return_limit": config["max_return_limit"],
            "max_reward_limit": config["max_reward_limit"],
            "seed": config["seed"],
        }
        kwargs.update(overrides)
        return cls(directory, **kwargs)

    # ------------------------------------------------------------------------------------------
    # Contents

    @property
    def num_steps(self) -> int:
        """Environment steps held in memory (entries − 1 per episode)."""
        return self._num_steps

    @property
    def num_episodes(self) -> int:
        return len(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def episodes(self) -> Iterator[Episode]:
        """The stored episodes, oldest first (arrays are shared; do not modify them)."""
        return iter(self._episodes.values())

    def stats(self) -> dict[str, int]:
        """Counters: in-memory sizes, totals including earlier runs' files, and every filter."""
        return {"num_steps": self._num_steps, "num_episodes": len(self._keys), **self._counts}

    # ------------------------------------------------------------------------------------------
    # Insertion

    def _rejection(self, episode: Episode) -> tuple[str, str] | None:
        """(counter, reason) if the episode must be dropped, else None."""
        raw = episode.get("reward_raw", episode["reward"]).astype(np.float64)
        if not np.all(np.isfinite(raw)):
            return "errored", "episode has a non-finite reward"
        steps = len(raw) - 1
        if abs(raw[1:].sum()) > self.max_return_limit:
            return "filtered_return", f"|return| {abs(raw[1:].sum()):.4g} > max_return_limit {self.max_return_limit}"
        if steps > 0 and np.abs(raw[1:]).max() > self.max_reward_limit:
            return (
                "filtered_reward",
                f"max |reward| {np.abs(raw[1:]).max():.4g} > max_reward_limit {self.max_reward_limit}",
            )
        if steps < self.minlen:
            return "filtered_short", f"{steps} steps < minlen {self.minlen}"
        return None

    def add_episode(self, episode: Mapping[str, Any]) -> bool:
        """Filter, smooth, store and save one complete episode; True if it was accepted."""
        if _has_error(episode.get("error")):
            self._counts["errored"] += 1
            log.warning("Replay dropped an episode that carries an error: %r", episode["error"])
            return False
        arrays = _as_episode({key: value for key, value in episode.items() if key != "error"})
        rejection = self._rejection(arrays)
        if rejection is not None:
            counter, reason = rejection
            self._counts[counter] += 1
            (log.warning if counter == "errored" else log.info)("Replay dropped an episode: %s", reason)
            return False
        raw = arrays.get("reward_raw", arrays["reward"]).astype(np.float32)
        arrays["reward_raw"] = raw
        arrays["reward"] = dreamsmooth(raw, self.dreamsmooth)
        arrays = _with_is_first(arrays)
        key = _save_episode(self.directory, arrays).stem if self.directory is not None else uuid.uuid4().hex
        steps = episode_steps(arrays)
        self._counts["total_steps"] += steps
        self._counts["total_episodes"] += 1
        self._insert(key, arrays)
        return True

    def _insert(self, key: str, episode: Episode) -> None:
        self._episodes[key] = episode
        self._keys.append(key)
        self._num_steps += episode_steps(episode)
        while self._num_steps > self.capacity and len(self._keys) > 1:
            oldest = self._keys.pop(0)
            self._num_steps -= episode_steps(self._episodes.pop(oldest))
            self._counts["evicted_episodes"] += 1

    def _load(self) -> None:
        """Reload the most recent saved episodes up to `capacity` steps; count all saved steps."""
        assert self.directory is not None
        files = sorted(self.directory.glob("*.npz"))
        lengths = {path: _steps_from_name(path) for path in files}
        chosen: list[tuple[Path, Episode | None]] = []
        budget = 0
        for path in reversed(files):  # newest first
            steps = lengths[path]
            episode = None
            if steps is None or budget < self.capacity:
                try:
                    episode = _load_episode(path)
                except Exception as e:  # noqa: BLE001 - truncated archives raise assorted errors
                    log.warning("Replay cannot load %s: %s", path, e)
                    self._counts["load_errors"] += 1
                    continue
                steps = episode_steps(episode)
            self._counts["total_steps"] += steps
            self._counts["total_episodes"] += 1
            if episode is not None and budget < self.capacity:
                budget += steps
                chosen.append((path, episode))
        for path, episode in reversed(chosen):  # oldest first, so FIFO eviction stays by age
            assert episode is not None
            self._insert(path.stem, _with_is_first(episode))
        self._counts["loaded_steps"] = self._num_steps
        self._counts["loaded_episodes"] = len(self._keys)

    # ------------------------------------------------------------------------------------------
    # Sampling

    def _sample_piece(self) -> Episode:
        """One sequence: uniform episode, start index by the prioritize-ends rule (§5.5)."""
        episode = self._episodes[self._keys[int(self._rng.integers(len(self._keys)))]]
        total = len(episode["reward"])
        length = min(total, self.maxlen)
        length -= int(self._rng.integers(self.minlen))
        length = min(total, max(self.minlen, length))
        upper = total - length + 1
        if self.prioritize_ends:
            upper += self.minlen
        start = min(int(self._rng.integers(upper)), total - length)
        piece = _slice(episode, start, start + length)
        is_first = np.array(piece["is_first"], dtype=bool)
        is_first[0] = True
        piece["is_first"] = is_first
        return piece

    def _fill_row(self, row: int, length: int) -> Episode:
        parts: list[Episode] = []
        needed = length
        while needed > 0:
            piece = self._streams[row]
            if piece is None:
                piece = self._sample_piece()
            take = min(needed, len(piece["reward"]))
            parts.append(_slice(piece, 0, take))
            self._streams[row] = _slice(piece, take) if take < len(piece["reward"]) else None
            needed -= take
        keys = parts[0].keys()
        if any(part.keys() != keys for part in parts):
            raise ValueError(f"Replay episodes have different keys: {[sorted(p) for p in parts]}")
        return {key: np.concatenate([part[key] for part in parts]) for key in keys}

    def sample(self, batch: int, length: int) -> dict[str, np.ndarray]:
        """A batch of fixed-length chunks, arrays shaped (batch, length, ...)."""
        if not self._keys:
            raise RuntimeError("Replay.sample() called on an empty replay buffer; add episodes first")
        if batch < 1 or length < 1:
            raise ValueError(f"Replay.sample needs batch >= 1 and length >= 1, got {batch}, {length}")
        if self._stream_shape != (batch, length):  # new shape: start fresh streams
            self._streams = [None] * batch
            self._stream_shape = (batch, length)
        rows = [self._fill_row(row, length) for row in range(batch)]
        return {key: np.stack([row[key] for row in rows]) for key in rows[0]}  # (B, T, ...)

    def dataset(self, batch: int, length: int) -> Iterator[dict[str, np.ndarray]]:
        """Endless iterator of `sample(batch, length)`."""
        while True:
            yield self.sample(batch, length)
