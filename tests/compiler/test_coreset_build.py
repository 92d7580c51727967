"""`compilerdream coreset build` and coresets: real LLVM, real small programs, a tiny dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compilerdream.compiler.benchmarks import Benchmark
from compilerdream.compiler.coreset import (
    Coreset,
    CoresetError,
    CoresetPolicy,
    CoresetSequence,
    load_coreset,
    nvp50,
)
from compilerdream.compiler.coreset_build import BuildSettings, build, greedy_cover, main, mean_percent
from compilerdream.compiler.search import Budget, search_benchmark

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = ROOT / "examples" / "programs"
FIXTURES = ROOT / "tests" / "fixtures" / "programs"
SOURCES = {
    "train": [PROGRAMS / "qsort.c", PROGRAMS / "statemachine.c", FIXTURES / "shapes.cc"],
    "val": [PROGRAMS / "crc32.c", PROGRAMS / "matmul.c"],
    "test": [PROGRAMS / "crc32.c"],
}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    """A data root holding `tiny`: a file dataset with train/val/test lists, compiled from real C/C++."""
    root = tmp_path_factory.mktemp("data")
    folder = root / "tiny"
    folder.mkdir()
    for mode, sources in SOURCES.items():
        names = []
        for src in sources:
            name = f"{mode}_{src.stem}.bc"
            (folder / name).write_bytes(Benchmark.from_file(src).data)
            names.append(name)
        (folder / {"train": "metadata_train.json", "val": "metadata_valid.json", "test": "metadata_test.json"}[mode]).write_text(
            json.dumps(names)
        )
    (folder / "metadata.json").write_text(json.dumps(sorted(p.name for p in folder.glob("*.bc"))))
    return root


def tiny_settings(root: Path, **kw) -> BuildSettings:
    base = dict(
        dataset="file_dataset_tiny", k=4, lengths=(4, 12), programs=3, val_programs=2,
        search_compilations=40, max_passes=200, seed=3, data_root=str(root),
    )
    base.update(kw)
    return BuildSettings(**base)


def cli_args(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "build", "--dataset", "file_dataset_tiny", "--data-root", str(root), "--out", str(out), "--k", "4",
        "--lengths", "4,12", "--programs", "3", "--val-programs", "2", "--search-compilations", "40",
        "--max-passes", "200", "--seed", "3", "--jobs", "1", *extra,
    ]


def test_greedy_cover_picks_by_marginal_gain():
    table = [[0.5, 0.4, 0.0], [0.0, 0.4, 0.3], [0.0, 0.0, 0.3]]
    # column 1 covers most alone (0.8); then column 2 adds 0.3 on program 3 (and nothing on 2): 1.1 ... vs column 0 adds 0.1
    assert greedy_cover(table, 2) == [1, 2]
    assert greedy_cover(table, 5) == [1, 2, 0]  # stops when nothing more is gained
    assert mean_percent(table, [1, 2]) == pytest.approx(100 * (0.4 + 0.4 + 0.3) / 3)
    assert mean_percent(table, []) == 0.0


def test_build_writes_a_coreset_that_optimize_uses(tiny_root, tmp_path, capsys):
    out = tmp_path / "cs"
    assert main(cli_args(tiny_root, out)) == 0
    cs = load_coreset(out / "coreset.json")
    assert 1 <= len(cs) <= 4
    assert all(s.start in ("o0", "oz") and 1 <= len(s.passes) <= 12 for s in cs.sequences)
    assert "coreset build" in cs.meta["command"] and "--jobs" not in cs.meta["command"]
    report = (out / "report.md").read_text()
    assert "Validation grid" in report and "chosen" in report
    # the test split was never measured
    work = out / "work"
    seen = {json.loads(line)["uri"] for f in work.glob("*.jsonl") for line in f.read_text().splitlines()}
    assert seen and not any("/test_" in uri for uri in seen)
    # optimize --coreset FILE runs this coreset (never worse than -Oz)
    from compilerdream import optimize

    prog = PROGRAMS / "qsort.c"
    result_path = tmp_path / "q.opt.bc"
    capsys.readouterr()
    code = optimize.main([str(prog), "--coreset", str(out / "coreset.json"), "-o", str(result_path), "--json",
                          "--search-compilations", "200"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["result"] <= summary["Oz"]
    assert any(cs.name in note for note in summary["notes"])


def test_build_is_deterministic_and_a_killed_build_resumes(tiny_root, tmp_path):
    ref = build(tiny_settings(tiny_root), tmp_path / "ref", jobs=1, progress=False)
    out = tmp_path / "killed"
    env = {**os.environ, "COMPILERDREAM_DATA": str(tiny_root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "compilerdream", "coreset", *cli_args(tiny_root, out)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    measure = out / "work" / "measure.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if measure.exists() and measure.read_text().count("\n") >= 1:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    before = {f.name: f.read_text() for f in (out / "work").glob("*.jsonl")}
    assert before.get("candidates.jsonl", "").count("\n") == 3, "the candidates stage finished before the kill"
    resumed = build(tiny_settings(tiny_root), out, jobs=1, progress=False)
    # finished work was kept, not redone: every earlier line is still there, once
    for name, text in before.items():
        after = (out / "work" / name).read_text()
        assert after.startswith(text.rsplit("\n", 1)[0]) or not text.strip()
        uris = [json.loads(line)["uri"] for line in after.splitlines()]
        assert len(uris) == len(set(uris)), f"{name} has a program twice"
    assert [s.to_json() for s in resumed.sequences] == [s.to_json() for s in ref.sequences]
    # and a different setting in the same folder is refused, not mixed in
    with pytest.raises(ValueError, match="other settings"):
        build(tiny_settings(tiny_root, k=2), out, jobs=1, progress=False)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--k", "0"], "--k must be a positive"),
        (["--lengths", "4,x"], "--lengths must be"),
        (["--options", "-disable-lftr -no-such-option=1"], "unknown opt option '-no-such-option=1'"),
    ],
)
def test_bad_build_arguments_are_one_line(tiny_root, tmp_path, capsys, args, message):
    assert main(cli_args(tiny_root, tmp_path / "o", *args)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()  # refused before any work


def test_build_under_opt_options_starts_from_their_oz_and_records_them(tiny_root, tmp_path):
    """--options (optimize's fourth set): each program's -Oz reference and -Oz start are -Oz under
    the options (qsort: 136 against 143), the -O0 start is prepared with forceattrs, the options are
    in the coreset's settings, and a build without them keeps its old fingerprint (no `options` key)."""
    from compilerdream.compiler.default_optimizer import OPTION_CANDIDATES

    options = OPTION_CANDIDATES[3]
    cs = build(tiny_settings(tiny_root, options=options), tmp_path / "opts", jobs=1, progress=False)
    assert cs.meta["settings"]["options"] == list(options) and 1 <= len(cs)
    rows = [json.loads(line) for line in (tmp_path / "opts" / "work" / "measure.jsonl").read_text().splitlines()]
    qsort = next(r for r in rows if r["uri"].endswith("train_qsort.bc"))
    plain = Benchmark.from_file(PROGRAMS / "qsort.c").data
    from compilerdream.compiler._core import Module

    def oz(opts):
        module = Module.load(plain, "qsort")
        module.apply("forceattrs,default<Oz>", list(opts))
        return module.instruction_count()

    assert qsort["Oz"] == oz(options) < oz(())
    pool = json.loads((tmp_path / "opts" / "work" / "pool.json").read_text())
    for cand, best in zip(pool, qsort["best"]):  # a sequence from -Oz starts at -Oz under the options
        assert cand["start"] != "oz" or all(-1 == b or b <= qsort["Oz"] for b in best)
    assert any(c["start"] == "oz" for c in pool)
    assert "options" not in tiny_settings(tiny_root).fingerprint()


def test_missing_and_empty_datasets_are_one_line(tiny_root, tmp_path, capsys):
    argv = cli_args(tiny_root, tmp_path / "o")
    argv[argv.index("file_dataset_tiny")] = "file_dataset_nothere"
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "nothere" in err and "not installed" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()  # refused before anything was written
    empty = tiny_root / "empty"
    empty.mkdir()
    for name in ("metadata.json", "metadata_train.json", "metadata_valid.json", "metadata_test.json"):
        (empty / name).write_text("[]")
    argv[argv.index("file_dataset_nothere")] = "file_dataset_empty"
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "empty" in err and len(err.splitlines()) == 1


def test_unreadable_coreset_files_are_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CoresetError, match="bad.json: cannot read"):
        load_coreset(bad)
    bad.write_text(json.dumps({"sequences": [{"start": "o1", "passes": ["-gvn"]}]}))
    with pytest.raises(CoresetError, match="start must be o0 or oz"):
        load_coreset(bad)
    bad.write_text(json.dumps({"sequences": [{"start": "o0", "passes": ["-not-a-pass"]}]}))
    with pytest.raises(CoresetError, match="unknown pass flag"):
        load_coreset(bad)
    with pytest.raises(CoresetError, match="no such file"):
        load_coreset(tmp_path / "missing.json")


