"""The range engine's benchmark: one command, one local registry, ratios against baselines.

    python bench/run.py [--files N] [--work DIR] [--repeat N] [--layers WHICH] [--before DIR]

Builds a deterministic gzip layer (a few hundred MB of tar: many small text-like files and
some incompressible ones), starts Debian's ``docker-registry`` (the test fixtures' own
launcher), pushes the layer, and measures with layerpeek: the first page, the full listing,
``cat`` of a file near the end without and with the layer index, a cached repeat, and the
listing of the same files packed as eStargz and as zstd:chunked (read from their TOCs); and the
baselines in the same run: a full download + ``tarfile`` (the naive way) and GNU
``tar -tzf`` on the local file. Bytes are counted by a proxy in front of the registry (the
test fixtures' fault proxy), times are taken inside a fresh process per step.

The goal (a full listing in at most 0.35x of ``tar -tzf``) is a ratio on a machine whose
speed drifts, so the full listing runs ``--repeat`` times, each right after a ``tar -tzf``
run that saw the same load; the median of those pairs is the figure, their range is printed
with it, and the median ``tar -tzf`` is every row's baseline.

The real layer (``build_real_layer``: ~50,000 files of this machine's ``/usr``) is listed the same
way, each run next to a ``tar -tzf`` of that file: through the whole ``layerpeek ls REF
--json > /dev/null`` process (start-up and output included, ``cli.py``) and by the engine
alone (``measure.py``), with entries and bytes per second beside the ratios, and, in the same
rounds, the floor under the first: the command's start-up with its first page (``ls --limit
1``) and the scan's inflater (zlib-ng, checkpoints and all) inflating the local file alone;
their sum is what no listing through the CLI can beat on this machine with this inflater.
``--before DIR`` lists it also with the ``layerpeek`` package found in DIR (an older tree),
interleaved in the same pairs, so a change is measured against the code before it under the
same load.
"""

from __future__ import annotations

import argparse
import compileall
import gzip
import io
import json
import os
import random
import resource
import stat
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fixtures.images import OCI_LAYER_GZIP, Member, Pusher, sha256_digest  # noqa: E402
from fixtures.proxy import FaultProxy  # noqa: E402
from fixtures.registry import RegistryProcess  # noqa: E402
from fixtures.toc_images import (  # noqa: E402
    TocLayer,
    make_estargz,
    make_zstd_chunked,
    push_toc_image,
)

PACKAGE_DIRS = ("core", "cli", "server", "bot", "links")
"""The source folders of the ``layerpeek`` package (``pyproject.toml``'s package-dir)."""
REPO = "bench/big"
CONFIG = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
"""The one-layer images' config, without diff_ids: they would cost a pass over the whole tar,
and no measured step needs them."""
SIDE_REPO = "bench/side"
MTIME = 1_700_000_000


def layer_files(files: int) -> Iterator[tuple[str, bytes | None]]:
    """The layer's members in order, deterministic: (path, data) for files, (path, None) for
    directories."""
    rng = random.Random(20261128)
    words = [
        bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz_", k=rng.randint(2, 10)))
        for _ in range(3000)
    ]
    corpus = b" ".join(rng.choice(words) for _ in range(1_500_000))
    for i in range(files):
        if i % 40 == 0:
            yield f"usr/share/pkg{i // 40:04d}", None
        yield f"usr/share/pkg{i // 40:04d}/file{i:06d}.txt", _content(rng, corpus, i)


