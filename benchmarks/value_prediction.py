"""Value prediction's k-table on unseen programs: does the agent's ranking of the coreset earn its place?

A measurement, not a test. The agent (a checkpoint, `default` = the shipped one) imagines every
sequence of the coreset on each program and ranks them; the table compares compiling only its
top k = 1, 3, 5, 10 sequences against the same number of sequences in coreset order (no model),
every sequence (the oracle), the best single fixed sequence and -Oz, on the same programs in one
run, with the rank correlation between predicted and real results
(`compilerdream.coreset.k_table`). Programs: a spread subset of the default corpus's test split
(packages never seen in training), as `benchmarks/quality.py --limit` picks them.

    python benchmarks/value_prediction.py --checkpoint default              # 70 test programs
    python benchmarks/value_prediction.py --checkpoint runs/vp --limit 20 --coreset nvp50

Outputs under --out (default runs/value-prediction): results.json, results.csv, k_table.csv,
summary.md, test_detail.jsonl (as examples/test_on_coreset.py writes them).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from quality import spread_subset  # noqa: E402

from compilerdream.compiler.benchmarks import resolve_benchmark  # noqa: E402
from compilerdream.optimize import positive  # noqa: E402
from compilerdream.pretrained import resolve_checkpoint  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, type=resolve_checkpoint, help="agent directory or `default`")
    p.add_argument("--dataset", default="default")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--limit", type=positive(int), default=70, help="programs, spread over packages (default 70)")
    p.add_argument("--coreset", default="default", help="default, nvp50 or a coreset JSON file")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/value-prediction")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    from compilerdream.coreset import TOP_K, check_coreset_agent, k_table_markdown, run_coreset
    from compilerdream.driver import seed_everything
    from compilerdream.evaluate import UsageError, dataset_benchmarks
    from compilerdream.search import BenchmarkRef, load_agent
    from compilerdream.task import TaskSettings, coreset_action_sequences

    try:
        uris = dataset_benchmarks(args.dataset, args.split, None)
        agent, config = load_agent(args.checkpoint, args.device)
        settings = TaskSettings.from_config(config)
        check_coreset_agent(agent, settings)
        sequences = coreset_action_sequences(args.coreset, settings)
    except (UsageError, FileNotFoundError, ValueError) as exc:
        p.error(str(exc).splitlines()[0])
    if not uris:
        p.error(f"--dataset {args.dataset} --split {args.split}: the split is empty")
    seed_everything(args.seed)
    chosen = spread_subset(uris, args.limit)
    print(f"{len(chosen)} of {len(uris)} programs of {args.dataset}/{args.split}; coreset {args.coreset}: "
          f"{len(sequences)} sequences; agent {args.checkpoint}")  # fmt: skip
    refs = [BenchmarkRef(uri, lambda uri=uri: resolve_benchmark(uri)) for uri in chosen]
    data = run_coreset(agent, refs, settings, Path(args.out), TOP_K, sequences=sequences,
                       state_mean=bool(config.get("eval_state_mean", True)))  # fmt: skip
    print(k_table_markdown(data["k_table"]))
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
