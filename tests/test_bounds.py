"""Caps on what a hostile layer can make layerpeek hold: names, extended headers, entries.

The layers here are a few hundred bytes to a few KB compressed and were each enough to take
gigabytes before the caps: a 64 KiB PAX path (a full prefix per ancestor in the merged
view), a 1000 KiB global ``path`` record followed by 300 entries (it once was copied into
each; a global header now applies to no entry, as in containerd). They are pushed to the
real registry and listed by the ``layerpeek`` command in a subprocess, whose peak resident
memory (``ru_maxrss``) is the measure.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from fixtures.images import OCI_LAYER_GZIP, Layer, image_config, push_image
from fixtures.peak import PEAK_SOURCE
from layerpeek.cli.main import main
from layerpeek.core.fs import merge
from layerpeek.core.layers import listing
from layerpeek.core.layers.entry import IMAGE_LIMITS
from layerpeek.core.layers.index import store as index_store
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.service import Layerpeek

NAME_LIMIT = 4096
MEMORY_BOUND_MB = 300
"""Peak RSS allowed to a listing of one of these layers: the interpreter, the imports and
the registry client take ~80 MB; before the caps each listing took 1-2 GB."""

_MEASURE = (
    PEAK_SOURCE
    + """
import sys
from layerpeek.cli.main import main
status = main(sys.argv[1:])
peak = peak_kib()
print(f"{status} {peak}", file=sys.stderr)
"""
)


def tar_of(members: list[tarfile.TarInfo], **options: object) -> bytes:
    """A PAX tar of empty regular files (``options`` go to ``tarfile.open``)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT, **options) as tar:
        for info in members:
            tar.addfile(info)
    return buffer.getvalue()


