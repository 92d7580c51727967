"""`compilerdream optimize` over many files: each program optimized on its own, on a process pool or on Ray.

    compilerdream optimize progs/*.c --out-dir opt/ [--jobs N] [--executor ray [--ray-address auto]] [optimize options]

Every program gets exactly what `compilerdream optimize FILE` does (same options, same seed),
written to OUT_DIR/<stem>.opt.bc; OUT_DIR/optimize.jsonl gets one line per finished program
(its JSON summary, or its error), so a killed run started again with the same options resumes.
With a budget in compilations (`--search-compilations`) results do not depend on where they ran;
the default budget includes seconds, so they may depend on machine speed and load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .compiler.errors import CompilerDreamError
from .compiler.executor import EXECUTORS, make_executor

RESULTS_FILE = "optimize.jsonl"
_MANY_VALUE_OPTIONS = ("--out-dir", "--jobs", "--executor", "--ray-address")


def wants_many(argv: Sequence[str]) -> bool:
    """Several input files, or an option of many-file mode."""
    inputs, _rest, many = _split(argv)
    return len(inputs) > 1 or bool(many)


def _split(argv: Sequence[str]) -> tuple[list[str], list[str], dict[str, str]]:
    """(input files, optimize's own options, many-file options) of a command line."""
    from .optimize import _VALUE_OPTIONS

    inputs: list[str] = []
    rest: list[str] = []
    many: dict[str, str] = {}
    tokens = list(argv)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        name, eq, value = token.partition("=")
        if name in _MANY_VALUE_OPTIONS:
            if not eq:
                i += 1
                value = tokens[i] if i < len(tokens) else ""
            many[name] = value
        elif token in _VALUE_OPTIONS:
            rest += tokens[i : i + 2]
            i += 1
        elif token.startswith("-"):
            rest.append(token)
        else:
            inputs.append(token)
        i += 1
    return inputs, rest, many


def optimize_file(path: str, rest: Sequence[str], output: str) -> dict:
    """`compilerdream optimize path -o output REST` in this process; its summary, or {"input", "error"}."""
    from .compiler.env import LlvmEnv
    from .compiler.search import REWARD_SPACE
    from .optimize import InputError, UsageError, _check_output_path, _one_line, load_input, optimize, parse_args

    env = None
    try:
        args = parse_args([path, *rest, "-o", output])
        benchmark = load_input(path)
        _check_output_path(args)
        env = LlvmEnv(reward_space=REWARD_SPACE, action_space=args.action_space)
        try:
            env.reset(benchmark=benchmark)
        except CompilerDreamError as exc:
            raise InputError(_one_line(str(exc))) from None
        summary = optimize(args, benchmark, env, lambda _msg: None)
        if summary["output"] is None:
            summary["error"] = "even -Oz's output fails validation; no bitcode written"
        return summary
    except (InputError, UsageError, CompilerDreamError) as exc:
        return {"input": path, "error": _one_line(str(exc))}
    finally:
        if env is not None:
            env.close()


def main_many(argv: Sequence[str]) -> int:
    """Entry point of many-file mode; returns the exit code (2: bad input, 1: a program failed)."""
    from .optimize import PROG, UsageError, parse_args

    inputs, rest, many = _split(argv)
    try:
        if not inputs:
            raise UsageError("no input files")
        if any(t in ("-o", "--output") or t.startswith("--output=") for t in rest):
            raise UsageError("-o names one output: with several inputs use --out-dir DIR (each is DIR/<stem>.opt.bc)")
        if any(t in ("--json",) for t in rest):
            raise UsageError("--json is for one input; with several, the summaries go to OUT_DIR/" + RESULTS_FILE)
        executor_kind = many.get("--executor", "local").lower()
        if executor_kind not in EXECUTORS:
            raise UsageError(f"--executor {executor_kind}: choose from {', '.join(EXECUTORS)}")
        try:
            jobs = int(many["--jobs"]) if "--jobs" in many else None
        except ValueError:
            raise UsageError(f"--jobs must be a positive integer, got {many['--jobs']!r}") from None
        if jobs is not None and jobs <= 0:
            raise UsageError(f"--jobs must be a positive integer, got {jobs}")
        out_dir = Path(many.get("--out-dir", "."))
        if out_dir.exists() and not out_dir.is_dir():
            raise UsageError(f"--out-dir {out_dir} is a file, not a folder")
        missing = [p for p in inputs if not os.path.isfile(p)]
        if missing:
            raise UsageError(f"{missing[0]}: file not found")
        stems: dict[str, str] = {}
        for path in inputs:
            stem = Path(path).stem
            if stem in stems:
                raise UsageError(f"{path} and {stems[stem]} would both be written to {stem}.opt.bc: rename one")
            stems[stem] = path
        parse_args([inputs[0], *rest])  # optimize's own options are checked before any work
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / RESULTS_FILE
    stamp = {"options": list(rest)}
    done: dict[str, dict] = {}
    if results.exists():
        for line in results.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:  # the line a kill cut short
                continue
            if entry.get("stamp") == stamp:
                done[entry["summary"]["input"]] = entry["summary"]
    todo = [os.path.abspath(p) for p in inputs if os.path.abspath(p) not in done]
    if len(todo) < len(inputs):
        print(f"{PROG}: resuming: {len(inputs) - len(todo)} of {len(inputs)} programs done by an earlier run", file=sys.stderr)
    try:
        executor = make_executor(executor_kind, jobs or (1 if executor_kind == "local" else None), many.get("--ray-address"))
    except CompilerDreamError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    outputs = {p: str((out_dir / f"{Path(p).stem}.opt.bc").absolute()) for p in todo}
    try:
        with executor, results.open("a", encoding="utf-8") as f:
            for item, summary, error in executor.map_unordered(_optimize_item, [(p, outputs[p]) for p in todo], list(rest)):
                if error is not None:
                    summary = {"input": item[0], "error": f"worker died: {error}"}
                done[item[0]] = summary
                f.write(json.dumps({"stamp": stamp, "summary": summary}) + "\n")
                f.flush()
                os.fsync(f.fileno())
                print(_line(summary), flush=True)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted (run the same command again to resume)", file=sys.stderr)
        return 130
    failed = [s for s in done.values() if s.get("error")]
    ok = [s for s in done.values() if not s.get("error")]
    if ok:
        better = sum(1 for s in ok if s["result"] < s["Oz"])
        print(f"\n{len(ok)} optimized ({better} smaller than -Oz), {len(failed)} failed; summaries in {results}")
    for s in failed:
        print(f"{PROG}: error: {s['input']}: {s['error']}", file=sys.stderr)
    return 1 if failed else 0


def _optimize_item(item: tuple[str, str], rest: list[str]) -> dict:
    path, output = item
    return optimize_file(path, rest, output)


def _line(summary: dict) -> str:
    if summary.get("error"):
        return f"{summary['input']}: failed: {summary['error']}"
    return (
        f"{summary['input']}: -Oz {summary['Oz']} -> {summary['result']} instructions "
        f"({summary['method']}; Oz/result {summary['reduction']:.4f}x) -> {summary['output']}"
    )


def add_many_help(parser: argparse.ArgumentParser) -> None:
    """Document many-file mode in `compilerdream optimize --help`."""
    group = parser.add_argument_group("several inputs (each optimized on its own)")
    group.add_argument("--out-dir", default=None, help="where DIR/<stem>.opt.bc and DIR/optimize.jsonl go (default .)")
    group.add_argument("--jobs", default=None, help="programs optimized in parallel (default 1; with --executor ray, all CPUs)")
    group.add_argument("--executor", default="local", help="local (process pool of --jobs) or ray")
    group.add_argument("--ray-address", default=None, help="with --executor ray: 'auto' or HOST:PORT (default: start Ray here)")
