"""Loaders on archives made here: CompilerDream's data zip, FormAI (zip/JSON/7z), CodeContests (parquet)."""

from __future__ import annotations

import importlib.util
import json
import zipfile

import pytest
from dataset_helpers import make_bitcode

from compilerdream.compiler.datasets import Datasets, dataset_for_task, split
from compilerdream.compiler.datasets.cli import main
from compilerdream.compiler.datasets.importers import (
    CorpusFormatError,
    import_codecontests,
    import_formai,
    install_compilerdream_zip,
)

PROGRAM = '#include <stdio.h>\nint main(void) {{ int s = 0; for (int i = 0; i < {n}; i++) s += i * {n}; printf("%d\\n", s); return 0; }}\n'


def _cdream_zip(path, broken: bool = False):
    with zipfile.ZipFile(path, "w") as arc:
        names = [f"p{i}.bc" for i in range(4)]
        for i, name in enumerate(names):
            arc.writestr(f"data/codecontest/{name}", make_bitcode(i))
            arc.writestr(f"data/formai/f{i}.bc", make_bitcode(10 + i))
        arc.writestr("data/codecontest/metadata_small_train.json", json.dumps(names[:2]))
        arc.writestr("data/codecontest/metadata_small_valid.json", json.dumps(names[2:3]))
        arc.writestr("data/codecontest/metadata_small_test.json", "{broken" if broken else json.dumps(names[3:]))
        arc.writestr("data/formai/metadata.json", json.dumps([f"f{i}.bc" for i in range(4)]))
    return path


def test_compilerdream_zip_installs_the_reference_layout(data_root, tmp_path):
    installed = install_compilerdream_zip(_cdream_zip(tmp_path / "cd.zip"))
    assert sorted(p.name for p in installed) == ["codecontest", "formai"]
    codecontest = dataset_for_task("compilergym_file_dataset_codecontest")
    assert [len(split(codecontest, m)) for m in ("train", "val", "test")] == [2, 1, 1]
    assert split(codecontest, "test")[0] == "file://" + str(data_root / "codecontest" / "p3.bc")
    assert Datasets().benchmark(split(codecontest, "test")[0]).data == make_bitcode(3)
    assert len(split(dataset_for_task("file_dataset_formai"), "test")) == 4
    with pytest.raises(CorpusFormatError, match="already exists"):
        install_compilerdream_zip(tmp_path / "cd.zip")


def test_compilerdream_zip_with_a_bad_list_leaves_nothing(data_root, tmp_path):
    with pytest.raises(Exception, match="metadata"):
        install_compilerdream_zip(_cdream_zip(tmp_path / "bad.zip", broken=True))
    assert not (data_root / "codecontest").exists() and not (data_root / "formai").exists()
    assert [p for p in data_root.iterdir() if not p.name.startswith(".")] == []


def test_cli_installs_compilerdream_data(data_root, tmp_path, capsys):
    assert main(["install", "compilerdream-data", "--from", str(_cdream_zip(tmp_path / "cd.zip"))]) == 0
    assert (data_root / "codecontest" / "p0.bc").is_file()
    assert main(["install", "compilerdream-data"]) == 2
    assert "--from" in capsys.readouterr().err


def test_formai_from_zip_and_json(tmp_path):
    with zipfile.ZipFile(tmp_path / "formai.zip", "w") as arc:
        for n in range(3):
            arc.writestr(f"FormAI/sample_{n}.c", PROGRAM.format(n=n + 2))
        arc.writestr("FormAI/broken.c", "int main( {")
    records = [
        {"file_name": "x.c", "code": PROGRAM.format(n=9)},
        {"file_name": "y.c", "code": PROGRAM.format(n=11)},
        {"label": "no code"},
    ]
    (tmp_path / "formai.json").write_text(json.dumps(records))
    report = import_formai(
        [str(tmp_path / "formai.zip"), str(tmp_path / "formai.json")], tmp_path / "out", jobs=2, progress=False
    )
    assert report.modules == 5 and len(report.failures) == 1
    assert sum(report.split_sizes.values()) == 5


def test_formai_7z_needs_py7zr(tmp_path):
    if importlib.util.find_spec("py7zr") is not None:
        pytest.skip("py7zr is installed: the missing-module message cannot be shown")
    archive = tmp_path / "formai.7z"
    archive.write_bytes(b"7z\xbc\xaf\x27\x1c" + b"\x00" * 40)
    with pytest.raises(Exception, match="pip install py7zr"):
        import_formai([str(archive)], tmp_path / "out", progress=False)


def test_codecontests_without_pyarrow_names_the_install(tmp_path):
    if importlib.util.find_spec("pyarrow") is not None:
        pytest.skip("pyarrow is installed: the missing-module message cannot be shown")
    (tmp_path / "train-00000.parquet").write_bytes(b"PAR1")
    with pytest.raises(CorpusFormatError, match="pip install pyarrow"):
        import_codecontests([str(tmp_path / "train-00000.parquet")], tmp_path / "out", progress=False)


def test_codecontests_from_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    for mode, offset in (("train", 0), ("valid", 10), ("test", 20)):
        rows = {
            "name": [f"{mode}_problem_{i}" for i in range(2)],
            "solutions": [
                {
                    "language": [1, 2, 2],
                    "solution": ["print(1)", PROGRAM.format(n=offset + 2 * i + 3), "int main() { return 1; }"],
                }
                for i in range(2)
            ],
        }
        pq.write_table(pa.table(rows), tmp_path / f"{mode}-00000-of-00001.parquet")
    inputs = [str(tmp_path / f"{m}-00000-of-00001.parquet") for m in ("train", "valid", "test")]
    report = import_codecontests(inputs, tmp_path / "codecontest", jobs=2, progress=False)
    assert report.modules == 6 and report.split_sizes == {"train": 2, "val": 2, "test": 2}
    assert json.loads((tmp_path / "codecontest" / "metadata_small_test.json").read_text())[0].startswith(
        "test_problem_"
    )


def test_formai_from_7z(tmp_path):
    py7zr = pytest.importorskip("py7zr")
    (tmp_path / "c").mkdir()
    for n in range(2):
        (tmp_path / "c" / f"prog_{n}.c").write_text(PROGRAM.format(n=n + 30))
    with py7zr.SevenZipFile(tmp_path / "formai.7z", "w") as arc:
        arc.writeall(tmp_path / "c", "FormAI")
    report = import_formai([str(tmp_path / "formai.7z")], tmp_path / "out", jobs=1, progress=False)
    assert report.modules == 2
