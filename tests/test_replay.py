"""Tests of compilerdream/replay.py: filters, DreamSmooth, files, sampling (REFERENCE.md §5.5, §5.6)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from compilerdream.replay import Replay, dreamsmooth, episode_steps


def make_episode(rewards: list[float], num_actions: int = 3, tag: float = 0.0) -> dict[str, np.ndarray]:
    """Entry 0 is the reset (zero action, reward 0); `rewards` are the rewards of steps 1..N."""
    steps = len(rewards)
    action = np.zeros((steps + 1, num_actions), np.float32)
    action[np.arange(1, steps + 1), np.arange(steps) % num_actions] = 1.0
    is_first = np.zeros(steps + 1, bool)
    is_first[0] = True
    is_last = np.zeros(steps + 1, bool)
    is_last[-1] = True
    return {
        "autophase": np.full((steps + 1, 4), tag, np.float32) + np.arange(steps + 1, dtype=np.float32)[:, None],
        "action": action,
        "reward": np.array([0.0, *rewards], np.float32),
        "is_first": is_first,
        "is_last": is_last,
        "is_terminal": is_last.copy(),
    }


def test_dreamsmooth_hand_computed() -> None:
    np.testing.assert_allclose(dreamsmooth(np.array([0, 1, 0, 0]), 0.5), [0, 0.5, 0.25, 0.125])
    np.testing.assert_allclose(dreamsmooth(np.array([0, 2, 2]), 0.0), [0, 2, 2])
    np.testing.assert_allclose(dreamsmooth(np.array([5.0, 1.0]), 0.6), [0, 0.4])  # entry 0 is the reset
    assert dreamsmooth(np.array([0.0, 1.0]), 0.5).dtype == np.float32


def test_add_smooths_and_keeps_raw() -> None:
    replay = Replay(None, dreamsmooth=0.5)
    assert replay.add_episode(make_episode([1.0, 0.0, 0.0]))
    (stored,) = replay.episodes()
    np.testing.assert_allclose(stored["reward"], [0, 0.5, 0.25, 0.125])
    np.testing.assert_allclose(stored["reward_raw"], [0, 1, 0, 0])
    # Re-adding a stored episode smooths its raw rewards again, not the smoothed ones.
    assert replay.add_episode(stored)
    np.testing.assert_allclose(list(replay.episodes())[1]["reward"], [0, 0.5, 0.25, 0.125])


def test_filters_are_counted(caplog: pytest.LogCaptureFixture) -> None:
    replay = Replay(None, minlen=2, max_return_limit=5.0, max_reward_limit=3.0)
    with caplog.at_level(logging.INFO, logger="compilerdream.replay"):
        assert not replay.add_episode(make_episode([2.0, 2.0, 2.0]))  # |return| 6 > 5
        assert not replay.add_episode(make_episode([-2.0, -2.0, -2.0]))  # |return| 6 > 5
        assert not replay.add_episode(make_episode([3.5, -1.0]))  # max |r| 3.5 > 3
        assert not replay.add_episode(make_episode([1.0]))  # 1 step < minlen 2
        assert not replay.add_episode({**make_episode([1.0, 1.0]), "error": "env.step raised"})
        assert not replay.add_episode(make_episode([np.nan, 1.0]))
        assert replay.add_episode(make_episode([3.0, 2.0]))  # limits are inclusive
        assert replay.add_episode({**make_episode([1.0, 1.0]), "error": None})
    stats = replay.stats()
    filters = ("filtered_return", "filtered_reward", "filtered_short", "errored")
    assert [stats[name] for name in filters] == [2, 1, 1, 2]
    assert (stats["num_episodes"], stats["num_steps"], stats["total_steps"]) == (2, 4, 4)
    assert "error" not in next(replay.episodes())
    assert sum("carries an error" in r.message for r in caplog.records) == 1
    assert sum(r.levelno == logging.WARNING for r in caplog.records) == 2


def test_malformed_episode_raises() -> None:
    replay = Replay(None)
    with pytest.raises(ValueError, match="leading time axis"):
        replay.add_episode({"reward": np.zeros(3), "action": np.zeros((2, 3))})
    with pytest.raises(ValueError, match="'reward'"):
        replay.add_episode({"action": np.zeros((2, 3))})


def test_save_reload_roundtrip(tmp_path: Path) -> None:
    replay = Replay(tmp_path, dreamsmooth=0.6)
    lengths = [3, 1, 5, 2]
    for i, n in enumerate(lengths):
        assert replay.add_episode(make_episode([0.1 * (i + 1)] * n, tag=float(i)))
    assert replay.num_steps == sum(lengths) and replay.num_episodes == 4
    files = sorted(os.listdir(tmp_path))
    assert len(files) == 4 and all(f.endswith(".npz") for f in files)
    assert sorted(int(f[:-4].rsplit("-", 1)[1]) for f in files) == sorted(lengths)  # name ends in steps

    again = Replay(tmp_path, dreamsmooth=0.6)
    assert again.num_steps == sum(lengths) and again.num_episodes == 4  # entries - 1 each (fixes §7.14)
    stats = again.stats()
    assert (stats["loaded_steps"], stats["loaded_episodes"], stats["total_steps"]) == (sum(lengths), 4, sum(lengths))
    original = sorted((ep["autophase"][0, 0], ep["reward"].tobytes()) for ep in replay.episodes())
    reloaded = sorted((ep["autophase"][0, 0], ep["reward"].tobytes()) for ep in again.episodes())
    assert original == reloaded  # reloaded rewards are not smoothed twice
    for ep in again.episodes():
        assert set(ep) == {"autophase", "action", "reward", "reward_raw", "is_first", "is_last", "is_terminal"}


def test_reload_most_recent_up_to_capacity(tmp_path: Path) -> None:
    replay = Replay(tmp_path)
    for i, n in enumerate([4, 4, 4]):
        replay.add_episode(make_episode([0.0] * n, tag=float(i)))
    # Make file names sort by insertion (several episodes can share a timestamp second).
    for rank, path in enumerate(sorted(tmp_path.glob("*.npz"), key=os.path.getmtime)):
        stamp, rest = path.name.split("-", 1)
        path.rename(tmp_path / f"2024010{rank + 1}T000000-{rest}")
    small = Replay(tmp_path, capacity=8)
    assert small.num_steps == 8 and small.num_episodes == 2
    assert sorted(ep["autophase"][0, 0] for ep in small.episodes()) == [1.0, 2.0]
    assert small.stats()["total_steps"] == 12  # every saved step counts for the step counter


def test_fifo_eviction() -> None:
    replay = Replay(None, capacity=6)
    for i in range(4):
        replay.add_episode(make_episode([0.0, 0.0, 0.0], tag=float(i)))
    assert replay.num_steps == 6 and replay.num_episodes == 2
    assert [ep["autophase"][0, 0] for ep in replay.episodes()] == [2.0, 3.0]
    assert replay.stats()["evicted_episodes"] == 2


def test_atomic_write_leaves_no_temp_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    replay = Replay(tmp_path)
    replay.add_episode(make_episode([1.0]))

    def broken_savez(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        replay.add_episode(make_episode([1.0, 1.0]))
    assert len(os.listdir(tmp_path)) == 1 and all(not f.startswith(".") for f in os.listdir(tmp_path))


def test_sample_shapes_and_is_first() -> None:
    replay = Replay(None, minlen=1, maxlen=4, seed=0)
    replay.add_episode(make_episode([1.0] * 5))
    batch = replay.sample(3, 10)
    assert batch["autophase"].shape == (3, 10, 4) and batch["action"].shape == (3, 10, 3)
    assert batch["is_first"].dtype == bool and batch["is_first"][:, 0].all()
    # Pieces are at most maxlen = 4 entries long, so a new piece starts at least every 4 steps and
    # within a piece the autophase feature (= entry index) increases by one per step.
    index = batch["autophase"][..., 0]
    for row, first in zip(index, batch["is_first"]):
        starts = np.flatnonzero(first)
        assert np.all(np.diff(np.append(starts, 10)) <= 4)
        continuing = ~first[1:]
        np.testing.assert_array_equal(np.diff(row)[continuing], 1.0)


def test_rows_continue_across_calls() -> None:
    replay = Replay(None, minlen=1, maxlen=6, prioritize_ends=False, seed=1)
    replay.add_episode(make_episode([0.0] * 9))  # 10 entries, every piece has 6 entries
    first, second = replay.sample(2, 4), replay.sample(2, 4)
    # A 6-entry piece fills one 4-step row and spills 2 entries into the same row of the next call.
    assert not second["is_first"][:, 0].any() and second["is_first"][:, 2].all()
    np.testing.assert_array_equal(second["autophase"][:, 0, 0], first["autophase"][:, -1, 0] + 1)


def test_sampling_is_deterministic_for_a_seed() -> None:
    def draw(seed: int) -> list[np.ndarray]:
        replay = Replay(None, minlen=1, maxlen=5, seed=seed)
        for i in range(5):
            replay.add_episode(make_episode([0.5] * (3 + i), tag=10.0 * i))
        return [replay.sample(4, 7)["autophase"] for _ in range(3)]

    for a, b in zip(draw(3), draw(3)):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(draw(3), draw(4)))


def test_prioritize_ends_start_distribution() -> None:
    # 46-entry episodes with maxlen 45, minlen 1: start 0 w.p. 1/3, start 1 w.p. 2/3 (§5.5).
    replay = Replay(None, minlen=1, maxlen=45, prioritize_ends=True, seed=0)
    replay.add_episode(make_episode([0.0] * 45))
    starts = np.array([replay._sample_piece()["autophase"][0, 0] for _ in range(3000)])
    assert set(np.unique(starts)) == {0.0, 1.0}
    assert abs(np.mean(starts == 0.0) - 1 / 3) < 0.03
    # Without prioritize_ends both starts are equally likely.
    replay = Replay(None, minlen=1, maxlen=45, prioritize_ends=False, seed=0)
    replay.add_episode(make_episode([0.0] * 45))
    starts = np.array([replay._sample_piece()["autophase"][0, 0] for _ in range(3000)])
    assert abs(np.mean(starts == 0.0) - 1 / 2) < 0.03


def test_sample_empty_and_dataset() -> None:
    replay = Replay(None)
    with pytest.raises(RuntimeError, match="empty"):
        replay.sample(1, 1)
    replay.add_episode(make_episode([1.0, 2.0]))
    batch = next(replay.dataset(2, 3))
    assert batch["reward"].shape == (2, 3)
    assert episode_steps(make_episode([1.0, 2.0])) == 2


def test_from_config() -> None:
    from compilerdream.config import load_configs

    config = load_configs(["compilergym"])
    replay = Replay.from_config(None, config, seed=5)
    assert (replay.maxlen, replay.minlen, replay.dreamsmooth, replay.max_return_limit) == (45, 1, 0.6, 5.0)


def test_replay_does_not_import_torch() -> None:
    code = "import sys, compilerdream.replay; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
