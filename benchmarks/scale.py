"""Throughput of `compilerdream evaluate` on a local process pool against Ray, in one run, and how Ray scales.

A measurement, not a test. The same `evaluate` command (default: 200 programs of the default
corpus's test split, spread over its packages as `quality.py --limit` spreads them; -Oz and
random search with a fixed number of compilations, so results do not depend on timing) runs as
a subprocess, end to end (Ray's start-up included):

1. `--jobs J` (local process pool) and `--executor ray --jobs J` (a Ray runtime started by the
   command with J CPUs), alternating, `--repeats` times each; the ratio of median wall times is
   Ray's overhead (target: <= 1.15 on 2 cores). Both must give the same results.
2. A simulated cluster on this machine (`ray.cluster_utils.Cluster`: a head without CPUs, then
   one and two worker nodes of `--node-cpus` CPUs each, joined with `--ray-address`): programs per
   second with one node and with two. On one machine the nodes share its cores, so the figure
   per added node is what a node of that many CPUs adds (with the cross-node scheduling), not a
   measurement on separate machines.

    python3 benchmarks/scale.py                      # 200 programs, about 10 minutes on 2 cores
    python3 benchmarks/scale.py --programs 40 --repeats 1 --no-cluster

Writes --out/scale.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
for path in (REPO, HERE):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

PROG = "scale.py"


def pick_programs(dataset: str, split: str, n: int) -> list[str]:
    from quality import spread_subset

    from compilerdream.evaluate import dataset_benchmarks

    uris = dataset_benchmarks(dataset, split, None)
    if not uris:
        raise SystemExit(f"{PROG}: error: --dataset {dataset} --split {split}: no programs (build it: compilerdream datasets build-default)")
    return list(spread_subset(uris, n))


def evaluate_command(programs: list[str], out: Path, args, extra: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "compilerdream", "evaluate", "--benchmarks", *programs, "--methods", args.methods,
        "--search-compilations", str(args.compilations), "--seed", "0", "--out", str(out), *extra,
    ]  # fmt: skip


def timed(cmd: list[str], env: dict) -> float:
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{PROG}: error: {' '.join(cmd[:5])} ... failed: {proc.stderr.strip().splitlines()[-1:]}")
    return seconds


def comparable(out: Path) -> list[dict]:
    rows = json.loads((out / "results.json").read_text())
    return sorted(({k: v for k, v in r.items() if k != "walltime"} for r in rows), key=lambda r: (r["benchmark"], r["method"]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="default")
    p.add_argument("--split", default="test")
    p.add_argument("--programs", type=int, default=200)
    p.add_argument("--methods", default="oz,random")
    p.add_argument("--compilations", type=int, default=100, help="random search budget per program")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="local pool size and CPUs of the Ray runtime")
    p.add_argument("--repeats", type=int, default=2, help="runs of each executor, alternating")
    p.add_argument("--node-cpus", type=int, default=1, help="CPUs per simulated cluster node")
    p.add_argument("--cluster-programs", type=int, default=100, help="programs of the simulated-cluster runs (the first N)")
    p.add_argument("--no-cluster", action="store_true", help="skip the simulated cluster")
    p.add_argument("--out", default="runs/scale")
    args = p.parse_args(argv)
    if args.programs <= 0 or args.repeats <= 0 or args.jobs <= 0 or args.node_cpus <= 0:
        raise SystemExit(f"{PROG}: error: --programs, --repeats, --jobs and --node-cpus must be positive")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    programs = pick_programs(args.dataset, args.split, args.programs)
    load_start = round(os.getloadavg()[0], 2)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    print(f"{PROG}: {len(programs)} programs of {args.dataset}/{args.split}; methods {args.methods}, "
          f"{args.compilations} compilations; jobs {args.jobs}; load average {load_start:.1f}", file=sys.stderr)  # fmt: skip

    # 1. local pool against Ray on this machine, alternating so that load changes hit both
    times: dict[str, list[float]] = {"local": [], "ray": []}
    for r in range(args.repeats):
        for kind, extra in (("local", ["--jobs", str(args.jobs)]), ("ray", ["--executor", "ray", "--jobs", str(args.jobs)])):
            run_out = out / f"{kind}-{r}"
            if run_out.exists():  # a fresh run each time: the executor path resumes from an old results.jsonl
                for f in run_out.iterdir():
                    f.unlink()
            seconds = timed(evaluate_command(programs, run_out, args, extra), env)
            times[kind].append(seconds)
            print(f"  {kind:5s} run {r + 1}: {seconds:7.1f} s  ({len(programs) / seconds:.2f} programs/s)", file=sys.stderr)
    same = comparable(out / "local-0") == comparable(out / "ray-0")
    local_s, ray_s = statistics.median(times["local"]), statistics.median(times["ray"])
    result: dict = {
        "programs": len(programs), "methods": args.methods, "compilations": args.compilations, "jobs": args.jobs,
        "local_seconds": times["local"], "ray_seconds": times["ray"],
        "local_programs_per_s": len(programs) / local_s, "ray_programs_per_s": len(programs) / ray_s,
        "ray_over_local": ray_s / local_s, "same_results": same, "cpus": os.cpu_count(),
        "command": " ".join(["python3", "benchmarks/scale.py", *(sys.argv[1:] if argv is None else argv)]),
        "load_average_start": load_start, "cluster_programs": args.cluster_programs, "node_cpus": args.node_cpus,
    }  # fmt: skip

    # 2. a simulated cluster: one node, then two
    if not args.no_cluster:
        from ray.cluster_utils import Cluster

        head = {"num_cpus": 0, "include_dashboard": False, "_system_config": {"worker_niceness": 0}}
        cluster = Cluster(initialize_head=True, head_node_args=head)
        try:
            for n in (1, 2):  # the first node, then a second one joins
                cluster.add_node(num_cpus=args.node_cpus)
                cluster.wait_for_nodes()
                run_out = out / f"cluster-{n}"
                if run_out.exists():
                    for f in run_out.iterdir():
                        f.unlink()
                subset = programs[: args.cluster_programs]
                seconds = timed(evaluate_command(subset, run_out, args, ["--executor", "ray", "--ray-address", cluster.address]), env)
                result[f"cluster_{n}_nodes_seconds"] = seconds
                result[f"cluster_{n}_nodes_programs_per_s"] = len(subset) / seconds
                print(f"  cluster of {n} node(s) x {args.node_cpus} CPU, {len(subset)} programs: {seconds:7.1f} s  "
                      f"({len(subset) / seconds:.2f} programs/s)", file=sys.stderr)  # fmt: skip
        finally:
            cluster.shutdown()
        one, two = result["cluster_1_nodes_programs_per_s"], result["cluster_2_nodes_programs_per_s"]
        result["added_node_programs_per_s"] = two - one
        result["scaling_efficiency_2_nodes"] = two / (2 * one)

    (out / "scale.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"\n| executor | wall s (median of {args.repeats}) | programs/s |")
    print("|---|---:|---:|")
    print(f"| local pool, --jobs {args.jobs} | {local_s:.1f} | {result['local_programs_per_s']:.2f} |")
    print(f"| Ray, runtime started by the command, {args.jobs} CPUs | {ray_s:.1f} | {result['ray_programs_per_s']:.2f} |")
    print(f"\nRay / local wall time: {result['ray_over_local']:.3f} (target <= 1.15); same results: {same}")
    if not args.no_cluster:
        print(
            f"simulated cluster ({args.node_cpus} CPU per node): 1 node {result['cluster_1_nodes_programs_per_s']:.2f} "
            f"programs/s, 2 nodes {result['cluster_2_nodes_programs_per_s']:.2f} programs/s: "
            f"+{result['added_node_programs_per_s']:.2f} programs/s per added node, "
            f"efficiency {result['scaling_efficiency_2_nodes']:.2f}"
        )
    print(f"written: {out / 'scale.json'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
