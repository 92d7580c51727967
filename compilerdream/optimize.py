"""`compilerdream optimize`: one program, the best pass sequence found within a budget, never worse than -Oz (REFERENCE §3, §6.8).

With a checkpoint (a directory, or `default` for the shipped agent) the agent's value
prediction compiles its top `--top-k` coreset sequences, then its guided search (REFERENCE §3)
spends the rest of the budget. Without one, the default
method (`default_policy`): -Oz, then every sequence of the shipped LLVM-19 coreset from
-O0 or from -Oz (best prefix kept), then greedy search from the best result so far and
random search from -Oz while a small budget lasts (about a second per program in all).
`--search-seconds`/`--search-compilations` buy more search. The result is replayed and measured, compared
with -Oz (instruction count), optionally validated by running the program, and
written as bitcode with the `opt` command line that reproduces it.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .compiler.benchmarks import C_SUFFIXES, IR_SUFFIXES, Benchmark
from .compiler.coreset import CoresetError, load_coreset
from .compiler.default_optimizer import (
    DEFAULT_SEARCH_SECONDS,
    NO_OUTLINE_SEARCH_SECONDS,
    default_policy,
    default_search_seconds,
)
from .compiler.env import LlvmEnv
from .compiler.errors import CompilerDreamError
from .compiler.fileio import atomic_write
from .compiler.metrics import reduction
from .compiler.search import OZ_PIPELINE, REWARD_SPACE, Budget, SearchPolicy, search_benchmark
from .compiler.spaces import passes_argument
from .compiler.toolchain import find_tool
from .compiler.validation import SemanticsResult, miscompile_report, validate_semantics, write_miscompiles
from .pretrained import resolve_checkpoint

DEFAULT_SECONDS = 60.0  # guided search's wall time per benchmark when no budget is given (the reference's, §3)
PROG = "compilerdream optimize"


class UsageError(Exception):
    """A bad command line (exit code 2)."""


class InputError(Exception):
    """The input program cannot be read, compiled or parsed (exit code 2)."""


# ----------------------------------------------------------------- guided search
def load_guided(checkpoint: str | None, device: str = "auto") -> tuple[SearchPolicy | None, str]:
    """The agent's guided-search policy (`compilerdream.search.load_guided_policy`), or (None, why not).

    A missing checkpoint directory is a usage error (raised); an agent package that
    cannot be imported (not installed, torch missing) is a fallback, explained.
    """
    from .pretrained import describe_missing

    if not checkpoint:
        return None, "no checkpoint given"
    checkpoint = resolve_checkpoint(checkpoint)
    if not os.path.isdir(checkpoint):
        raise UsageError(describe_missing(checkpoint))
    try:
        from .search import load_guided_policy  # type: ignore[attr-defined]
    except ImportError as exc:
        return None, f"guided search is unavailable ({exc})"
    try:
        return load_guided_policy(checkpoint, device), ""
    except Exception as exc:  # a broken checkpoint must not end in a traceback
        raise UsageError(f"cannot load checkpoint {checkpoint}: {type(exc).__name__}: {exc}") from None


# ----------------------------------------------------------------- candidates
@dataclass
class Candidate:
    """A measured optimized module: how it was made and what it costs."""

    method: str
    actions: list
    commandline: str  # `opt ... input.bc -o output.bc` that reproduces it
    passes: str  # its -passes= argument
    instructions: int
    text_size: int
    bitcode: bytes = field(repr=False, default=b"")
    #: opt's own options the passes ran under (in `commandline` before -passes), e.g. -force-attribute=minsize
    options: list = field(default_factory=list)


def _passes_of(commandline: str) -> str:
    passes = passes_argument(commandline)
    return "no-op-module" if passes is None else passes


def measure(env: LlvmEnv, benchmark: Benchmark, actions: list, method: str, options: Sequence[str] = ()) -> Candidate:
    """Replay `actions` (under opt's `options`, see LlvmEnv.compiler_options) on a fresh copy of
    the benchmark and measure the module."""
    env.compiler_options = tuple(options)
    env.reset(benchmark=benchmark)
    if actions:
        _, _, died, _, info = env.multistep(actions)
        if died:
            raise CompilerDreamError(f"replaying the {method} sequence failed: {info.get('error_details')}")
    commandline = env.commandline()
    return Candidate(
        method=method,
        actions=[a if isinstance(a, str) else int(a) for a in actions],
        commandline=commandline,
        passes=_passes_of(commandline),
        instructions=int(env.observation["IrInstructionCount"]),
        text_size=int(env.observation["ObjectTextSizeBytes"]),
        bitcode=bytes(env.observation["Bitcode"]),
        options=list(options),
    )


# ----------------------------------------------------------------- command line
class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise UsageError(message)


_KIND_NAMES = {int: "integer", float: "number"}


def positive(kind):
    """An argparse type: a `kind` (int or float) above 0; its errors say 'invalid positive integer/number value'."""

    def parse(text: str):
        value = kind(text)
        if not value > 0:
            raise ValueError(text)
        return value

    parse.__name__ = f"positive {_KIND_NAMES.get(kind, kind.__name__)}"
    return parse


_positive_float, _positive_int = positive(float), positive(int)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Optimize one program for code size; never worse than -Oz.")
    p.add_argument("input", help="a .c, .cc, .ll or .bc file (several: see the last group of options)")
    p.add_argument(
        "--checkpoint", default=None, type=resolve_checkpoint,
        help="trained agent directory, or `default` for the shipped agent: guided search (else search alone)",
    )
    p.add_argument(
        "--search-seconds",
        type=_positive_float,
        default=None,
        help=f"wall-clock budget per program, coreset included (default: the coreset and the outliner, then search "
        f"until {DEFAULT_SEARCH_SECONDS:g} s ({NO_OUTLINE_SEARCH_SECONDS:g} s with --no-outline); with --checkpoint "
        f"{DEFAULT_SECONDS:g} s)",
    )
    p.add_argument(
        "--search-compilations", type=_positive_int, default=None, help="budget in compilations (applied passes)"
    )
    p.add_argument("-o", "--output", default=None, help="optimized bitcode (default ./<stem>.opt.bc)")
    p.add_argument(
        "--validate", action="store_true", help="run the program before and after; a mismatch is a miscompile"
    )
    p.add_argument(
        "--validate-timeout", type=_positive_float, default=10.0, help="seconds per program run (default 10)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument(
        "--coreset",
        default="default",
        help="pass-sequence coreset tried before search: default (LLVM 19, shipped), nvp50 (Coreset-NVP's 50), "
        "a coreset JSON file, or none",
    )
    p.add_argument(
        "--top-k", type=int, default=5,
        help="with --checkpoint: coreset sequences the agent's value prediction compiles before guided search "
        "(default 5; 0 = guided search alone)",
    )
    p.add_argument(
        "--no-outline", dest="outline", action="store_false",
        help="do not try LLVM's IR outliner (iroutliner) on the unoptimized program and the best results, nor opt's options "
        "(-force-attribute=minsize, -inline-threshold) where -Oz with them is smaller: the result then uses "
        "only CompilerGym's 124 passes and -Oz",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--action-space", default="NoLimit")
    p.add_argument("--device", default="auto", help="for guided search: cpu, cuda or auto")
    from .optimize_many import add_many_help

    add_many_help(p)
    return p


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if args.checkpoint and args.search_seconds is None and args.search_compilations is None:
        args.search_seconds = DEFAULT_SECONDS
    if str(args.coreset).lower() == "none":
        args.coreset = None
    else:
        try:
            args.coreset = load_coreset(args.coreset)
        except CoresetError as exc:
            raise UsageError(f"--coreset: {exc}") from None
    return args


_VALUE_OPTIONS = {
    "--checkpoint",
    "--search-seconds",
    "--search-compilations",
    "-o",
    "--output",
    "--validate-timeout",
    "--seed",
    "--action-space",
    "--device",
    "--coreset",
    "--top-k",
}


def _input_name(argv: Sequence[str]) -> str:
    """Best guess at the input argument, for error lines produced before parsing succeeds."""
    skip = False
    for token in argv:
        if skip:
            skip = False
        elif token in _VALUE_OPTIONS:
            skip = True
        elif not token.startswith("-"):
            return token
    return "<no input>"


# ----------------------------------------------------------------- the job
def load_input(path: str) -> Benchmark:
    """Read/compile the input; every failure becomes an InputError with one clear line."""
    p = Path(path)
    if not p.exists():
        raise InputError("file not found")
    if p.is_dir():
        raise InputError("is a directory, not a program file")
    if p.suffix.lower() not in C_SUFFIXES + IR_SUFFIXES:
        raise InputError(f"unsupported file type '{p.suffix}': expected .c, .cc, .ll or .bc")
    try:
        return Benchmark.from_file(p)
    except CompilerDreamError as exc:
        raise InputError(_one_line(str(exc))) from None


def _one_line(text: str, limit: int = 400) -> str:
    flat = " | ".join(line.strip() for line in str(text).splitlines() if line.strip())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def default_output(input_path: str) -> str:
    return os.path.join(".", Path(input_path).stem + ".opt.bc")


def reproduce_commands(benchmark: Benchmark, input_path: str, commandline: str, output: str) -> list[str]:
    """Shell commands that rebuild the result: clang (for sources), then the opt command line."""
    opt = os.path.basename(find_tool("opt", required=False) or "opt")
    suffix = Path(input_path).suffix.lower()
    lines = []
    if suffix in C_SUFFIXES:
        clang_name = "clang++" if suffix != ".c" else "clang"
        clang = os.path.basename(find_tool(clang_name, required=False) or clang_name)
        bitcode = Path(input_path).stem + ".bc"
        lines.append(
            shlex.join([clang, "-emit-llvm", "-c", "-w", *benchmark.frontend_flags, input_path, "-o", bitcode])
        )
    else:
        bitcode = input_path
    names = {"opt": opt, "input.bc": bitcode, "output.bc": output}
    lines.append(shlex.join(names.get(token, token) for token in shlex.split(commandline)))
    return lines


def _search(args, benchmark: Benchmark) -> tuple[list, str, str, list]:
    """Run guided search or the default method; returns (best passes, method name, note for the
    user, opt options the passes ran under).

    Passes (flags), not action indices: guided search acts in the agent's action space,
    which need not be the `--action-space` the rest of optimize uses.
    """
    guided, why_not = load_guided(args.checkpoint, args.device)
    start = "o0"
    if guided is not None:
        from .coreset import agent_policy

        policy, no_vp = agent_policy(guided, args.coreset, args.top_k, outline=args.outline)
        start = guided.settings.start
        budget = Budget(seconds=args.search_seconds, compilations=args.search_compilations)
        note = f"{policy.describe()} with the agent in {args.checkpoint} within {budget.describe()}"
        note += f" ({no_vp})" if no_vp else ""
    else:
        policy, budget = default_policy(
            args.coreset, args.search_seconds, args.search_compilations, outline=args.outline
        )
        seconds = default_search_seconds(args.outline)
        finish = "the coreset and the outliner always finish" if args.outline else "the coreset always finishes"
        within = budget.describe() if (args.search_seconds or args.search_compilations) else (
            f"{seconds:g} s ({finish})" if args.coreset else f"{seconds:g} s"
        )
        note = f"{why_not}, so the default method: {policy.describe()} within {within}"  # type: ignore[attr-defined]
    result = search_benchmark(policy, benchmark, budget, action_space=args.action_space, seed=args.seed, start=start)
    if result.error:
        raise CompilerDreamError(f"search failed: {result.error}")
    return list(result.best_passes), policy.name, note, list(result.compiler_options)


def _validate(benchmark: Benchmark, cand: Candidate, timeout: float, reports: list) -> SemanticsResult:
    verdict = validate_semantics(benchmark.data, cand.bitcode, timeout=timeout)
    if verdict.miscompiled:
        report = miscompile_report(
            benchmark.uri, cand.commandline, verdict, pass_sequence=cand.actions, method=cand.method
        )
        reports.append({**report, "instructions": cand.instructions})
    return verdict


def _floor_at_oz(chosen: Candidate, oz_cand: Candidate, say: Callable[[str], None], notes: list[str]) -> Candidate:
    """Never return more instructions than -Oz: ties and losses go to -Oz's output."""
    if chosen is oz_cand:
        notes.append("search found no improvement: returning -Oz's output")
    elif chosen.instructions >= oz_cand.instructions:
        notes.append(
            f"{chosen.method} found {chosen.instructions} instructions, not fewer than -Oz's "
            f"{oz_cand.instructions}: returning -Oz's output"
        )
    else:
        return chosen
    say(notes[-1])
    return oz_cand


def _validated(
    benchmark: Benchmark, chosen: Candidate, oz_cand: Candidate, args, say, notes: list[str], reports: list[dict]
) -> tuple[Candidate, dict]:
    """Run the chosen module against the unoptimized one; a miscompile falls back to (validated) -Oz."""
    verdict = _validate(benchmark, chosen, args.validate_timeout, reports)
    if verdict.miscompiled and chosen is not oz_cand:
        notes.append(f"MISCOMPILE by the {chosen.method} sequence ({verdict.reason}): falling back to -Oz's output")
        say(notes[-1])
        chosen = oz_cand
        verdict = _validate(benchmark, chosen, args.validate_timeout, reports)
    why = verdict.reason or verdict.skip_reason
    say(f"validation: {verdict.status} ({why})")
    return chosen, {"status": verdict.status, "reason": why}


def optimize(args: argparse.Namespace, benchmark: Benchmark, env: LlvmEnv, say: Callable[[str], None]) -> dict:
    """Search, pick the result (never worse than -Oz), validate, write. Returns the JSON summary."""
    env.reset(benchmark=benchmark)
    o0, oz = int(env.observation["IrInstructionCountO0"]), int(env.observation["IrInstructionCountOz"])
    text_oz = int(env.observation["ObjectTextSizeOz"])
    actions, method, note, options = _search(args, benchmark)
    say(f"search: {note}")
    notes, reports = [note], []
    oz_cand = measure(env, benchmark, [OZ_PIPELINE], "-Oz")
    chosen = _floor_at_oz(
        measure(env, benchmark, actions, method, options) if actions else oz_cand, oz_cand, say, notes
    )
    validation = None
    if args.validate:
        chosen, validation = _validated(benchmark, chosen, oz_cand, args, say, notes, reports)
    summary = {
        "input": args.input,
        "benchmark": benchmark.uri,
        "method": chosen.method,
        "actions": chosen.actions,
        "passes": chosen.passes,
        "options": chosen.options,
        "commandline": chosen.commandline,
        "O0": o0,
        "Oz": oz,
        "result": chosen.instructions,
        "reduction": reduction(oz, chosen.instructions),
        "text_size": chosen.text_size,
        "text_size_oz": text_oz,
        "validation": validation,
        "notes": notes,
        "output": None,
    }
    if reports:
        summary["miscompile_report"] = write_miscompiles(reports, os.path.splitext(args.output)[0] + ".miscompile.json")
        say(f"miscompile report written to {summary['miscompile_report']}")
    if validation and validation["status"] == "miscompile":
        return summary  # even -Oz's output differs: nothing trustworthy to write
    atomic_write(args.output, chosen.bitcode)
    summary["output"] = args.output
    summary["reproduce"] = reproduce_commands(benchmark, args.input, chosen.commandline, args.output)
    return summary


def print_summary(summary: dict) -> None:
    """The human-readable result."""
    o0, oz, res = summary["O0"], summary["Oz"], summary["result"]
    print(
        f"instruction count: -O0 {o0}, -Oz {oz}, result {res} ({summary['method']}; Oz/result = {summary['reduction']:.4f}x)"
    )
    print(f".text size: result {summary['text_size']} bytes, -Oz {summary['text_size_oz']} bytes")
    print(f"pipeline: {summary['commandline']}")
    if summary.get("output"):
        print(f"wrote {summary['output']}")
        print("reproduce with:")
        for line in summary["reproduce"]:
            print(f"  {line}")


def _check_output_path(args: argparse.Namespace) -> None:
    args.output = args.output or default_output(args.input)
    if os.path.abspath(args.output) == os.path.abspath(args.input) or (
        os.path.exists(args.output) and os.path.samefile(args.output, args.input)
    ):
        raise UsageError(f"refusing to overwrite the input {args.input}: choose another -o")
    if os.path.isdir(args.output):
        example = os.path.join(args.output, os.path.basename(default_output(args.input)))
        raise UsageError(f"-o {args.output} is a folder: give the output file's name, e.g. -o {example}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `compilerdream optimize`; returns the exit code (2: bad input, 1: no valid result)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from .optimize_many import main_many, wants_many

    if wants_many(argv):  # several files: each optimized on its own, on a process pool or Ray
        return main_many(argv)
    try:
        args = parse_args(argv)
    except UsageError as exc:
        print(f"{PROG}: error: {_input_name(argv)}: {exc}", file=sys.stderr)
        return 2
    say = (lambda _msg: None) if args.json else print
    env: LlvmEnv | None = None
    try:
        benchmark = load_input(args.input)
        _check_output_path(args)
        env = LlvmEnv(reward_space=REWARD_SPACE, action_space=args.action_space)
        try:
            env.reset(benchmark=benchmark)
        except CompilerDreamError as exc:
            raise InputError(_one_line(str(exc))) from None
        summary = optimize(args, benchmark, env, say)
    except (InputError, UsageError) as exc:
        print(f"{PROG}: error: {args.input}: {exc}", file=sys.stderr)
        return 2
    except CompilerDreamError as exc:
        print(f"{PROG}: error: {args.input}: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    finally:
        if env is not None:
            env.close()
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print_summary(summary)
    if summary["output"] is None:
        print(f"{PROG}: error: {args.input}: even -Oz's output fails validation; no bitcode written", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
