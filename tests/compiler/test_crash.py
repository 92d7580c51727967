"""Crash and hang recovery: an LLVM abort or a hung pass ends the episode, the worker is replaced, reset works."""

from __future__ import annotations

import time

import pytest

import compilerdream.compiler as cc

from .helpers import count_instructions

#: Bare `instcombine` verifies its fixpoint and LLVM 19 aborts the process on this module
#: (reduced from csmith seed 100); the -instcombine action uses instcombine<no-verify-fixpoint>.
CRASHING_PIPELINE = "instcombine"


@pytest.fixture
def debug_hooks(monkeypatch):
    """Enable the worker's fault injection; must be set before the worker process starts."""
    monkeypatch.setenv("COMPILERDREAM_DEBUG_HOOKS", "1")


def _assert_error_step(result, error_type: str, details: str = "") -> None:
    obs, reward, terminated, truncated, info = result
    assert terminated is True and truncated is False
    assert info["error_type"] == error_type and details in info["error_details"], info
    assert reward == 0.0


def test_real_llvm_abort_ends_episode_and_reset_recovers(program_bitcode):
    """A real LLVM fatal error (instcombine fixpoint) kills only the worker; reset then gives correct results."""
    path = program_bitcode["instcombine_fixpoint_abort"]
    with cc.make("llvm-ic-v0", benchmark=path, observation_space="Autophase") as env:
        first_obs, _ = env.reset()
        old_pid = env.worker.process.pid
        result = env.step(CRASHING_PIPELINE)
        _assert_error_step(result, "SessionCrash", "did not reach a fixpoint")
        assert result[0].shape == (56,) and not result[0].any()  # the observation space's default
        with pytest.raises(cc.SessionError, match="reset"):
            env.step("-mem2reg")  # the episode is over until reset
        obs, _ = env.reset()
        assert env.worker.process.pid != old_pid
        assert obs.tolist() == first_obs.tolist()
        _, reward, terminated, _, info = env.step("-instcombine")  # the safe variant works on the same module
        assert not terminated and "error_type" not in info
        assert int(env.observation["IrInstructionCount"]) < count_instructions(path.read_bytes())
        assert env.episode_reward == reward > 0


def test_injected_abort(debug_hooks, program_bitcode):
    """An injected abort() in the worker is reported as SessionCrash (SIGABRT); the next reset works."""
    with cc.make("llvm-ic-v0", benchmark=program_bitcode["crc32"], observation_space="IrInstructionCount") as env:
        start, _ = env.reset()
        env.step("-mem2reg")
        with pytest.raises(cc.SessionError) as info:
            env.worker.request("debug", "abort")
        assert info.value.error_type == "SessionCrash" and "SIGABRT" in str(info.value)
        assert env.reset()[0] == start
        assert env.step("-mem2reg")[2] is False and env.episode_reward > 0


def test_hung_step_times_out(debug_hooks, program_bitcode):
    """A worker that does not answer within step_timeout=2 s is killed; the call fails with TimeoutError in ~2 s."""
    with cc.make("llvm-ic-v0", benchmark=program_bitcode["qsort"], step_timeout=2) as env:
        env.reset()
        pid = env.worker.process.pid
        started = time.monotonic()
        with pytest.raises(cc.SessionError) as info:
            env.worker.request("debug", "hang", 30.0, timeout=env.step_timeout)
        assert 1.9 < time.monotonic() - started < 10
        assert info.value.error_type == "TimeoutError"
        env.reset()
        assert env.worker.process.pid != pid
        assert env.step("-mem2reg")[2] is False


def test_hung_pass_in_step_ends_episode(debug_hooks, program_bitcode, monkeypatch):
    """A step whose worker call hangs past step_timeout returns terminated with error_type TimeoutError."""
    with cc.make("llvm-ic-v0", benchmark=program_bitcode["qsort"], step_timeout=2) as env:
        env.reset()
        worker = env.worker
        real_request = worker.request

        def hanging_step(command, *args, timeout=None):
            if command == "step":  # the worker sleeps instead of running the pass
                return real_request("debug", "hang", 30.0, timeout=timeout)
            return real_request(command, *args, timeout=timeout)

        monkeypatch.setattr(worker, "request", hanging_step)
        started = time.monotonic()
        result = env.step("-mem2reg")
        assert time.monotonic() - started < 10
        _assert_error_step(result, "TimeoutError", "did not answer")
        monkeypatch.setattr(worker, "request", real_request)
        env.reset()
        assert env.step("-mem2reg")[2] is False


def test_fork_crash_leaves_parent_usable(program_bitcode):
    """Regression: when a fork's step crashes the shared worker, the parent replays its actions in the new worker.

    Before the fix the parent's next step failed with SessionNotFound.
    """
    path = program_bitcode["instcombine_fixpoint_abort"]
    with cc.make("llvm-ic-v0", benchmark=path) as env:
        env.reset()
        env.step("-mem2reg")
        expected = int(env.observation["IrInstructionCount"])
        fork = env.fork()
        _assert_error_step(fork.step(CRASHING_PIPELINE), "SessionCrash", "fixpoint")
        assert int(env.observation["IrInstructionCount"]) == expected
        _, _, terminated, _, info = env.step("-instcombine")
        assert not terminated, info
        assert env.actions == ["-mem2reg", "-instcombine"]
        fork.close()


def test_repeated_crashes(debug_hooks, program_bitcode):
    """The worker survives repeated crashes: three aborts in a row, each followed by a good episode."""
    with cc.make("llvm-v0", benchmark=program_bitcode["statemachine"]) as env:
        pids = set()
        for _ in range(3):
            env.reset()
            pids.add(env.worker.process.pid)
            with pytest.raises(cc.SessionError):
                env.worker.request("debug", "abort")
        env.reset()
        assert len(pids) == 3 and env.step("-sroa")[2] is False


def test_a_hung_pass_costs_the_search_budget_not_the_step_timeout(debug_hooks, program_bitcode, monkeypatch):
    """search_benchmark with a seconds budget: each compiler call may take what is left of the budget
    plus HANG_GRACE_SECONDS, not the env's 60 s step timeout, so a hung pass is cut there; the search
    still reports its best so far, replayed with the env's whole timeout."""
    from compilerdream.compiler.search import HANG_GRACE_SECONDS, Budget, SearchPolicy, search_benchmark

    class StepThenHang(SearchPolicy):
        def search(self, ctx):
            ctx.step("-mem2reg")
            ctx.step("-instcombine")  # the worker hangs on this one

    env = cc.LlvmEnv(action_space="NoLimit")
    assert env.step_timeout == 60.0
    real_request = env.worker.request
    timeouts = []

    def request(command, *args, timeout=None):
        if command == "step":
            timeouts.append(timeout)
            if len(timeouts) == 2:
                return real_request("debug", "hang", 30.0, timeout=timeout)
        return real_request(command, *args, timeout=timeout)

    monkeypatch.setattr(env.worker, "request", request)
    result = search_benchmark(StepThenHang(), program_bitcode["qsort"], Budget(seconds=3.0), env_factory=lambda: env)
    assert len(timeouts) == 3, timeouts  # the two steps, then the replay of the best
    assert all(t <= 3.0 + HANG_GRACE_SECONDS for t in timeouts[:2])
    assert timeouts[2] == 60.0
    assert result.error is None and result.best_actions == ["-mem2reg"]
    with cc.LlvmEnv(action_space="NoLimit") as fresh:
        fresh.reset(benchmark=program_bitcode["qsort"])
        fresh.step("-mem2reg")
        assert result.final == int(fresh.observation["IrInstructionCount"]) < result.O0
