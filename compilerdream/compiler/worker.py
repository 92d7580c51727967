"""Compiler sessions in worker processes, so that an LLVM abort costs one episode, not the run.

A `SessionServer` holds LLVM modules (sessions) and answers requests. It runs
either inside a child process (`ProcessWorker`, the default: crashes and hangs
are contained, the process is replaced) or in the caller's process
(`InProcessWorker`: no isolation, lowest latency). Both implement the small
`Worker` interface (start, request, restart, close), so another backend (for
example a Ray actor) can replace them without touching the environment.

Run as `python -m compilerdream.compiler.worker FD` to serve on a socket fd.
"""

from __future__ import annotations

import copyreg
import hashlib
import io
import operator
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from typing import Any

from .errors import SessionError

#: Observations computed in the worker; derived ones (dicts, norms) are made by the env.
BASELINE_PIPELINES = {"O0": None, "O3": "default<O3>", "Oz": "default<Oz>"}


class SessionServer:
    """Holds LLVM modules by session id and executes requests on them."""

    def __init__(self, max_cached_programs: int = 8):
        from . import _core

        self._core = _core
        self.sessions: dict[int, Any] = {}
        self.benchmark_of: dict[int, str] = {}
        # Freshly loaded modules by content hash, so reset() to the same benchmark
        # clones instead of parsing again; bounded so contexts are freed.
        self.programs: OrderedDict[str, Any] = OrderedDict()
        self.max_cached_programs = max_cached_programs
        self.baselines: dict[str, dict[str, int]] = {}

    # -- requests ------------------------------------------------------------
    def handle(self, command: str, args: tuple) -> Any:
        method = getattr(self, "cmd_" + command, None)
        if method is None:
            raise ValueError(f"unknown worker command '{command}'")
        return method(*args)

    def cmd_ping(self) -> str:
        return str(self._core.LLVM_VERSION)

    def cmd_load(self, sid: int, data: bytes, name: str, sha1: str) -> dict:
        """Start session `sid` on a program; returns facts about the loaded module."""
        program = self.programs.get(sha1)
        if program is None:
            program = self._core.Module.load(data, name)
            self.programs[sha1] = program
            while len(self.programs) > self.max_cached_programs:
                self.programs.popitem(last=False)
        else:
            self.programs.move_to_end(sha1)
        module = program.clone()
        self.sessions[sid] = module
        self.benchmark_of[sid] = sha1
        return {
            "instruction_count": module.instruction_count(),
            "num_functions": module.num_functions,
            "num_defined_functions": module.num_defined_functions,
            "had_debug_info": module.had_debug_info,
            "triple": module.triple,
        }

    def cmd_baselines(self, sid: int, names: tuple[str, ...]) -> dict[str, int]:
        """Baseline costs (IrInstructionCountOz, ObjectTextSizeO0, ...) of the session's original program."""
        sha1 = self.benchmark_of[sid]
        cache = self.baselines.setdefault(sha1, {})
        missing = [n for n in names if n not in cache]
        if missing:
            program = self.programs.get(sha1)
            if program is None:
                raise SessionError("the session's original program is no longer cached; reset the environment")
            for level in ("O0", "O3", "Oz"):
                wanted = [n for n in missing if n.endswith(level)]
                if not wanted:
                    continue
                module = program.clone()
                if BASELINE_PIPELINES[level]:
                    module.apply(BASELINE_PIPELINES[level])
                for name in wanted:
                    cache[name] = (
                        module.instruction_count()
                        if name.startswith("IrInstructionCount")
                        else module.object_text_size()
                    )
        return {n: cache[n] for n in names}

    def cmd_step(
        self, sid: int, pipelines: list[str], observations: tuple[str, ...], options: tuple[str, ...] = ()
    ) -> tuple[list[bool], dict]:
        """Apply pipelines (with opt's command-line `options` set for each, e.g. '-force-attribute=minsize')."""
        module = self._session(sid)
        changed = [bool(module.apply(p, list(options))) for p in pipelines]
        return changed, self._observe(module, observations)

    def cmd_trace(self, sid: int, pipelines: list[str], options: tuple[str, ...] = ()) -> tuple[list[int], list[bool]]:
        """Apply pipelines one by one (with `options`); the IR instruction count after each, and whether each changed the module."""
        module = self._session(sid)
        counts, changed = [], []
        for p in pipelines:
            changed.append(bool(module.apply(p, list(options))))
            counts.append(int(module.instruction_count()))
        return counts, changed

    def cmd_observe(self, sid: int, observations: tuple[str, ...]) -> dict:
        return self._observe(self._session(sid), observations)

    def cmd_fork(self, sid: int, new_sid: int) -> None:
        self.sessions[new_sid] = self._session(sid).clone()
        self.benchmark_of[new_sid] = self.benchmark_of[sid]

    def cmd_close(self, sid: int) -> None:
        self.sessions.pop(sid, None)
        self.benchmark_of.pop(sid, None)

    def cmd_debug(self, what: str, seconds: float = 0.0) -> None:
        """Fault injection for tests, enabled only with COMPILERDREAM_DEBUG_HOOKS=1."""
        if os.environ.get("COMPILERDREAM_DEBUG_HOOKS") != "1":
            raise ValueError("debug hooks are disabled")
        if what == "abort":
            os.abort()
        if what == "hang":
            time.sleep(seconds)

    # -- helpers ---------------------------------------------------------------
    def _session(self, sid: int):
        try:
            return self.sessions[sid]
        except KeyError:
            raise SessionError(f"no compiler session {sid} in this worker", "SessionNotFound") from None

    def _observe(self, module, names: tuple[str, ...]) -> dict:
        out: dict[str, Any] = {}
        for name in names:
            if name == "IrInstructionCount":
                out[name] = module.instruction_count()
            elif name == "Autophase":
                out[name] = module.autophase()
            elif name == "InstCount":
                out[name] = module.instcount()
            elif name == "Ir":
                out[name] = module.ir()
            elif name == "IrSha1":
                out[name] = hashlib.sha1(module.ir().encode()).hexdigest()
            elif name == "Bitcode":
                out[name] = module.bitcode()
            elif name == "ObjectTextSizeBytes":
                out[name] = module.object_text_size()
            elif name == "Verify":
                out[name] = module.verify()
            else:
                raise ValueError(f"worker cannot compute observation '{name}'")
        return out