def build_layer(path: Path, files: int) -> list[str]:
    """Write the gzip layer to ``path``; returns the file paths in order."""
    names: list[str] = []
    with (
        gzip.GzipFile(path, "wb", compresslevel=6, mtime=0) as out,
        tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, data in layer_files(files):
            info = tarfile.TarInfo(name)
            info.mode, info.mtime = (0o644 if data is not None else 0o755), MTIME
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
                continue
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            names.append(name)
    return names


REAL_ROOTS = ("/usr/share", "/usr/lib")
REAL_ENTRIES = 50_000
REAL_FILE_CAP = 16 << 20


def build_real_layer(path: Path, limit: int = REAL_ENTRIES) -> int:
    """Write the real layer to ``path`` unless it is there; returns its entry count.

    The generated layer has few entries for its bytes; layers people have hold many small
    files (docs, man pages, locales, icons, modules), and a listing's cost is per entry as
    much as per byte. This layer is the first ``limit`` entries of a name-sorted walk of
    ``REAL_ROOTS`` (directories, regular files up to ``REAL_FILE_CAP``, symlinks, hardlinks
    as the inodes say), owner 0:0 and one mtime, gzip at level 6 (``tar -czf``'s): the same
    machine gives the same layer. Its contents depend on what the machine has installed, so
    figures from two machines compare only as ratios against ``tar -tzf`` on the same file.
    """
    if path.exists():
        return _entry_count(path)
    partial = path.with_suffix(".partial")
    count = 0
    with (
        gzip.GzipFile(partial, "wb", compresslevel=6, mtime=0) as out,
        tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in _real_paths(limit):
            info = tar.gettarinfo(name, arcname=name.lstrip("/"))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = MTIME
            if info.isreg():
                with open(name, "rb") as data:
                    tar.addfile(info, data)
            else:
                tar.addfile(info)
            count += 1
    partial.rename(path)
    return count


def _real_paths(limit: int) -> Iterator[str]:
    """The real layer's paths: a directory before its contents, names sorted; files that
    cannot be read, larger ones and special files left out."""
    count = 0
    for root in REAL_ROOTS:
        for directory, subdirectories, files in os.walk(root):
            subdirectories.sort()
            for path in (directory, *(os.path.join(directory, n) for n in sorted(files))):
                try:
                    mode, size = (status := os.lstat(path)).st_mode, status.st_size
                except OSError:
                    continue
                if stat.S_ISREG(mode):
                    if size > REAL_FILE_CAP or not os.access(path, os.R_OK):
                        continue
                elif not (stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                    continue
                yield path
                count += 1
                if count == limit:
                    return


def toc_layers(files: int) -> dict[str, TocLayer]:
    """The same files as eStargz and as zstd:chunked layers, built from the formats'
    descriptions by the test fixtures."""
    members = [
        Member(name, "file" if data is not None else "dir", data=data or b"", mtime=MTIME)
        for name, data in layer_files(files)
    ]
    return {"estargz": make_estargz(members), "zstd-chunked": make_zstd_chunked(members)}


def _content(rng: random.Random, corpus: bytes, i: int) -> bytes:
    """Mostly small text-like files, a few larger ones, every 25th incompressible."""
    roll = rng.random()
    size = (
        rng.randint(200, 6000)
        if roll < 0.7
        else rng.randint(6000, 40000)
        if roll < 0.95
        else rng.randint(40000, 300000)
    )
    if i % 25 == 0:
        return rng.randbytes(size)
    start = rng.randrange(len(corpus) - size)
    return corpus[start : start + size]


def _env(cache: Path, plain: str, source: Path | None = None) -> dict[str, str]:
    """The environment of a measured process; ``source``: a tree whose ``layerpeek`` package
    it imports instead of the installed one."""
    env = {**os.environ, "LAYERPEEK_CACHE_DIR": str(cache), "LAYERPEEK_PLAIN_HTTP": plain}
    if source is not None:
        env["PYTHONPATH"] = str(source)
    return env


def measure(
    step: str, ref: str, path: str, cache: Path, plain: str, source: Path | None = None
) -> dict:
    env = _env(cache, plain, source)
    cpu = _children_cpu()
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "measure.py"), step, ref, path],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"step {step} failed:\n{done.stderr}")
    return {**json.loads(done.stdout), "cpu_seconds": _children_cpu() - cpu}


