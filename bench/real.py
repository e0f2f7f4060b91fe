"""A benchmark layer made of real files: this machine's ``/usr``, as an image build packs it.

The generated layer (``run.layer_files``) has few entries for its bytes (24,000 files in
427 MB of tar); layers people have hold many small files (docs, man pages, locales, icons,
Python modules), and a listing's cost is per entry as much as per byte. This layer is the
first ``ENTRIES`` entries of a name-sorted walk of ``ROOTS`` (directories, regular files,
symlinks, hardlinks as the inodes say; files over ``FILE_CAP`` skipped), with owner 0:0 and
one mtime, gzip at level 6 (``tar -czf``'s), cached in the bench's work directory: the same
machine gives the same layer. Its contents depend on what the machine has installed, so
figures from two machines compare only as ratios against ``tar -tzf`` on the same file.
"""

from __future__ import annotations

import gzip
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

ROOTS = ("/usr/share", "/usr/lib")
ENTRIES = 50_000
FILE_CAP = 16 << 20
MTIME = 1_700_000_000


def walk(roots: tuple[str, ...] = ROOTS) -> Iterator[str]:
    """Every path under ``roots``, a directory before its contents, names sorted."""
    for root in roots:
        for directory, subdirectories, files in os.walk(root):
            subdirectories.sort()
            yield directory
            yield from (os.path.join(directory, name) for name in sorted(files))


def chosen(limit: int = ENTRIES) -> Iterator[tuple[str, os.stat_result]]:
    """The layer's paths and their stats: directories, links and files up to ``FILE_CAP``
    that can be read."""
    count = 0
    for path in walk():
        try:
            status = os.lstat(path)
        except OSError:
            continue
        mode = status.st_mode
        if stat.S_ISREG(mode):
            if status.st_size > FILE_CAP or not os.access(path, os.R_OK):
                continue
        elif not (stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
            continue
        yield path, status
        count += 1
        if count == limit:
            return


def build(path: Path, limit: int = ENTRIES) -> int:
    """Write the layer to ``path`` unless it is there; returns its entry count."""
    if path.exists():
        with gzip.open(path, "rb") as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            return sum(1 for _ in tar)
    partial = path.with_suffix(".partial")
    count = 0
    with (
        gzip.GzipFile(partial, "wb", compresslevel=6, mtime=0) as out,
        tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, _ in chosen(limit):
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