def regular(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 1_700_000_000
    return info


def layer_of(tar: bytes) -> Layer:
    blob = gzip.compress(tar, compresslevel=9, mtime=0)
    return Layer(blob, OCI_LAYER_GZIP, "sha256:" + hashlib.sha256(tar).hexdigest())


def push(registry: str, repo: str, tar: bytes) -> str:
    layer = layer_of(tar)
    blobs = [(layer.blob, layer.media_type)]
    push_image(f"http://{registry}", repo, "latest", blobs, image_config([layer]))
    return f"{registry}/{repo}:latest"


def measured(tmp_path: Path, *argv: str) -> tuple[int, str, str, int]:
    """Run ``layerpeek ARGV`` in a fresh interpreter: exit status, stdout, the error line
    and the peak resident memory in MB."""
    env = {
        **os.environ,
        "LAYERPEEK_PLAIN_HTTP": "127.0.0.1",
        "LAYERPEEK_CACHE_DIR": str(tmp_path / "cache"),
        "DOCKER_CONFIG": str(tmp_path / "docker"),
    }
    run = subprocess.run(
        [sys.executable, "-c", _MEASURE, *argv], env=env, capture_output=True, text=True
    )
    *errors, last = run.stderr.strip().splitlines()
    status, peak = (int(word) for word in last.split())
    return status, run.stdout, "\n".join(errors), peak // 1024


def deep_path(length: int) -> str:
    """``ab/ab/...``: a tree as deep as a name of ``length`` bytes makes it, cut by the name
    limit inside a component."""
    return ("ab/" * length)[: length - 1] + "f"


def test_a_deep_pax_path_is_listed_cut_in_bounded_memory(tmp_path, plain_registry):
    ref = push(plain_registry.host, "bounds/deep", tar_of([regular(deep_path(64 << 10))]))
    status, out, error, peak = measured(tmp_path, "ls", ref, "--json")
    assert status == 0, error
    [listed] = [json.loads(line) for line in out.splitlines()]
    assert len(listed["path"]) == NAME_LIMIT and listed["cut"]
    assert peak < MEMORY_BOUND_MB
    status, out, error, peak = measured(tmp_path, "ls", ref, "--merged", "--json")
    assert (status, out) == (0, "")  # a cut name takes no part in the merged view
    assert peak < MEMORY_BOUND_MB


def test_a_huge_global_path_record_costs_bounded_memory(tmp_path, plain_registry):
    members = [regular(f"f{i}") for i in range(300)]
    tar = tar_of(members, pax_headers={"path": deep_path(1000 << 10)})
    ref = push(plain_registry.host, "bounds/global", tar)
    status, out, error, peak = measured(tmp_path, "ls", ref, "--json")
    assert status == 0, error
    assert peak < MEMORY_BOUND_MB
    # A global header names no entry (containerd ignores it): the entries keep their names.
    assert [json.loads(line)["path"] for line in out.splitlines()] == [f"f{i}" for i in range(300)]


def test_a_full_merged_listing_streams_instead_of_holding_every_entry(tmp_path, plain_registry):
    # 200,000 empty files in 1,000 directories: ~2 MB of gzip. The view and the layer's
    # index take ~0.7 KB an entry; a model of every path held at once took as much again.
    count = 200_000
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(count):
            tar.addfile(tarfile.TarInfo(f"d{i % 1000}/f{i}"))
    ref = push(plain_registry.host, "bounds/many", buffer.getvalue())
    status, out, error, peak = measured(tmp_path, "ls", ref, "--merged")
    assert status == 0, error
    assert out.count("\n") == count + 1000  # the files and their directories
    assert peak < 260, peak  # held at once, the listing took ~445 MB here


def test_a_cut_name_is_listed_but_never_read(capsys, layerpeek_env, plain_registry):
    secret = tarfile.TarInfo("s" * 5000)
    secret.size = 6
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(secret, io.BytesIO(b"hidden"))
    ref = push(plain_registry.host, "bounds/cut", buffer.getvalue())
    assert main(["ls", ref, "--json"]) == 0
    [listed] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert listed["path"] == "s" * NAME_LIMIT and listed["cut"] is True
    assert main(["ls", ref]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("  (name cut at 4096 bytes)")
    # In the merged view it takes no part (no runtime creates it): it is reported instead.
    assert main(["ls", ref, "--merged", "--json"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["cat", ref, listed["path"]]) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"layerpeek: error: {'s' * 80}… in layer 0 is listed with its name cut at 4,096 bytes;"
        " a name that long cannot be read\n"
    )


def test_a_whole_image_listing_past_the_image_limits_is_refused(
    capsys, monkeypatch, layerpeek_env, plain_registry
):
    layers = [layer_of(tar_of([regular(f"l{n}/f{i}") for i in range(3)])) for n in range(2)]
    blobs = [(layer.blob, layer.media_type) for layer in layers]
    url = f"http://{plain_registry.host}"
    push_image(url, "bounds/image", "latest", blobs, image_config(layers))
    monkeypatch.setattr(merge, "IMAGE_LIMITS", IMAGE_LIMITS._replace(entries=5))
    ref = f"{plain_registry.host}/bounds/image:latest"
    assert main(["ls", ref, "--merged"]) == 3
    assert capsys.readouterr().err == (
        "layerpeek: error: image has more than 5 entries (5 entries read)\n"
    )
    assert main(["ls", ref, "--layer", "1"]) == 0  # one layer is not the whole image


@pytest.mark.parametrize("json_lines", [True, False])
def test_a_listing_past_the_image_limits_ends_at_the_first_entry_past_them(
    capsys, monkeypatch, layerpeek_env, plain_registry, json_lines
):
    layers = [layer_of(tar_of([regular(f"l{n}/f{i}") for i in range(3)])) for n in range(2)]
    blobs = [(layer.blob, layer.media_type) for layer in layers]
    push_image(f"http://{plain_registry.host}", "bounds/ls", "latest", blobs, image_config(layers))
    monkeypatch.setattr(listing, "IMAGE_LIMITS", IMAGE_LIMITS._replace(entries=5))
    ref = f"{plain_registry.host}/bounds/ls:latest"
    assert main(["ls", ref, *(["--json"] if json_lines else [])]) == 3
    out, err = capsys.readouterr()
    assert err == "layerpeek: error: image has more than 5 entries (5 entries read)\n"
    listed = out.splitlines()
    if json_lines:
        assert [json.loads(line)["path"] for line in listed] == [
            "l0/f0",
            "l0/f1",
            "l0/f2",
            "l1/f0",
            "l1/f1",
        ]
    else:
        assert [line.rsplit(" ", 1)[-1] for line in listed if not line.startswith("#")] == [
            "l0/f0",
            "l0/f1",
            "l0/f2",
            "l1/f0",
            "l1/f1",
        ]


async def test_indexes_kept_in_memory_are_bounded_by_their_entries(
    monkeypatch, layerpeek_env, plain_registry
):
    layers = [layer_of(tar_of([regular(f"m{n}/f{i}") for i in range(3)])) for n in range(3)]
    blobs = [(layer.blob, layer.media_type) for layer in layers]
    push_image(
        f"http://{plain_registry.host}", "bounds/kept", "latest", blobs, image_config(layers)
    )
    monkeypatch.setattr(index_store, "KNOWN_ENTRIES", 7)  # three layers of 3 entries
    async with RegistryClient() as client:
        peek = Layerpeek(client)
        image = await peek.resolve(f"{plain_registry.host}/bounds/kept:latest")
        assert len([entry async for entry in peek.entries(image, whole=True)]) == 9
        kept = [key.rpartition("@")[2] for key in peek.indexes._known]  # registry@digest
        assert kept == [layers[1].digest, layers[2].digest]


_ENCODE = (
    PEAK_SOURCE
    + """
import sys
from layerpeek.core.layers.index.encoding import IndexEncoder
from layerpeek.core.layers.entry import TarEntry
from layerpeek.core.layers.index.model import LayerIndex
count = int(sys.argv[1])
entries = [
    TarEntry(f"app/node_modules/pkg-{i // 40}/lib/file-{i}.js", "file", i, 420, 0, 0, i, "", i)
    for i in range(count)
]
before = peak_kib()
encoder, grown = IndexEncoder(), []
for start in range(0, count, 16384):  # as a scan grows its listing and catches up
    grown += entries[start : start + 16384]
    encoder.catch_up(grown, [])
encoded = encoder.finish(LayerIndex("sha256:" + "0" * 64, "gzip", grown))
after = peak_kib()
print((after - before) // 1024, len(encoded))
"""
)


def test_encoding_a_large_index_for_the_cache_holds_little_beside_it():
    count = 500_000  # a node_modules layer
    run = subprocess.run(
        [sys.executable, "-c", _ENCODE, str(count)], capture_output=True, text=True, check=True
    )
    extra_mb, encoded = (int(word) for word in run.stdout.split())
    assert encoded < 40 * count
    assert extra_mb < 60  # JSON lines kept for one compression at the end: ~200 MB