class Worker:
    """Interface of a session backend. `request` raises SessionError when the backend died or timed out."""

    generation = 0  # incremented on every (re)start: sessions of older generations are gone

    def start(self) -> None:
        raise NotImplementedError

    def request(self, command: str, *args, timeout: float | None = None) -> Any:
        raise NotImplementedError

    def restart(self) -> None:
        self.close()
        self.start()

    def close(self) -> None:
        raise NotImplementedError

    def new_session_id(self) -> int:
        self._next_sid = getattr(self, "_next_sid", 0) + 1
        return self._next_sid


class InProcessWorker(Worker):
    """Runs sessions in the calling process: fastest, but an LLVM abort ends the caller."""

    def __init__(self) -> None:
        self.server: SessionServer | None = None

    def start(self) -> None:
        self.server = SessionServer()
        self.generation += 1

    def request(self, command: str, *args, timeout: float | None = None) -> Any:
        if self.server is None:
            self.start()
        return self.server.handle(command, args)

    def close(self) -> None:
        self.server = None


_REMOTE_ERRORS = (ValueError, KeyError, TypeError, SessionError)

#: How long each side of the pipe polls for the other's message before it blocks, in µs.
#: A step on a few-hundred-instruction module takes ~100 µs, about what the two blocking
#: wake-ups of a round trip cost on an idle virtual machine (a halted vCPU is woken by an
#: interrupt); polling briefly first keeps small steps cheap. The polling adapts: after
#: three messages in a row that took longer than this (a big module, a training loop
#: between steps) a channel blocks at once, trying to poll again every 16th message.
#: The window stretches to twice the recent wait for a message (a moving average) where that is
#: at most _SPIN_MAX_US: a step that takes a little longer than 200 µs (Autophase on a
#: 200-instruction module, ~250 µs in the worker) would otherwise miss every time, stop the
#: polling and pay the wake-ups on every step. Longer waits keep the short window, so a parent
#: waiting on long compilations burns no more than before. COMPILERDREAM_WORKER_SPIN_US=0 turns
#: polling off.
DEFAULT_SPIN_US = 200.0
_SPIN_MAX_US = 2000.0
_SPIN_RETRY = 16
_SPIN_MISSES = 3


