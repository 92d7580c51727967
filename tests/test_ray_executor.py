"""`--executor ray` against the local executor, on a real local Ray runtime (ray.init(num_cpus=2)).

Same results as local for search, evaluate, datasets build, coreset build and quality.py; a driver
killed half way resumes from what it wrote. The two-node cluster tests are in test_ray_cluster.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compilerdream.compiler.errors import CompilerDreamError
from compilerdream.compiler.executor import LocalExecutor, RayExecutor, RayMissingError, make_executor
from compilerdream.compiler.search import Budget, make_policy, run_search
from compilerdream.compiler.search_executor import run_search_on

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed (scripts/setup.sh installs it)")

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = [ROOT / "tests" / "fixtures" / "programs" / n for n in ("qsort.c", "crc32.c", "matmul.c", "statemachine.c")]
METHODS = ("oz", "random", "greedy", "coreset")


@pytest.fixture(scope="module")
def ray_runtime():
    """One real local Ray runtime for the module (starting one costs seconds)."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="warning")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _square(x: int, offset: int) -> int:
    return x * x + offset


def _explode(x: int) -> int:
    if x == 2:
        raise ValueError("two is bad")
    return x


def _comparable(results) -> list[dict]:
    rows = [r if isinstance(r, dict) else r.to_json() for r in results]
    return sorted(({k: v for k, v in r.items() if k != "walltime"} for r in rows), key=lambda r: (r["benchmark"], r["method"]))


def test_map_unordered_gives_every_item_once_and_isolates_a_failing_task(ray_runtime):
    with make_executor("ray", ray_address=ray_runtime) as ex:
        assert isinstance(ex, RayExecutor) and ex.jobs == 2
        got = {item: value for item, value, error in ex.map_unordered(_square, range(6), 10)}
        assert got == {i: i * i + 10 for i in range(6)}
        outcomes = {item: (value, error) for item, value, error in ex.map_unordered(_explode, [1, 2, 3])}
    assert outcomes[1] == (1, None) and outcomes[3] == (3, None)
    assert outcomes[2][0] is None and "two is bad" in str(outcomes[2][1])
    assert ray.is_initialized(), "an executor that joined a runtime leaves it running"
    local = {item: value for item, value, _ in LocalExecutor(2).map_unordered(_square, range(6), 10)}
    assert local == got


def test_missing_ray_is_one_line_with_the_install_command():
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from compilerdream.compiler.search_cli import main\n"
        "sys.exit(main(['tests/fixtures/programs/qsort.c', '--executor', 'ray']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'compilerdream[ray]'" in lines[0], proc.stderr
    with pytest.raises(CompilerDreamError, match="--ray-address needs --executor ray"):
        make_executor("local", 1, "auto")
    assert issubclass(RayMissingError, Exception)


def test_search_on_ray_matches_local_and_writes_per_program(ray_runtime, program_bitcode, tmp_path):
    budget = Budget(compilations=30)
    programs = [str(program_bitcode[p.stem]) for p in PROGRAMS[:3]]
    policies = [make_policy(m) for m in METHODS]
    budgets = {"-Oz": Budget(compilations=1)}
    local = run_search(policies, programs, budget, seed=5, progress=False, budgets=budgets)
    specs = [(m, {}) for m in METHODS]
    with make_executor("ray", ray_address=ray_runtime) as ex:
        remote = run_search_on(ex, specs, programs, budget, seed=5, out_dir=tmp_path, progress=False, budgets=budgets)
    assert [(r.benchmark, r.method) for r in remote] == [(r.benchmark, r.method) for r in local], "run_search's order"
    assert _comparable(remote) == _comparable(local)
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == len(programs) and all(len(json.loads(line)) == len(METHODS) for line in lines)
    assert _comparable(json.loads((tmp_path / "results.json").read_text())) == _comparable(local)