def _children_cpu() -> float:
    """CPU seconds (user and system) of the child processes waited for so far: a measured
    process's own, start-up included, as a difference. Less shifted by the machine's load
    than wall time, though not free of it (cache misses, the interpreter lock's hand-overs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cli_listing(
    ref: str, cache: Path, plain: str, source: Path | None = None, extra: tuple[str, ...] = ()
) -> dict:
    """``layerpeek ls REF --json [EXTRA…] > /dev/null`` in a fresh process, timed whole."""
    started, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "cli.py"), "ls", ref, "--json", *extra],
        env=_env(cache, plain, source),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"ls {ref} failed:\n{done.stderr}")
    result = json.loads(done.stderr.splitlines()[-1])
    return {"seconds": seconds, "cpu_seconds": _children_cpu() - cpu, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=24000, help="files in the layer")
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "layerpeek-bench"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="full listings, each next to a tar -tzf run, whose median is reported",
    )
    parser.add_argument(
        "--layers",
        choices=("both", "generated", "real"),
        default="both",
        help="the generated layer's rows, the real layer's, or both (default)",
    )
    parser.add_argument(
        "--before",
        type=Path,
        metavar="DIR",
        help="also list the real layer with the layerpeek package in DIR, interleaved",
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    _compile_sources(args.before)
    started = time.perf_counter()
    if args.layers != "generated":
        real_path = args.work / f"real-{REAL_ENTRIES}.tar.gz"
        entries = build_real_layer(real_path)
        print(
            f"real layer: {entries:,} entries, {_tar_size(real_path) / 1e6:.0f} MB tar, "
            f"{real_path.stat().st_size / 1e6:.0f} MB gzip ({time.perf_counter() - started:.0f} s)"
        )
        with tempfile.TemporaryDirectory(prefix="layerpeek-bench-") as scratch:
            side_by_side(Path(scratch), "real layer", real_path, entries, args.repeat, args.before)
    if args.layers != "real":
        blob_path = generated(args)
        entries = _entry_count(blob_path)
        with tempfile.TemporaryDirectory(prefix="layerpeek-bench-") as scratch:
            title = "generated layer"
            side_by_side(Path(scratch), title, blob_path, entries, args.repeat, args.before)
    print(f"\nwhole run: {time.perf_counter() - started:.0f} s")


def _compile_sources(before: Path | None) -> None:
    """Write the bytecode of every tree measured, as ``pip install`` does for an installed
    package: a process that cannot write it (``PYTHONDONTWRITEBYTECODE``, a read-only tree)
    compiles each module again at each start, ~60 ms more for the command's imports."""
    trees = [ROOT / name for name in PACKAGE_DIRS]
    if before is not None:
        trees.append(before)
    for tree in trees:
        compileall.compile_dir(tree, quiet=1)


def generated(args: argparse.Namespace) -> Path:
    """The generated layer's rows (and its TOC forms); returns the layer's path."""
    blob_path = args.work / f"layer-{args.files}.tar.gz"
    started = time.perf_counter()
    names = build_layer(blob_path, args.files)
    blob = blob_path.read_bytes()
    tar_bytes = _tar_size(blob_path)
    built = time.perf_counter() - started
    print(
        f"layer: {len(names):,} files, {tar_bytes / 1e6:.0f} MB tar, "
        f"{len(blob) / 1e6:.0f} MB gzip (built in {built:.0f} s)"
    )
    tocs = toc_layers(args.files)
    with tempfile.TemporaryDirectory(prefix="layerpeek-bench-") as scratch:
        run_all(Path(scratch), blob, names, blob_path, tocs, args.repeat)
    return blob_path


def _entry_count(path: Path) -> int:
    with gzip.open(path, "rb") as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        return sum(1 for _ in tar)


def _tar_size(path: Path) -> int:
    with gzip.open(path, "rb") as stream:
        return sum(len(chunk) for chunk in iter(lambda: stream.read(1 << 20), b""))


def run_all(
    scratch: Path,
    blob: bytes,
    names: list[str],
    blob_path: Path,
    tocs: dict[str, TocLayer],
    repeat: int,
) -> None:
    with RegistryProcess(scratch / "storage") as registry, FaultProxy(registry.url) as proxy:
        with Pusher(registry.url) as pusher:
            pusher.image(REPO, ["latest"], [(blob, OCI_LAYER_GZIP)], CONFIG)
            for tag, toc in tocs.items():
                push_toc_image(pusher, REPO, tag, toc)
        layer_path = f"/blobs/{sha256_digest(blob)}$"  # the layer only, not the config
        plain = f"{registry.host},{proxy.host}"
        via_proxy, direct = f"{proxy.host}/{REPO}:latest", f"{registry.host}/{REPO}:latest"
        late = names[-3]
        rows = []

        def step(label: str, name: str, ref: str, cache: str, path: str = "") -> dict:
            proxy.reset()
            result = measure(name, ref, path, scratch / cache, plain)
            result["bytes_read"] = proxy.body_bytes(layer_path) if ref == via_proxy else None
            rows.append((label, result))
            return result

        step("first page (100 entries)", "first-page", via_proxy, "c1")
        step("cat near the end, no index", "cat", via_proxy, "c2", late)
        pairs = [
            (_gnu_tar(blob_path), measure("full-listing", direct, "", scratch / f"c3-{i}", plain))
            for i in range(repeat)
        ]
        full = _median_run([run for _, run in pairs])
        rows.append(("full listing (direct)", {**full, "bytes_read": None}))
        step("full listing (through proxy)", "full-listing", via_proxy, "c4")
        step("cat near the end, indexed", "cat", via_proxy, "c4", late)
        step("cached repeat listing", "full-listing", via_proxy, "c4")
        for tag, toc in tocs.items():
            proxy.reset()
            result = measure("full-listing", f"{proxy.host}/{REPO}:{tag}", "", scratch / tag, plain)
            result["bytes_read"] = proxy.body_bytes(f"/blobs/{toc.layer.digest}$")
            result["blob_size"] = toc.layer.size
            rows.append((f"{tag} listing (TOC)", result))
            result = cli_listing(f"{registry.host}/{REPO}:{tag}", scratch / f"{tag}-cli", plain)
            rows.append((f"{tag} ls --json (CLI)", {**result, "bytes_read": None}))
        naive = step("baseline: download + tarfile", "naive", direct, "c5")
        report(rows, len(blob), naive, full, pairs)