def test_shipped_and_nvp_coresets_load():
    nvp = load_coreset("nvp50")
    assert len(nvp) == 50 and all(s.start == "o0" for s in nvp.sequences)
    assert nvp.sequences == nvp50().sequences
    both = nvp.with_start("both")
    assert len(both) == 100
    shipped = load_coreset("default")
    assert len(shipped) >= 1 and shipped.meta.get("command", "").startswith("compilerdream coreset build")


def test_coreset_policy_finds_the_best_prefix_and_replays(tmp_path):
    """Best prefix over the set, from -O0 and from -Oz; the reported passes replay to `final`."""
    from compilerdream.compiler.env import LlvmEnv

    cs = Coreset("t", [CoresetSequence("o0", ("-mem2reg", "-instcombine", "-simplifycfg")),
                       CoresetSequence("oz", ("-instcombine", "-simplifycfg", "-gvn"))])
    bench = str(PROGRAMS / "qsort.c")
    result = search_benchmark(CoresetPolicy(cs), bench, Budget(compilations=100))
    assert result.error is None and result.compilations == 3 + 1 + 3  # -Oz once, every pass once
    assert result.final <= result.Oz
    # brute force: every prefix of every sequence, measured one by one
    counts = []
    with LlvmEnv() as env:
        for seq in cs.sequences:
            for n in range(len(seq.passes) + 1):
                env.reset(benchmark=bench)
                if seq.actions()[: n + (seq.start == "oz")]:
                    env.multistep(seq.actions()[: n + (seq.start == "oz")])
                counts.append(int(env.observation["IrInstructionCount"]))
        assert result.final == min(counts)
        env.reset(benchmark=bench)
        if result.best_passes:
            env.multistep(result.best_passes)
        assert int(env.observation["IrInstructionCount"]) == result.final