def spin_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get("COMPILERDREAM_WORKER_SPIN_US", DEFAULT_SPIN_US))) / 1e6
    except ValueError:
        return DEFAULT_SPIN_US / 1e6


# multiprocessing.connection's framing: a signed 32-bit length, or -1 and a 64-bit one. Kept so
# that a parent started before an upgrade still understands a worker it restarts after it.
_HEADER = struct.Struct("!i")
_LONG_HEADER = struct.Struct("!Q")


class _Reduced:
    """Pickles as the call `reduce_value` names (only numpy and operator are named in the stream)."""

    def __init__(self, reduce_value: tuple) -> None:
        self.reduce_value = reduce_value

    def __reduce__(self) -> tuple:
        return self.reduce_value


def _reduce_array(array) -> tuple:
    # numpy's own pickling of a 56-value Autophase vector costs ~80 µs (dump + load), close to
    # a whole small step. Sent instead: frombuffer(bytearray, dtype), reshaped where the array is
    # not 1-D: a writeable C-ordered array as before (frombuffer over a bytearray is writeable, so
    # no copy is made on arrival), rebuilt only with functions every version has (a parent started
    # before an upgrade unpickles what a restarted worker sends).
    if array.dtype.hasobject:
        return array.__reduce_ex__(pickle.HIGHEST_PROTOCOL)
    flat = (sys.modules["numpy"].frombuffer, (bytearray(array.tobytes()), array.dtype.str))
    if array.ndim == 1:
        return flat
    return operator.methodcaller("reshape", array.shape), (_Reduced(flat),)


def _dispatch_table() -> dict | None:
    """The pickler's reductions with numpy arrays sent as `_reduce_array` says; None while numpy
    is not imported (no array can be in the message, and the worker need not import it to start)."""
    np = sys.modules.get("numpy")
    if np is None:
        return None
    table = dict(copyreg.dispatch_table)
    table[np.ndarray] = _reduce_array
    return table