def side_by_side(
    scratch: Path, title: str, blob_path: Path, entries: int, repeat: int, before: Path | None
) -> None:
    """A layer's full listing, through the CLI and by the engine alone, each run next to a
    ``tar -tzf`` of the same file; with ``before``, the older code's in the same pairs (in
    alternating order, so neither always runs first)."""
    blob = blob_path.read_bytes()
    variants: list[tuple[str, Path | None]] = [("", None)]
    if before is not None:
        variants.append(("before", before.resolve()))
    with RegistryProcess(scratch / "storage") as registry:
        with Pusher(registry.url) as pusher:
            pusher.image(SIDE_REPO, ["latest"], [(blob, OCI_LAYER_GZIP)], CONFIG)
        del blob
        ref = f"{registry.host}/{SIDE_REPO}:latest"
        runs: dict[str, list[tuple[float, dict]]] = {}
        for i in range(repeat):
            tar_seconds = _gnu_tar(blob_path)
            for label, run in _floor(ref, blob_path, scratch / f"floor-{i}", registry.host):
                runs.setdefault(label, []).append((tar_seconds, run))
            for name, source in variants if i % 2 == 0 else variants[::-1]:
                cache = scratch / f"real-{name or 'this'}-{i}"
                run = cli_listing(ref, cache / "cli", registry.host, source)
                runs.setdefault(f"ls --json (CLI) {name}".rstrip(), []).append((tar_seconds, run))
                run = measure("full-listing", ref, "", cache / "engine", registry.host, source)
                runs.setdefault(f"engine alone {name}".rstrip(), []).append((tar_seconds, run))
    report_pairs(title, runs, entries, blob_path.stat().st_size, _tar_size(blob_path))


FLOOR_START = "floor: ls --limit 1 (CLI)"
FLOOR_INFLATE = "floor: inflater alone"


def _floor(ref: str, blob_path: Path, cache: Path, plain: str) -> list[tuple[str, dict]]:
    """What a full listing through the CLI cannot go below on this machine, measured in the
    same round: the command's start-up with its first page (``ls --limit 1``, a fresh cache),
    and the scan's inflater inflating the local file with nothing else to do."""
    start = cli_listing(ref, cache / "cli", plain, extra=("--limit", "1"))
    inflate = measure("inflate-alone", "-", str(blob_path), cache / "engine", plain)
    return [
        (FLOOR_START, {**start, "floor": "start"}),
        (FLOOR_INFLATE, {**inflate, "floor": "inflate"}),
    ]


