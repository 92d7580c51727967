"""The worker's pipe protocol: length-prefixed pickles, large messages, timeouts, a vanished peer."""

from __future__ import annotations

import socket
import threading

import pytest

from compilerdream.compiler.worker import Channel, ProcessWorker


@pytest.fixture(params=[0.0, 200e-6], ids=["blocking", "spinning"])
def pair(request):
    left, right = socket.socketpair()
    channels = Channel(left, request.param), Channel(right, request.param)
    yield channels
    for channel in channels:
        channel.close()


def test_messages_arrive_whole_and_in_order(pair):
    sender, receiver = pair
    big = bytes(range(256)) * 40_000  # 10 MB: many socket reads
    messages = [("step", (1, ["sroa"], ("Autophase",))), ("load", (2, big, "x", "sha")), ("ok", list(range(56)))]
    thread = threading.Thread(target=lambda: [sender.send(m) for m in messages])
    thread.start()
    received = [receiver.recv(timeout=30) for _ in messages]
    thread.join()
    assert received == messages


def test_a_silent_peer_times_out_and_a_closed_one_is_eof(pair):
    sender, receiver = pair
    with pytest.raises(TimeoutError):
        receiver.recv(timeout=0.05)
    sender.send("late")  # a timeout loses nothing that arrives afterwards
    assert receiver.recv(timeout=5) == "late"
    sender.close()
    with pytest.raises(EOFError):
        receiver.recv(timeout=5)


def test_worker_round_trips_with_and_without_polling(monkeypatch):
    for spin in ("0", "300"):
        monkeypatch.setenv("COMPILERDREAM_WORKER_SPIN_US", spin)
        worker = ProcessWorker()
        worker.start()
        try:
            version = worker.request("ping")
            assert isinstance(version, str) and version
            with pytest.raises(ValueError, match="unknown worker command"):
                worker.request("no_such_command")
            assert worker.request("ping")  # an error answer leaves the protocol in step
        finally:
            worker.close()


def test_arrays_come_back_equal_writeable_and_without_naming_this_package(pair):
    """Arrays travel as bytes + dtype + shape; the stream names only numpy and operator, so a parent
    started before an upgrade (multiprocessing's Connection, an older worker module) still reads them."""
    import io
    import pickle

    import numpy as np

    sender, receiver = pair
    arrays = [np.arange(56, dtype=np.int64), np.arange(12, dtype=np.float32).reshape(3, 4), np.zeros(0, np.int32),
              np.asfortranarray(np.arange(6).reshape(2, 3)), np.array(["x", None], dtype=object)]  # fmt: skip
    for array in arrays:
        sender.send(("ok", {"Autophase": array}))
        received = receiver.recv(timeout=5)[1]["Autophase"]
        assert received.dtype == array.dtype and received.shape == array.shape
        assert np.array_equal(received, array) and received.flags.writeable
    stream = io.BytesIO()
    pickler = pickle.Pickler(stream, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = sender._dispatch
    pickler.dump(("ok", {"Autophase": arrays[0]}))
    assert b"compilerdream" not in stream.getvalue()


def _maps(pid: int) -> str:
    with open(f"/proc/{pid}/maps") as f:
        return f.read()


def test_the_worker_starts_without_the_env_and_loads_numpy_only_for_an_array(program_bitcode):
    """The worker process imports its own module and the engine, not compilerdream.compiler's env
    (gymnasium, numpy); an Autophase observation then brings numpy in and arrives as in process."""
    import numpy as np

    import compilerdream.compiler as cc

    with cc.LlvmEnv(action_space="NoLimit") as env, cc.LlvmEnv(action_space="NoLimit", isolation="none") as local:
        for e in (env, local):
            e.reset(benchmark=program_bitcode["qsort"])
            e.step("-mem2reg")
        assert int(env.observation["IrInstructionCount"]) == int(local.observation["IrInstructionCount"])
        assert "_multiarray_umath" not in _maps(env.worker.process.pid)
        features = env.observation["Autophase"]
        assert "_multiarray_umath" in _maps(env.worker.process.pid)
        assert np.array_equal(features, local.observation["Autophase"]) and features.flags.writeable
