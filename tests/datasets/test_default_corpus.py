"""The default corpus: package list, source preparation, apt sources parsing, and (slow) a tiny real build."""

from __future__ import annotations

import json

import pytest

from compilerdream.compiler.datasets import FileDataset, split
from compilerdream.compiler.datasets.debian import _parse_deb822, _parse_one_line, dsc_tarballs, probe_sources
from compilerdream.compiler.datasets.default_corpus import load_packages, load_spec
from compilerdream.compiler.datasets.prepare import configure_value, include_dirs, instantiate_templates


def test_package_list_is_fixed_varied_and_split_by_package():
    packages = load_packages()
    names = [p.name for p in packages]
    assert len(names) >= 20 and len(set(names)) == len(names)
    assert all(p.version and p.split in ("train", "val", "test") for p in packages)
    assert {p.split for p in packages} == {"train", "val", "test"}
    assert len({p.domain.split(" ")[0] for p in packages}) >= 8
    assert [p.name for p in load_packages(tiny=True)] == ["bzip2", "zlib"]
    assert load_spec()["csmith"]["count"] > 0


def test_apt_sources_are_parsed_from_both_formats():
    deb822 = "Types: deb\nURIs: http://mirror.example/debian\nSuites: stable stable-updates\nComponents: main\nSigned-By: /k.gpg\n\nTypes: deb\nEnabled: no\nURIs: http://x\nSuites: s\nComponents: main\n"
    (first,) = _parse_deb822(deb822)
    assert (
        first.uri == "http://mirror.example/debian"
        and first.suites == ("stable", "stable-updates")
        and first.signed_by == "/k.gpg"
    )
    (line,) = _parse_one_line(
        "# comment\ndeb [arch=amd64] http://mirror.example/ubuntu jammy main universe\ndeb-src http://y z main\n"
    )
    assert (
        line.uri == "http://mirror.example/ubuntu"
        and line.suites == ("jammy",)
        and line.components == ("main", "universe")
    )


def test_dsc_upstream_tarball_is_found(tmp_path):
    dsc = tmp_path / "p_1.0-1.dsc"
    dsc.write_text(
        "Format: 3.0 (quilt)\nFiles:\n abc 10 p_1.0.orig.tar.gz\n def 5 p_1.0-1.debian.tar.xz\n ghi 3 p_1.0.orig-extra.tar.gz\n"
    )
    assert [p.name for p in dsc_tarballs(dsc)] == ["p_1.0.orig.tar.gz"]


def test_configure_templates_are_instantiated(tmp_path):
    (tmp_path / "config.h.in").write_text(
        "#undef HAVE_STDLIB_H\n#undef HAVE_NO_SUCH_HEADER_H\n#undef SIZEOF_LONG\n#undef VERSION\n#undef HAVE_STRDUP\n#undef FROB\n"
    )
    (tmp_path / "ver.h.in").write_text(
        '#define V "@PACKAGE_VERSION@"\n#define W @UNKNOWN@\n#cmakedefine01 HAVE_STDINT_H\n@OPTIONAL@\n@SIZEOF_INT_CODE@\n'
    )
    (tmp_path / "keep.h.in").write_text("x")
    (tmp_path / "keep.h").write_text("original")
    written = instantiate_templates(tmp_path, "demo", "1.2", {"FROB": "7"})
    config = (tmp_path / "config.h").read_text()
    assert "#define HAVE_STDLIB_H 1" in config and "/* #undef HAVE_NO_SUCH_HEADER_H */" in config
    assert "#define SIZEOF_LONG 8" in config and '#define VERSION "1.2"' in config
    assert "#define HAVE_STRDUP 1" in config and "#define FROB 7" in config
    expected = '#define V "1.2"\n#define W 0\n#define HAVE_STDINT_H 1\n\n#define SIZEOF_INT 4\n'
    assert (tmp_path / "ver.h").read_text() == expected
    assert (tmp_path / "keep.h").read_text() == "original" and len(written) == 2
    assert configure_value("HAVE_STDBOOL_H", "p", "1") == "1"


def test_include_dirs_skip_folders_that_shadow_libc(tmp_path):
    for folder, header in (("include/lib", "api.h"), ("src", "internal.h"), ("compat", "stdint.h")):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / header).write_text("")
    dirs = [d[len(str(tmp_path)) :] or "/" for d in include_dirs(tmp_path)]
    assert dirs[0] == "/" and "/include" in dirs and "/include/lib" in dirs and "/src" in dirs
    assert "/compat" not in dirs


@pytest.mark.slow
def test_tiny_default_corpus_builds(tmp_path):
    if not probe_sources(timeout=5):
        pytest.skip("no Debian source repository reachable (apt-get source needs network)")
    from compilerdream.compiler.datasets.cli import main

    out = tmp_path / "default"
    assert main(["build-default", "--tiny", "--out", str(out), "--workdir", str(tmp_path / "work"), "--jobs", "2"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["benchmarks"]) >= 5
    groups = {entry["group"] for entry in manifest["benchmarks"].values()}
    assert groups == {"bzip2", "zlib", "csmith"}
    dataset = FileDataset(out)
    sizes = {m: len(split(dataset, m)) for m in ("train", "val", "test")}
    assert all(sizes.values())
    test_groups = {manifest["benchmarks"][uri.split(str(out) + "/", 1)[1]]["group"] for uri in split(dataset, "test")}
    train_groups = {manifest["benchmarks"][uri.split(str(out) + "/", 1)[1]]["group"] for uri in split(dataset, "train")}
    assert not test_groups & train_groups  # split by package
    packages = json.loads((out / "packages.json").read_text())["packages"]
    assert set(packages) == {"bzip2", "zlib"}
