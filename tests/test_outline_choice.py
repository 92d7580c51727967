"""Smoke test of benchmarks/outline_choice.py: one real run on two small programs, its invariants and outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from compilerdream.compiler.default_optimizer import OUTLINE_PIPELINES
from compilerdream.compiler.toolchain import find_tool

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))  # importable by name
import outline_choice  # noqa: E402

needs_llvm = pytest.mark.skipif(find_tool("clang", required=False) is None, reason="clang-19 is required")


def repeated_code(path: Path) -> Path:
    """A C program whose six functions repeat one long block: LLVM's IR outliner shrinks it well below -Oz."""
    lines = ["struct S { int a, b, c, d; int *p; };", "extern void use(struct S *, int);", "extern int get(int);"]
    for k in range(6):
        lines.append(
            f"void f{k}(struct S *s, int x) {{ s->a = get(x); s->b = get(s->a + 3); s->c = s->a * s->b; "
            f"use(s, s->c); s->p[s->a] = s->b; use(s, s->d); s->d = get(s->c) + s->b; use(s, s->a - s->d); "
            f"s->p[s->c] = get({k}); }}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("outline_choice")
    programs = [str(repeated_code(root / "repeated.c")), str(REPO / "examples" / "programs" / "qsort.c")]
    out = root / "out"
    argv = [*programs, "--search-compilations", "200", "--out", str(out), "--no-progress"]
    code = outline_choice.main(argv)
    return code, out


@needs_llvm
def test_every_candidate_is_floored_at_base_and_base_at_oz(run):
    code, out = run
    assert code == 0
    data = json.loads((out / "results.json").read_text())
    assert data["measured"] == 2 and "--search-compilations 200" in data["command"]
    names = list(outline_choice.candidates())
    for row in data["rows"]:
        assert row["error"] is None
        assert row["base"] <= row["Oz"]
        assert set(row["candidates"]) == set(names)
        for c in row["candidates"].values():
            assert c["error"] is None
            assert c["count"] == min(c["raw"], row["base"])
    repeated = next(r for r in data["rows"] if r["benchmark"].endswith("repeated.c"))
    shipped = outline_choice.shipped_names(outline_choice.candidates())
    assert len(shipped) == len(OUTLINE_PIPELINES)
    # the outliner finds the repeated block: the shipped set goes well below the base, and the .text shrinks
    best = min(repeated["candidates"][n]["count"] for n in shipped)
    assert best < 0.8 * repeated["base"]
    assert min(repeated["candidates"][n]["text"] for n in shipped) < repeated["text_base"]


@needs_llvm
def test_set_rows_are_the_best_of_their_members(run):
    _, out = run
    data = json.loads((out / "results.json").read_text())
    rows, summary = data["rows"], {s["row"]: s for s in data["summary"]}
    first = data["summary"][0]
    assert first["members"] is None and first["row"].startswith("base")
    shipped = next(s for s in data["summary"] if "shipped" in s["row"])
    assert [data["candidates"][n] for n in shipped["members"]] == list(OUTLINE_PIPELINES)
    finals = [min(r["candidates"][n]["count"] for n in shipped["members"]) for r in rows]
    mean = sum(100 * (r["Oz"] - f) / r["Oz"] for r, f in zip(rows, finals)) / len(rows)
    assert shipped["mean_percent_below_oz"] == pytest.approx(mean)
    assert shipped["improved"] == sum(f < r["base"] for r, f in zip(rows, finals))
    singles = [s for s in data["summary"] if s["members"] and len(s["members"]) == 1]
    pair = next(s for s in data["summary"] if "best replayable pair" in s["row"])
    ceiling = data["summary"][-1]
    assert pair["mean_percent_below_oz"] >= max(s["mean_percent_below_oz"] for s in singles) - 1e-9
    assert ceiling["mean_percent_below_oz"] >= pair["mean_percent_below_oz"] - 1e-9
    assert all(s["mean_percent_below_oz"] >= first["mean_percent_below_oz"] - 1e-9 for s in summary.values())
    text = (out / "summary.md").read_text()
    assert data["command"] in text and "× base" in text and "shipped OUTLINE_PIPELINES" in text


def test_the_test_split_is_refused_without_allow_test(capsys, tmp_path):
    code = outline_choice.main(["--split", "test", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--allow-test" in err[0]
    assert not (tmp_path / "out").exists()