@pytest.mark.slow
def test_evaluate_on_ray_matches_local(ray_runtime, tmp_path):
    from compilerdream.evaluate import main

    common = ["--benchmarks", *map(str, PROGRAMS[:3]), "--methods", "oz,random,greedy", "--search-compilations", "30"]
    assert main([*common, "--out", str(tmp_path / "local")]) == 0
    assert main([*common, "--out", str(tmp_path / "ray"), "--executor", "ray", "--ray-address", ray_runtime]) == 0
    local = json.loads((tmp_path / "local" / "results.json").read_text())
    remote = json.loads((tmp_path / "ray" / "results.json").read_text())
    assert _comparable(remote) == _comparable(local) and len(local) == 9


def test_killed_driver_resumes_without_redoing_finished_programs(ray_runtime, program_bitcode, tmp_path):
    """`compilerdream search --executor ray` killed after its first program; the rerun finishes the rest."""
    out = tmp_path / "run"
    programs = [str(program_bitcode[n]) for n in ("qsort", "crc32", "matmul", "statemachine", "csmith_94", "csmith_258")]
    argv = [sys.executable, "-m", "compilerdream", "search", *programs, "--methods", "oz,random",
            "--compilations", "200", "--seed", "2", "--out", str(out), "--executor", "ray", "--ray-address", ray_runtime]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = out / "results.jsonl"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if partial.exists() and partial.read_text().count("\n") >= 1:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    before = partial.read_text().splitlines()
    assert 1 <= len(before) < len(programs), "killed after its first finished program, before its last"
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    after = partial.read_text().splitlines()
    complete = [line for line in before if line.endswith("]")]
    assert after[: len(complete)] == complete, "finished programs were kept, not searched again"
    uris = [json.loads(line)[0]["benchmark"] for line in after if line.endswith("]")]
    assert sorted(set(uris)) == sorted(uris) and len(uris) == len(programs)
    local = run_search(
        [make_policy(m) for m in ("oz", "random")], programs, Budget(compilations=200),
        seed=2, progress=False, budgets={"-Oz": Budget(compilations=1), "-O3": Budget(compilations=1)},
    )  # fmt: skip
    assert _comparable(json.loads((out / "results.json").read_text())) == _comparable(local)


@pytest.mark.slow
def test_dataset_build_on_ray_matches_local(ray_runtime, tmp_path):
    from compilerdream.compiler.datasets.builder import build, collect_items

    src = tmp_path / "src" / "pkg"
    src.mkdir(parents=True)
    for p in PROGRAMS:
        (src / p.name).write_text(p.read_text())
    (src / "bad.c").write_text("int g(void) { return undefined_name; }\n")
    local = build(collect_items([src]), tmp_path / "local", jobs=1, progress=False)
    with make_executor("ray", ray_address=ray_runtime) as ex:
        remote = build(collect_items([src]), tmp_path / "ray", jobs=1, progress=False, executor=ex)
    assert remote.modules == local.modules == len(PROGRAMS) and list(remote.failures) == list(local.failures)
    for name in sorted(p.name for p in (tmp_path / "local").rglob("*.bc")):
        assert (tmp_path / "ray" / "pkg" / name).read_bytes() == (tmp_path / "local" / "pkg" / name).read_bytes()
    strip = lambda m: {k: v for k, v in m.items() if k not in ("created", "seconds", "out")}  # noqa: E731
    lm = json.loads((tmp_path / "local" / "manifest.json").read_text())
    rm = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert strip(rm)["benchmarks"] == strip(lm)["benchmarks"]


@pytest.mark.slow
def test_coreset_build_on_ray_matches_local(ray_runtime, tmp_path):
    from compilerdream.compiler.benchmarks import Benchmark
    from compilerdream.compiler.coreset_build import BuildSettings, build

    root = tmp_path / "data"
    folder = root / "tiny"
    folder.mkdir(parents=True)
    splits = {"train": PROGRAMS[:3], "val": PROGRAMS[3:], "test": PROGRAMS[3:]}
    for mode, sources in splits.items():
        names = [f"{mode}_{s.stem}.bc" for s in sources]
        for src, name in zip(sources, names):
            (folder / name).write_bytes(Benchmark.from_file(src).data)
        meta = {"train": "metadata_train.json", "val": "metadata_valid.json", "test": "metadata_test.json"}[mode]
        (folder / meta).write_text(json.dumps(names))
    settings = dict(dataset="file_dataset_tiny", k=3, lengths=(4, 12), programs=3, val_programs=1,
                    search_compilations=30, max_passes=200, seed=3, data_root=str(root))  # fmt: skip
    local = build(BuildSettings(**settings), tmp_path / "local", jobs=1, progress=False)
    with make_executor("ray", ray_address=ray_runtime) as ex:
        remote = build(BuildSettings(**settings), tmp_path / "ray", jobs=1, progress=False, executor=ex)
    assert [s.to_json() for s in remote.sequences] == [s.to_json() for s in local.sequences]
    drop = lambda f: {k: v for k, v in f.items() if "seconds" not in k}  # noqa: E731
    assert drop(remote.meta["figures"]) == drop(local.meta["figures"])