class Channel:
    """Length-prefixed pickles over a stream socket, with a short busy poll before blocking.

    The bytes on the wire are multiprocessing.Connection's, with fewer system calls: one
    `send` is one write, and a small message is received by the same non-blocking read
    that polls for it (Connection spends a select and two reads).
    Raises EOFError when the peer is gone and TimeoutError when `timeout` passes.
    """

    def __init__(self, sock: socket.socket, spin: float = 0.0) -> None:
        self.sock = sock
        self.spin = spin
        self._buffer = bytearray()
        self._misses = 0  # polls in a row that ended without their message
        self._receives = 0
        self._wait = 0.0  # moving average of the seconds a message took to arrive
        self._dispatch: dict | None = None

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, obj: Any) -> None:
        stream = io.BytesIO()
        pickler = pickle.Pickler(stream, protocol=pickle.HIGHEST_PROTOCOL)
        if self._dispatch is None:
            self._dispatch = _dispatch_table()
        if self._dispatch is not None:
            pickler.dispatch_table = self._dispatch
        pickler.dump(obj)
        data = stream.getbuffer()
        if len(data) > 0x7FFFFFFF:
            header = _HEADER.pack(-1) + _LONG_HEADER.pack(len(data))
        else:
            header = _HEADER.pack(len(data))
        self.sock.sendall(header + data)

    def recv(self, timeout: float | None = None) -> Any:
        self._receives += 1
        polling = self.spin > 0.0 and (self._misses < _SPIN_MISSES or self._receives % _SPIN_RETRY == 0)
        window = 2.0 * self._wait  # covers the usual wait, unless that is long: then block soon
        spin = (window if self.spin < window <= _SPIN_MAX_US / 1e6 else self.spin) if polling else 0.0
        started = time.perf_counter()
        if self._fill(_HEADER.size, timeout, spin) < 0:
            raise TimeoutError
        self._wait += 0.25 * (time.perf_counter() - started - self._wait)
        (length,) = _HEADER.unpack_from(self._buffer)
        start = _HEADER.size
        if length == -1:  # the rest follows the header at once: no timeout from here on
            self._fill(start + _LONG_HEADER.size, None, 0.0)
            (length,) = _LONG_HEADER.unpack_from(self._buffer, start)
            start += _LONG_HEADER.size
        self._fill(start + length, None, 0.0)
        data = bytes(self._buffer[start : start + length])
        del self._buffer[: start + length]
        return pickle.loads(data)

    def _fill(self, wanted: int, timeout: float | None, spin: float) -> int:
        """Read until `wanted` bytes are buffered; -1 on timeout."""
        buffer = self._buffer
        if len(buffer) >= wanted:
            return len(buffer)
        if spin > 0.0:
            deadline = time.perf_counter() + spin
            while True:
                try:
                    chunk = self.sock.recv(max(65536, wanted - len(buffer)), socket.MSG_DONTWAIT)
                except BlockingIOError:
                    if time.perf_counter() >= deadline:
                        break
                    os.sched_yield()  # on a busy machine, let whoever shares this core run
                    continue
                if not chunk:
                    raise EOFError
                buffer += chunk
                if len(buffer) >= wanted:
                    self._misses = 0
                    return len(buffer)
            self._misses += 1
            if timeout is not None:
                timeout = max(0.0, timeout - spin)
        if timeout is None:
            while len(buffer) < wanted:
                chunk = self.sock.recv(max(65536, wanted - len(buffer)))
                if not chunk:
                    raise EOFError
                buffer += chunk
            return len(buffer)
        end = time.monotonic() + timeout
        try:
            while len(buffer) < wanted:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return -1
                self.sock.settimeout(remaining)
                try:
                    chunk = self.sock.recv(max(65536, wanted - len(buffer)))
                except socket.timeout:
                    return -1
                if not chunk:
                    raise EOFError
                buffer += chunk
        finally:
            self.sock.settimeout(None)
        return len(buffer)

    def close(self) -> None:
        self.sock.close()


#: The worker process's main. `compilerdream.compiler`'s __init__ (the env, gymnasium, numpy: about
#: 0.15 s of imports, paid by every program `optimize` or `evaluate` starts a worker for) is
#: replaced by a bare package module over the same folder, so the worker imports only this
#: module, errors.py and the native engine (numpy too, once an observation needs it).
_WORKER_MAIN = (
    "import sys, types; import compilerdream; "
    "package = types.ModuleType('compilerdream.compiler'); package.__path__ = [sys.argv[2]]; "
    "sys.modules['compilerdream.compiler'] = compilerdream.compiler = package; "
    "from compilerdream.compiler.worker import serve; serve(int(sys.argv[1]))"
)


