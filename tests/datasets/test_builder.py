"""The corpus builder: failures and duplicates reported, empty modules dropped, resumable, splits by group."""

from __future__ import annotations

import json
import os

import pytest

from compilerdream.compiler.datasets import FileDataset, read_metadata, split
from compilerdream.compiler.datasets.builder import _run_tasks, assign_splits, build, collect_items
from compilerdream.compiler.datasets.cli import main
from compilerdream.compiler.toolchain import parse_depfile

GOOD = "int f(int a) { int s = 0; for (int i = 0; i < a; i++) s += i * a; return s; }\n"


def _tree(root):
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "good.c").write_text(GOOD)
    (root / "pkg" / "copy.c").write_text("// same code, other file\n" + GOOD)
    (root / "pkg" / "bad.c").write_text("int g(void) { return undefined_name; }\n")
    (root / "pkg" / "empty.c").write_text("typedef int nothing_here;\n")
    (root / "pkg" / "sub" / "h.c").write_text('#include "h.h"\nint h(int x) { return helper(x) * 3; }\n')
    (root / "pkg" / "sub" / "h.h").write_text("static int helper(int x) { return x + 1; }\n")
    (root / "pkg" / "sub" / "k.cc").write_text(
        "template <class T> T twice(T x) { return x + x; }\nint k(int v) { return twice(v); }\n"
    )
    return root / "pkg"


def test_build_reports_failures_duplicates_and_empty_modules(tmp_path):
    pkg = _tree(tmp_path / "src")
    out = tmp_path / "out"
    report = build(collect_items([pkg]), out, jobs=2, progress=False)
    assert report.modules == 3  # good.c (copy.c is its duplicate), sub/h.c, sub/k.cc
    assert list(report.failures) == ["pkg/bad.bc"]
    assert (
        "undefined_name" in report.failures["pkg/bad.bc"]["error"]
        and "error:" in report.failures["pkg/bad.bc"]["error"]
    )
    assert report.duplicates == {"pkg/good.bc": report.duplicates["pkg/good.bc"]}
    assert report.duplicates["pkg/good.bc"]["of"] == "pkg/copy.bc"  # the smallest name of identical modules is kept
    assert list(report.empty) == ["pkg/empty.bc"]
    manifest = json.loads((out / "manifest.json").read_text())
    entry = manifest["benchmarks"]["pkg/sub/h.bc"]
    assert entry["o0"] > 0 and 0 < entry["oz"] <= entry["o0"] and len(entry["source_sha256"]) == 64
    assert manifest["flags"] == ["-O1", "-Xclang", "-disable-llvm-passes"]
    assert sorted(read_metadata(out / "metadata.json")) == ["pkg/copy.bc", "pkg/sub/h.bc", "pkg/sub/k.bc"]
    assert not (out / "pkg" / "good.bc").exists() and not (out / "pkg" / "bad.bc").exists()
    dataset = FileDataset(out)
    assert sum(len(split(dataset, m)) for m in ("train", "val", "test")) == 3


def test_resumed_build_reuses_unchanged_files(tmp_path):
    pkg = _tree(tmp_path / "src")
    out = tmp_path / "out"
    build(collect_items([pkg]), out, jobs=1, progress=False)
    again = build(collect_items([pkg]), out, jobs=1, progress=False)
    assert again.skipped_resumed == 6 and again.modules == 3
    (pkg / "bad.c").write_text("int g(void) { return 4; }\n")  # fixed: only this one is rebuilt
    third = build(collect_items([pkg]), out, jobs=1, progress=False)
    assert third.skipped_resumed == 5 and third.modules == 4 and not third.failures