def report_pairs(
    title: str,
    runs: dict[str, list[tuple[float, dict]]],
    entries: int,
    gzip_size: int,
    tar_size: int,
) -> None:
    """Each way's median ratio to the ``tar -tzf`` run next to it, with their range, and
    its median time as entries and bytes per second, its median CPU time; the worst peak
    RSS and event-loop stall; with the older code's runs, each way against them."""
    tars = [seconds for seconds, _ in next(iter(runs.values()))]
    tar_median = statistics.median(tars)
    print(
        f"\n{title}: {entries:,} entries, {gzip_size / 1e6:.0f} MB gzip, "
        f"{tar_size / 1e6:.0f} MB tar; tar -tzf {min(tars):.2f}-{max(tars):.2f} s "
        f"(median {tar_median:.2f} s, {entries / tar_median:,.0f} entries/s)"
    )
    columns = ("x tar -tzf", "range", "seconds", "entries/s", "gzip MB/s", "CPU s", "RSS MB")
    print(f"{'full listing':26} " + " ".join(f"{c:>11}" for c in columns))
    for label, pairs in runs.items():
        ratios = sorted(run["seconds"] / seconds for seconds, run in pairs)
        seconds = statistics.median(run["seconds"] for _, run in pairs)
        cells = (
            f"{statistics.median(ratios):.2f}",
            f"{ratios[0]:.2f}-{ratios[-1]:.2f}",
            f"{seconds:.3f}",
            "-" if pairs[0][1].get("floor") else f"{entries / seconds:,.0f}",
            "-" if pairs[0][1].get("floor") == "start" else f"{gzip_size / 1e6 / seconds:.0f}",
            f"{statistics.median(run['cpu_seconds'] for _, run in pairs):.2f}",
            f"{max(run['rss_mb'] for _, run in pairs):.0f}",
        )
        print(f"{label:26} " + " ".join(f"{c:>11}" for c in cells))
    if FLOOR_START in runs:
        floors = sorted(
            (start["seconds"] + inflate["seconds"]) / seconds
            for (seconds, start), (_, inflate) in zip(
                runs[FLOOR_START], runs[FLOOR_INFLATE], strict=True
            )
        )
        print(
            "floor of a CLI listing (its start-up and first page, then the inflater alone), round "
            f"by round: median {statistics.median(floors):.2f}x tar -tzf "
            f"({floors[0]:.2f}-{floors[-1]:.2f})"
        )
    for label, pairs in runs.items():
        older = runs.get(f"{label} before")
        if older is not None:
            rounds = list(zip(pairs, older, strict=True))
            for key, what in (("seconds", "time"), ("cpu_seconds", "CPU")):
                ratios = sorted(a[key] / b[key] for (_, a), (_, b) in rounds)
                print(
                    f"{label}, {what} / before's, round by round: median "
                    f"{statistics.median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f})"
                )
    for label, pairs in runs.items():
        lags = [
            run["loop_lag_ms"] for _, run in pairs if "loop_lag_ms" in run and not run.get("floor")
        ]
        if lags:
            print(f"{label}: longest event-loop stall {max(lags):.1f} ms")


def _gnu_tar(path: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["tar", "-tzf", str(path)], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def _median_run(runs: list[dict]) -> dict:
    """The run of median time, with the worst peak RSS and loop stall of all of them."""
    middle = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    worst = {key: max(r[key] for r in runs) for key in ("rss_mb", "loop_lag_ms")}
    return {**middle, **worst}


def report(
    rows: list, blob_size: int, naive: dict, full: dict, pairs: list[tuple[float, dict]]
) -> None:
    """Every row against the median ``tar -tzf``; the full listing also as the median of its
    pairs with the ``tar -tzf`` run next to it, which saw the same load."""
    tar_seconds = statistics.median(seconds for seconds, _ in pairs)
    ratios = sorted(run["seconds"] / seconds for seconds, run in pairs)
    columns = ("blob bytes", "of blob", "seconds", "x tar -tzf", "RSS MB", "loop lag ms")
    print(f"\n{'step':34} " + " ".join(f"{c:>11}" for c in columns))
    for label, r in rows:
        read, size = r["bytes_read"], r.get("blob_size", blob_size)
        cells = (
            f"{read:,}" if read is not None else "-",
            f"{read / size:.2%}" if read is not None else "-",
            f"{r['seconds']:.3f}",
            f"{r['seconds'] / tar_seconds:.2f}",
            f"{r['rss_mb']:.0f}",
            f"{r['loop_lag_ms']:.1f}" if "loop_lag_ms" in r else "-",
        )
        print(f"{label:34} " + " ".join(f"{c:>11}" for c in cells))
    tar_cells = ("-", "-", f"{tar_seconds:.3f}", "1.00", "-", "-")
    print(f"{'baseline: GNU tar -tzf (local)':34} " + " ".join(f"{c:>11}" for c in tar_cells))
    print(
        f"\nfull listing / tar -tzf, {len(pairs)} runs side by side: median "
        f"{statistics.median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f}); "
        f"tar -tzf took {min(s for s, _ in pairs):.2f}-{max(s for s, _ in pairs):.2f} s"
    )
    print(f"download + tarfile / full listing = {naive['seconds'] / full['seconds']:.1f}")


if __name__ == "__main__":
    main()