def test_quality_on_ray_matches_local(ray_runtime, program_bitcode, tmp_path):
    spec = importlib.util.spec_from_file_location("quality_under_ray_test", ROOT / "benchmarks" / "quality.py")
    quality = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = quality  # its dataclasses look their module up
    spec.loader.exec_module(quality)
    programs = [str(program_bitcode[p.stem]) for p in PROGRAMS[:2]]
    common = [*programs, "--methods", "oz,coreset,random", "--search-compilations", "20", "--no-progress"]
    assert quality.main([*common, "--out", str(tmp_path / "local")]) == 0
    assert quality.main([*common, "--out", str(tmp_path / "ray"), "--executor", "ray", "--ray-address", ray_runtime]) == 0

    def rows(name):
        data = json.loads((tmp_path / name / "results.json").read_text())
        return sorted(
            ({k: v for k, v in r.items() if k != "walltime"} for r in data["results"]),
            key=lambda r: (r["benchmark"], r["method"]),
        )

    assert rows("ray") == rows("local")
    assert not (tmp_path / "ray" / "results.partial.jsonl").exists()


@pytest.mark.slow
def test_local_process_pool_search_matches_sequential(tmp_path):
    """The same runner on the local pool (`--jobs 2`) gives the sequential results (no Ray involved)."""
    budget = Budget(compilations=30)
    local = run_search([make_policy("random")], [str(p) for p in PROGRAMS[:2]], budget, seed=1, progress=False)
    pooled = run_search_on(LocalExecutor(2), [("random", {})], [str(p) for p in PROGRAMS[:2]], budget, seed=1, progress=False)
    assert _comparable(pooled) == _comparable(local)
    assert os.cpu_count()


def test_optimize_many_files_on_ray_matches_local_and_resumes(ray_runtime, program_bitcode, tmp_path, capsys):
    from compilerdream.optimize import main

    programs = [str(program_bitcode[n]) for n in ("qsort", "crc32")]
    common = ["--search-compilations", "60", "--coreset", "none", "--seed", "3"]
    assert main([*programs, *common, "--out-dir", str(tmp_path / "local")]) == 0
    assert main([*programs, *common, "--out-dir", str(tmp_path / "ray"), "--executor", "ray", "--ray-address", ray_runtime]) == 0

    def summaries(name):
        lines = (tmp_path / name / "optimize.jsonl").read_text().splitlines()
        keep = ("method", "passes", "commandline", "O0", "Oz", "result")
        return {Path(s["input"]).name: {k: s[k] for k in keep} for s in (json.loads(line)["summary"] for line in lines)}

    assert summaries("ray") == summaries("local") and len(summaries("local")) == 2
    for name in ("qsort", "crc32"):
        assert (tmp_path / "ray" / f"{name}.opt.bc").read_bytes() == (tmp_path / "local" / f"{name}.opt.bc").read_bytes()
    capsys.readouterr()
    assert main([*programs, *common, "--out-dir", str(tmp_path / "local")]) == 0  # everything done: nothing redone
    assert "resuming: 2 of 2" in capsys.readouterr().err
    assert len((tmp_path / "local" / "optimize.jsonl").read_text().splitlines()) == 2
    assert main([*programs, "-o", "x.bc"]) == 2
    assert "--out-dir" in capsys.readouterr().err.strip().splitlines()[-1]