def test_a_header_edit_rebuilds_the_files_that_include_it(tmp_path):
    pkg = tmp_path / "src" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "size.h").write_text("#define N 1\n")
    (pkg / "uses.c").write_text('#include "size.h"\nint a[N]; int f(int i) { return i < N ? a[i] : 0; }\n')
    (pkg / "plain.c").write_text("int g(int x) { return x + 1; }\n")
    out = tmp_path / "out"
    first = build(collect_items([pkg]), out, jobs=1, progress=False)
    entry = json.loads((out / "manifest.json").read_text())["benchmarks"]["pkg/uses.bc"]
    assert first.modules == 2 and entry["headers"] == [str((pkg / "size.h").resolve())]
    assert build(collect_items([pkg]), out, jobs=1, progress=False).skipped_resumed == 2
    (pkg / "size.h").write_text("#define N 8\n#define UNUSED 1\n")  # the source file itself is unchanged
    third = build(collect_items([pkg]), out, jobs=1, progress=False)
    assert third.skipped_resumed == 1 and third.modules == 2  # only uses.c was compiled again
    rebuilt = json.loads((out / "manifest.json").read_text())["benchmarks"]["pkg/uses.bc"]
    assert rebuilt["headers_sha256"] != entry["headers_sha256"]


def test_link_dirs_makes_one_module_per_folder(tmp_path):
    pkg = _tree(tmp_path / "src")
    (pkg / "bad.c").unlink()
    (pkg / "copy.c").unlink()  # defines f() like good.c: llvm-link would refuse the pair
    report = build(collect_items([pkg], link_dirs=True), tmp_path / "out", jobs=1, progress=False)
    assert sorted(json.loads((tmp_path / "out" / "manifest.json").read_text())["benchmarks"]) == [
        "pkg.bc",
        "pkg/sub.bc",
    ]
    assert report.modules == 2


def test_assign_splits_keeps_groups_whole_and_is_deterministic():
    groups = {f"pkg{i}": 10 for i in range(20)}
    first = assign_splits(groups)
    assert first == assign_splits(dict(reversed(list(groups.items()))))
    counts = {mode: sum(groups[g] for g, m in first.items() if m == mode) for mode in ("train", "val", "test")}
    assert counts == {"train": 160, "val": 20, "test": 20}
    assert set(assign_splits({"a": 3, "b": 4}).values()) == {"train"}


def _exit_on_crash(task):  # runs in a pool worker
    if task["name"] == "crash":
        os._exit(134)  # what an LLVM abort looks like to the pool
    return {"name": task["name"], "status": "ok"}


def test_a_dying_worker_fails_only_its_task():
    results = {}
    tasks = [{"name": n} for n in ("a", "b", "crash", "c", "d", "e")]
    _run_tasks(tasks, 2, lambda r: results.__setitem__(r["name"], r["status"]), worker=_exit_on_crash)
    assert results == {"a": "ok", "b": "ok", "crash": "failed", "c": "ok", "d": "ok", "e": "ok"}


def test_cli_build_and_errors(tmp_path, capsys):
    pkg = _tree(tmp_path / "src")
    assert (
        main(
            [
                "build",
                str(pkg),
                "--out",
                str(tmp_path / "out"),
                "--jobs",
                "2",
                "--flags=-O0 -Xclang -disable-O0-optnone",
            ]
        )
        == 0
    )
    assert "3 modules" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["flags"] == [
        "-O0",
        "-Xclang",
        "-disable-O0-optnone",
    ]
    assert main(["build", str(tmp_path / "missing"), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("compilerdream datasets: error: source not found") and "Traceback" not in err


@pytest.mark.parametrize(
    "argv", [["info", "no-such-dataset"], ["install", "cbench-v1", "--no-download"], ["install", "nope-v9"]]
)
def test_cli_errors_are_one_message_and_exit_code_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("compilerdream datasets: error:") and "Traceback" not in err


def test_parse_depfile_handles_continuations_and_escaped_spaces():
    text = "out.bc: /src/a\\ b.c /inc/x.h \\\n  /inc/dir\\ 2/y.h\n"
    assert parse_depfile(text) == ["/src/a b.c", "/inc/x.h", "/inc/dir 2/y.h"]
    assert parse_depfile("out.bc: /src/only.c\n") == ["/src/only.c"]
