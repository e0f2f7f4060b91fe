"""Which files of an image's merged filesystem an inventory reads, and how: each package
database and manifest by its path, each executable of the usual binary directories as a
possible Go binary, with the size limit of its kind and its parser. Every input is hostile:
larger files are reported, not read, and at most ``MAX_FILES`` manifests and
``MAX_BINARIES`` binaries are taken."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from layerpeek.core.fs.overlay import Node
from layerpeek.core.packages import apk, dpkg, golang, npm, python, rpm
from layerpeek.core.packages.model import (
    MAX_PACKAGES,
    DatabaseProblem,
    Found,
    Kind,
    Partly,
)

DATABASE_LIMIT = 64 << 20
"""Bytes of one system database (dpkg status, apk installed, rpmdb.sqlite) read at most."""


MANIFEST_LIMIT = 1 << 20
"""Bytes of one package manifest (METADATA, PKG-INFO, package.json) read at most."""


MAX_FILES = 50_000
"""Manifests read at most in one image."""


MAX_BINARIES = 5_000
"""Executables looked at for Go build information at most in one image."""


Parser = Callable[[bytes], list[Found]]


@dataclass(frozen=True, slots=True)
class Source:
    """One file to read: its kind, its node in the merged view, how to parse it."""

    kind: Kind
    node: Node
    limit: int
    parse: Parser | None  # None: a Go binary, read by ranges


def find_sources(
    nodes: list[Node], kinds: frozenset[Kind]
) -> tuple[list[Source], list[DatabaseProblem]]:
    """The files of the merged view to read, by kind (in a worker thread: the view may hold
    a million paths), and the databases named as not read."""
    sources: list[Source] = []
    skipped: list[DatabaseProblem] = []
    counts = {"manifests": 0, "binaries": 0}
    for node in nodes:
        if node.type not in ("file", "hardlink"):
            continue
        source = _source(node, kinds)
        if source is None:
            wal = rpm.wal_problem(node.path, size_of(node)) if "rpm" in kinds else None
            if wal is not None:
                skipped.append(
                    DatabaseProblem(kind="rpm", path=node.path, layer=node.layer, message=wal)
                )
            if "rpm" in kinds and node.path in rpm.NOT_READ:
                skipped.append(
                    DatabaseProblem(
                        kind="rpm",
                        path=node.path,
                        layer=node.layer,
                        message=rpm.NOT_READ[node.path],
                    )
                )
            continue
        bucket = "binaries" if source.kind == "golang" else "manifests"
        if source.kind in ("pypi", "npm", "golang"):
            counts[bucket] += 1
            cap = MAX_BINARIES if bucket == "binaries" else MAX_FILES
            if counts[bucket] > cap:
                if counts[bucket] == cap + 1:
                    skipped.append(
                        DatabaseProblem(
                            kind=source.kind,
                            path=node.path,
                            layer=node.layer,
                            message=f"more than {cap} {bucket}: the rest are not read",
                        )
                    )
                continue
        sources.append(source)
    return sources, skipped


def _source(node: Node, kinds: frozenset[Kind]) -> Source | None:
    """What ``node`` is to an inventory of ``kinds``, if anything."""
    path = node.path
    if "deb" in kinds and (path == dpkg.STATUS or dpkg.is_status_d(path)):
        return Source("deb", node, DATABASE_LIMIT, dpkg.parse_status)
    if "apk" in kinds and path in apk.INSTALLED:
        return Source("apk", node, DATABASE_LIMIT, apk.parse_installed)
    if "rpm" in kinds and path in rpm.SQLITE:
        return Source("rpm", node, DATABASE_LIMIT, _parse_rpm)
    if "pypi" in kinds and python.is_metadata(path):
        return Source("pypi", node, MANIFEST_LIMIT, python.parse_metadata)
    if "npm" in kinds and npm.is_manifest(path):
        return Source("npm", node, MANIFEST_LIMIT, npm.parse_manifest)
    if "golang" in kinds and golang.is_candidate(path, node.mode, size_of(node)):
        return Source("golang", node, golang.MAX_INFO, None)
    return None


def _parse_rpm(data: bytes) -> list[Found]:
    found, damaged = rpm.parse_sqlite(data, MAX_PACKAGES)
    if damaged:
        raise Partly(found, f"{len(damaged)} headers not read ({damaged[0]})")
    return found


def size_of(node: Node) -> int:
    """The bytes a read of ``node`` returns (a hard link's are its file's)."""
    file = node.linked if node.type == "hardlink" else node
    return file.size if file is not None else 0


def file_of(node: Node) -> Node:
    """The node whose bytes ``node`` has: the file a hard link shares, or itself."""
    return node.linked if node.type == "hardlink" and node.linked is not None else node


def too_large(source: Source) -> str:
    """Why a file past its kind's limit is not read."""
    return f"{size_of(source.node)} bytes, past the {source.limit}-byte limit: not read"
