"""Do `optimize`'s outlining pipelines keep what programs compute? A differential check with lli.

A measurement, not a test. LLVM's IR outliner is in neither -Oz nor CompilerGym's actions, and
`optimize` keeps its output wherever it has fewer instructions, so its correctness matters more
than a count can show. On csmith programs (they print a checksum of all their state and need no
input), it runs each program's bitcode with `lli-19` (`-O0`: interpreted as written), then:

* `shipped`: each pipeline of `O0_OUTLINE` on the unoptimized program, and each of
  `OUTLINE_PIPELINES` after -Oz (`default<Oz>,<pipeline>`), as `optimize` applies them: as they
  are, and under each of `optimize`'s opt option sets (`OPTION_CANDIDATES`, after `forceattrs`);
* `no cost model` (the peer): the same pipelines under opt's `-ir-outlining-no-cost`, the
  outliner without its cost model, which outlines every repeated region it finds;

and runs each output the same way. A program whose output (stdout and exit status) differs from
the unoptimized program's counts as a miscompile; one whose reference run times out or fails is
skipped; an output that times out counts separately. The table gives, per pipeline, the programs
checked, how many kept their output, changed it, or timed out, and the shipped pipelines'
miscompiles against the peer's.

    python3 benchmarks/outline_check.py --limit 200 --jobs 2    # the shipped result: the first 200 csmith programs
                                                                # of the default corpus (train split), ~10 minutes
    python3 benchmarks/outline_check.py progs/*.bc              # any programs with a main and no input

Results: benchmarks/results/outline_check/{results.json,summary.md} (--out).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from quality import UsageError, run_header, script_main  # noqa: E402

from compilerdream.compiler.benchmarks import resolve_benchmark  # noqa: E402
from compilerdream.compiler.default_optimizer import (  # noqa: E402
    MINSIZE_PREPARE,
    O0_OUTLINE,
    OPTION_CANDIDATES,
    OUTLINE_PIPELINES,
)
from compilerdream.compiler.errors import CompilerDreamError  # noqa: E402
from compilerdream.compiler.fileio import atomic_write  # noqa: E402
from compilerdream.compiler.progress import progress_bar  # noqa: E402
from compilerdream.compiler.search import OZ_PIPELINE  # noqa: E402
from compilerdream.compiler.toolchain import find_tool  # noqa: E402
from compilerdream.optimize import positive  # noqa: E402

PROG = "outline_check.py"
DEFAULT_OUT = "benchmarks/results/outline_check"
NO_COST = "-ir-outlining-no-cost"
PEER = ", no cost model"


def pipelines() -> dict[str, str]:
    """The shipped outlining pipelines by name, as `optimize` applies them to a program."""
    named = {f"O0_OUTLINE[{i}]": p for i, p in enumerate(O0_OUTLINE)}
    named.update({f"-Oz, OUTLINE_PIPELINES[{i}]": f"{OZ_PIPELINE},{p}" for i, p in enumerate(OUTLINE_PIPELINES)})
    return named


def variants() -> list[tuple[str, str, tuple[str, ...]]]:
    """(row name, pipeline, opt options): each shipped pipeline as it is, then under each of
    `optimize`'s option sets (after `forceattrs`, as `optimize` prepares the program), then each
    as it is without the cost model."""
    plain = [(name, p, ()) for name, p in pipelines().items()]
    under_options = [
        (f"{name} under {' '.join(options)}", ",".join((*MINSIZE_PREPARE, p)), tuple(options))
        for options in OPTION_CANDIDATES
        for name, p in pipelines().items()
    ]
    return plain + under_options + [(name + PEER, p, (NO_COST,)) for name, p, _ in plain]


def run_program(bitcode: bytes, lli: str, timeout: float) -> tuple[int, bytes] | None:
    """(exit status, stdout) of the program run by lli at -O0; None if it timed out."""
    try:
        proc = subprocess.run([lli, "-O0", "-"], input=bitcode, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    return proc.returncode, proc.stdout


def check(path: str, data: bytes, timeout: float) -> dict:
    """One program (its bitcode `data`): its reference run, then each variant's verdict ("same",
    "changed", "timeout", "opt failed")."""
    opt, lli = find_tool("opt"), find_tool("lli")
    row: dict = {"program": path, "verdicts": {}}
    reference = run_program(data, lli, timeout)
    if reference is None or reference[0] != 0:
        row["skipped"] = "the unoptimized program timed out" if reference is None else f"it exits with {reference[0]}"
        return row
    for name, pipeline, options in variants():
        proc = subprocess.run([opt, *options, f"-passes={pipeline}", "-", "-o", "-"], input=data, capture_output=True, timeout=300)
        if proc.returncode != 0:
            row["verdicts"][name] = "opt failed"
            continue
        got = run_program(proc.stdout, lli, timeout)
        row["verdicts"][name] = "timeout" if got is None else "same" if got == reference else "changed"
    return row


def summarize(rows: list[dict]) -> list[dict]:
    checked = [r for r in rows if "skipped" not in r]
    out = []
    for name, _, _ in variants():
        verdicts = [r["verdicts"].get(name) for r in checked]
        out.append({
            "pipeline": name,
            "checked": len(verdicts),
            "same": verdicts.count("same"),
            "changed": verdicts.count("changed"),
            "timeout": verdicts.count("timeout"),
            "opt failed": verdicts.count("opt failed"),
        })  # fmt: skip
    return out


def table(summary: list[dict]) -> str:
    lines = [
        "| pipeline | programs | output kept | output changed | timed out | opt failed |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in summary:
        lines.append(f"| {s['pipeline']} | {s['checked']} | {s['same']} | {s['changed']} | {s['timeout']} | {s['opt failed']} |")
    return "\n".join(lines)


def default_programs(data_root: str | None, limit: int) -> list[str]:
    from compilerdream.evaluate import UsageError as EvalUsage
    from compilerdream.evaluate import dataset_benchmarks

    try:
        uris = dataset_benchmarks("default", "train", data_root)
    except EvalUsage as exc:
        raise UsageError(str(exc)) from None
    csmith = sorted(u for u in uris if "/csmith/" in u)
    if not csmith:
        raise UsageError("the default corpus's train split has no csmith programs: give programs on the command line")
    return [u[len("file://") :] if u.startswith("file://") else u for u in csmith[:limit]]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("inputs", nargs="*", help="programs (.c/.bc/.ll) with a main and no input (default: the corpus's csmith programs)")
    p.add_argument("--limit", type=positive(int), default=60, help="csmith programs of the default corpus (default 60)")
    p.add_argument("--data-root", default=None, help="datasets folder (default: $COMPILERDREAM_DATA or ./data)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds one run of a program may take (default 10)")
    p.add_argument("--jobs", type=positive(int), default=1, help="programs checked in parallel (default 1)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(dataset="default", split="train")  # where the default programs come from
    return p


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    for tool in ("opt", "lli"):
        try:
            find_tool(tool)
        except CompilerDreamError as exc:
            raise UsageError(str(exc)) from None
    programs = list(args.inputs) if args.inputs else default_programs(args.data_root, args.limit)
    bitcode = []
    for spec in programs:  # read (and C compiled) once, here: a bad input stops the run before any work
        try:
            bitcode.append(resolve_benchmark(spec).data)
        except CompilerDreamError as exc:
            raise UsageError(f"{spec}: {exc}") from None
    what = f"{len(programs)} program(s) given" if args.inputs else f"{len(programs)} csmith programs of the default corpus (train)"
    print(f"{PROG}: {what}; {len(variants())} pipelines each; jobs {args.jobs}", flush=True)
    rows: list[dict] = []
    with ProcessPoolExecutor(args.jobs) as pool, progress_bar(total=len(programs), desc="programs", disable=args.no_progress) as bar:
        for row in pool.map(check, programs, bitcode, [args.timeout] * len(programs)):
            rows.append(row)
            bar.update(1)
    summary = summarize(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {**run_header(f"benchmarks/{PROG}", argv, args, what), "summary": summary, "programs": rows}
    atomic_write(out / "results.json", json.dumps(result, indent=1))
    skipped = sum("skipped" in r for r in rows)
    shipped = sum(s["changed"] for s in summary if not s["pipeline"].endswith(PEER))
    peer = sum(s["changed"] for s in summary if s["pipeline"].endswith(PEER))
    text = (
        f"{table(summary)}\n\n{len(rows) - skipped} programs checked ({skipped} skipped: their unoptimized run "
        f"timed out or failed). Outputs changed: shipped pipelines {shipped}, the same without the cost model {peer}.\n"
    )
    atomic_write(out / "summary.md", f"# {PROG}\n\n`{result['command']}`\n\n{text}")
    print(text + f"wrote {out / 'results.json'} and {out / 'summary.md'}")
    return 1 if shipped else 0


def main(argv: list[str] | None = None) -> int:
    return script_main(PROG, run, argv)


if __name__ == "__main__":
    sys.exit(main())