class ProcessWorker(Worker):
    """A child process serving one SessionServer over a socket pair."""

    def __init__(self, default_timeout: float = 60.0) -> None:
        self.default_timeout = default_timeout
        self.process: subprocess.Popen | None = None
        self.conn: Channel | None = None
        self._stderr = None
        self._lock = threading.Lock()
        self._spin = spin_seconds()

    def start(self) -> None:
        parent_sock, child_sock = socket.socketpair()
        self._stderr = tempfile.TemporaryFile(prefix="compilerdream-worker-")
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", "1")
        self.process = subprocess.Popen(
            # Not `-m compilerdream.compiler.worker`: the package imports this module first,
            # and runpy's RuntimeWarning about it would fill the crash details.
            [sys.executable, "-c", _WORKER_MAIN, str(child_sock.fileno()), os.path.dirname(os.path.abspath(__file__))],
            pass_fds=(child_sock.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env=env,
            start_new_session=True,  # Ctrl-C goes to the parent, which closes us cleanly
        )
        child_sock.close()
        self.conn = Channel(parent_sock, self._spin)
        self.generation += 1

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def request(self, command: str, *args, timeout: float | None = None) -> Any:
        with self._lock:
            if not self.alive:
                self.restart()
            timeout = self.default_timeout if timeout is None else timeout
            try:
                self.conn.send((command, args))
                status, payload = self.conn.recv(timeout)
            except TimeoutError:
                self._kill()
                raise SessionError(
                    f"compiler worker did not answer '{command}' within {timeout:g}s; it was killed and will be replaced",
                    "TimeoutError",
                ) from None
            except (EOFError, OSError, BrokenPipeError, pickle.UnpicklingError) as exc:
                details = self._death_details()
                self._kill()
                raise SessionError(f"compiler worker died during '{command}': {details}", "SessionCrash", details) from exc
        if status == "ok":
            return payload
        kind, message = payload
        errors = {cls.__name__: cls for cls in _REMOTE_ERRORS}
        if kind in errors and kind != "SessionError":
            raise errors[kind](message)
        raise SessionError(message, kind)

    def _death_details(self) -> str:
        code = None
        if self.process is not None:
            try:
                code = self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                code = None
        reason = f"exit status {code}"
        if code is not None and code < 0:
            try:
                reason = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                reason = f"killed by signal {-code}"
        tail = ""
        if self._stderr is not None:
            try:
                self._stderr.seek(0)
                lines = self._stderr.read().decode(errors="replace").strip().splitlines()
                tail = " | ".join(lines[-3:])
            except OSError:
                pass
        return reason + (f"; LLVM said: {tail}" if tail else "")

    def _kill(self) -> None:
        if self.process is not None:
            # The sessions died with the process: say so now, so that envs sharing this
            # worker (forks) see the new generation and replay instead of asking the
            # next process for sessions it never had.
            self.generation += 1
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.process.kill()
            self.process.wait()
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.process = None

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None and self.conn is not None:
            try:
                self.conn.send(("__exit__", ()))
                self.process.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._kill()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            self._kill()
        except Exception:
            pass


def make_worker(isolation: str = "process", timeout: float = 60.0) -> Worker:
    """A session backend: 'process' (crash-safe, default) or 'none' (in-process)."""
    if isolation == "process":
        return ProcessWorker(default_timeout=timeout)
    if isolation in ("none", "inprocess", "in-process"):
        return InProcessWorker()
    raise ValueError(f"unknown isolation '{isolation}': use 'process' or 'none'")


def serve(fd: int) -> None:
    """Worker main loop: answer (command, args) messages until EOF or '__exit__'."""
    conn = Channel(socket.socket(fileno=fd), spin_seconds())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    server = SessionServer()
    while True:
        try:
            command, args = conn.recv()
        except (EOFError, OSError):
            return
        if command == "__exit__":
            return
        try:
            conn.send(("ok", server.handle(command, args)))
        except Exception as exc:  # reported to the caller, which re-raises it typed
            kind = exc.error_type if isinstance(exc, SessionError) else type(exc).__name__
            conn.send(("error", (kind, str(exc))))


if __name__ == "__main__":
    serve(int(sys.argv[1]))
