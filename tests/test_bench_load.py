"""The load benchmark's own layer: what it reports is only worth something if the layer it
builds is the one it claims (entry count, diff_id), so a merged listing can be checked."""

import gzip
import hashlib
import importlib.util
import sys
import tarfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "load.py"


def _load_module():
    spec = importlib.util.spec_from_file_location("bench_load", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_wide_layer_has_its_entries_and_diff_id(tmp_path):
    load = _load_module()
    path = tmp_path / "wide.tar.gz"
    diff_id = load.build_wide_layer(path, 120)
    tar = gzip.decompress(path.read_bytes())
    assert diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    with tarfile.open(path) as archive:
        members = archive.getmembers()
    assert len(members) == 120
    assert [m.name for m in members if m.isdir()] == [
        "usr/share/d00000",
        "usr/share/d00001",
        "usr/share/d00002",
    ]
    assert members[-1].name.startswith("usr/share/d00002/")
    assert load.build_wide_layer(tmp_path / "again.tar.gz", 120) == diff_id  # deterministic
