"""An image's installed packages, from the package databases of its merged filesystem.

The merged view (built from the layers' indexes) says which database files the image shows,
and which layer added or last changed each; only those files are read, each with the ranges
its layer's index allows (``Layerpeek.read_span``), and a Go binary only where its build
information is. A package removed in a later layer is gone because its database says so, or
because its manifest file was deleted.

Every input is hostile: each file is read only up to its kind's size limit (larger ones are
reported, not read), at most ``MAX_FILES`` manifests and ``MAX_BINARIES`` binaries are read,
and the inventory holds at most ``MAX_PACKAGES``. A damaged or oversized database is a
``DatabaseProblem``; every other source still answers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Hashable
from dataclasses import dataclass, field

import anyio
import anyio.to_thread

from layerpeek.core.errors import FileNotInLayer, LayerError, PackageDataError
from layerpeek.core.fs.overlay import Node, Overlay
from layerpeek.core.fs.triage import OS_RELEASE, parse_os_release
from layerpeek.core.models import LayerProblem, marks
from layerpeek.core.packages import apk, dpkg, golang, history, npm, python, rpm
from layerpeek.core.packages.model import (
    KINDS,
    MAX_PACKAGES,
    DatabaseProblem,
    Distro,
    Found,
    Kind,
    Package,
    PackageReport,
    purl_for,
)
from layerpeek.core.service import Layerpeek, ResolvedImage

DATABASE_LIMIT = 64 << 20
"""Bytes of one system database (dpkg status, apk installed, rpmdb.sqlite) read at most."""
MANIFEST_LIMIT = 1 << 20
"""Bytes of one package manifest (METADATA, PKG-INFO, package.json) read at most."""
MAX_FILES = 50_000
"""Manifests read at most in one image."""
MAX_BINARIES = 5_000
"""Executables looked at for Go build information at most in one image."""
PARALLEL = 8
"""Files read at once."""
STREAM_AT = 8
"""Files to read in one compressed layer from which that layer is read in one pass instead
of a range a file: each range inflates from the checkpoint before it (up to 4 MiB away), so
hundreds of small reads of one layer cost more than the layer."""

Parser = Callable[[bytes], list[Found]]


@dataclass(frozen=True, slots=True)
class Source:
    """One file to read: its kind, its node in the merged view, how to parse it."""

    kind: Kind
    node: Node
    limit: int
    parse: Parser | None  # None: a Go binary, read by ranges


@dataclass
class _Tally:
    packages: list[Package] = field(default_factory=list)
    problems: list[DatabaseProblem] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    cut: bool = False
    databases: list[tuple[Source, list[Found]]] = field(default_factory=list)
    """Databases of many packages, added once ``history`` says which layer installed each."""


async def inventory(
    layerpeek: Layerpeek,
    image: ResolvedImage,
    kinds: Collection[Kind] = KINDS,
    *,
    stream_at: int = STREAM_AT,
) -> PackageReport:
    """Every package of ``kinds`` that ``image`` has installed; a compressed layer holding
    ``stream_at`` files to read or more is read in one pass."""
    problems: list[LayerProblem] = []
    view = await layerpeek.merged(image, problems)
    tally = _Tally()
    sources, skipped = await anyio.to_thread.run_sync(_sources, view.nodes, frozenset(kinds))
    tally.problems.extend(skipped)
    distro = await _distro(layerpeek, image, view.overlay, tally)
    limiter = anyio.CapacityLimiter(PARALLEL)
    ranged, passes = _plan(image, sources, stream_at)
    async with anyio.create_task_group() as group:
        for source in ranged:
            group.start_soon(_read_source, layerpeek, image, source, distro, tally, limiter)
        for layer, group_sources in passes.items():
            group.start_soon(_read_layer, layerpeek, image, layer, group_sources, distro, tally)
    await _add_databases(layerpeek, image, view.overlay, distro, tally)
    tally.packages.sort(key=lambda p: (p.kind, p.name, p.version, p.arch, p.path))
    tally.problems.sort(key=lambda p: (p.kind, p.path))
    return PackageReport(
        reference=str(image.reference),
        digest=image.manifest.digest,
        platform=str(image.platform),
        distro=distro.qualifier,
        packages=tally.packages[:MAX_PACKAGES],
        databases=tally.problems,
        files_read=tally.files,
        bytes_read=tally.bytes,
        layers_streamed=sorted(passes),
        cut=tally.cut,
        **marks(problems),
    )


def _sources(
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
            wal = rpm.wal_problem(node.path, _size(node)) if "rpm" in kinds else None
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
    if "golang" in kinds and golang.is_candidate(path, node.mode, _size(node)):
        return Source("golang", node, golang.MAX_INFO, None)
    return None


def _parse_rpm(data: bytes) -> list[Found]:
    found, damaged = rpm.parse_sqlite(data, MAX_PACKAGES)
    if damaged:
        raise _Partly(found, f"{len(damaged)} headers not read ({damaged[0]})")
    return found


class _Partly(PackageDataError):
    """A database read in part: the packages read, and why the rest were not."""

    def __init__(self, found: list[Found], message: str) -> None:
        super().__init__(message)
        self.found = found


def _size(node: Node) -> int:
    file = node.linked if node.type == "hardlink" else node
    return file.size if file is not None else 0


async def _read_source(
    layerpeek: Layerpeek,
    image: ResolvedImage,
    source: Source,
    distro: Distro,
    tally: _Tally,
    limiter: anyio.CapacityLimiter,
) -> None:
    """Read one source into ``tally``: its packages, or the problem that stopped it."""
    node = source.node

    async def read_at(start: int, length: int) -> bytes:
        data = await layerpeek.read_span(image, node, start, length)
        tally.bytes += len(data)
        return data

    async with limiter:
        found: list[Found] = []
        try:
            found = await _found(source, read_at)
        except _Partly as exc:
            found = exc.found
            tally.problems.append(_problem(source, str(exc)))
        except (PackageDataError, LayerError, FileNotInLayer) as exc:
            tally.problems.append(_problem(source, str(exc)))
        tally.files += 1
    _add(tally, source, found, distro)


def _plan(
    image: ResolvedImage, sources: list[Source], stream_at: int
) -> tuple[list[Source], dict[int, list[Source]]]:
    """The sources read by ranges, and by layer those read in one pass of their layer."""
    by_layer: dict[int, list[Source]] = defaultdict(list)
    for source in sources:
        by_layer[_file(source.node).layer].append(source)
    passes = {
        layer: group
        for layer, group in by_layer.items()
        if len(group) >= stream_at and _compressed(image.manifest.layers[layer].media_type)
    }
    ranged = [s for layer, group in by_layer.items() if layer not in passes for s in group]
    return ranged, passes


def _compressed(media_type: str) -> bool:
    return not media_type.endswith((".tar", "tar"))


def _file(node: Node) -> Node:
    """The node whose bytes ``node`` has: the file a hard link shares, or itself."""
    return node.linked if node.type == "hardlink" and node.linked is not None else node


async def _read_layer(
    layerpeek: Layerpeek,
    image: ResolvedImage,
    layer: int,
    sources: list[Source],
    distro: Distro,
    tally: _Tally,
) -> None:
    """Read every source of one layer in one pass over it; a Go binary of the older format
    is read by ranges after it."""
    wanted: dict[str, list[Source]] = defaultdict(list)
    for source in sources:
        if source.parse is not None and _size(source.node) > source.limit:
            tally.problems.append(_problem(source, _too_large(source)))
            tally.files += 1
        else:
            wanted[_file(source.node).layer_path].append(source)
    pending = {path: _Piece(group) for path, group in wanted.items()}
    done: set[str] = set()
    later: list[Source] = []
    damage = f"layer {layer} ends before it"
    try:
        async for event in layerpeek.stream_files(image, layer, lambda e: e.path in wanted):
            piece = pending[event.entry.path]
            tally.bytes += piece.feed(event.data, event.zeros)
            if event.last:
                await _finish(piece, distro, tally, later)
                done.add(event.entry.path)
                pending[event.entry.path] = _Piece(piece.sources)
    except (LayerError, FileNotInLayer) as exc:
        damage = str(exc)
    for path, group in wanted.items():
        if path not in done:
            tally.problems.extend(_problem(source, damage) for source in group)
    for source in later:
        await _read_source(layerpeek, image, source, distro, tally, anyio.CapacityLimiter(1))


class _Piece:
    """One file of a layer read in one pass: its bytes so far (a database or manifest) or
    its Go scan (a binary)."""

    def __init__(self, sources: list[Source]) -> None:
        self.sources = sources
        self.golang = sources[0].parse is None
        self.scan = golang.StreamScan()
        self.data = bytearray()
        self.error: PackageDataError | None = None

    def feed(self, data: bytes, zeros: int) -> int:
        """Take the next piece; returns the bytes it used."""
        if self.golang:
            if self.scan.done or self.error is not None:
                return 0
            try:
                self.scan.feed(data, zeros)
            except PackageDataError as exc:
                self.error = exc
            return len(data)
        self.data += bytes(min(zeros, MANIFEST_LIMIT)) + data
        return len(data)


async def _finish(piece: _Piece, distro: Distro, tally: _Tally, later: list[Source]) -> None:
    for source in piece.sources:
        found: list[Found] = []
        try:
            if piece.error is not None:
                raise piece.error
            if piece.golang and piece.scan.pointed:
                later.append(source)
                continue
            if piece.golang:
                info = piece.scan.found
                found = golang.parse_modules(info[1]) if info else []
            else:
                found = await anyio.to_thread.run_sync(source.parse, bytes(piece.data))
        except _Partly as exc:
            found = exc.found
            tally.problems.append(_problem(source, str(exc)))
        except PackageDataError as exc:
            tally.problems.append(_problem(source, str(exc)))
        tally.files += 1
        _add(tally, source, found, distro)


def _too_large(source: Source) -> str:
    return f"{_size(source.node)} bytes, past the {source.limit}-byte limit: not read"


def _add(
    tally: _Tally,
    source: Source,
    found: list[Found],
    distro: Distro,
    layers: dict[Hashable, int] | None = None,
) -> None:
    if layers is None and source.node.path in _DATABASES and found:
        tally.databases.append((source, found))
        return
    room = MAX_PACKAGES - len(tally.packages)
    if len(found) > room:
        tally.cut = True
    tally.packages.extend(
        _package(source, f, distro, (layers or {}).get(_key(f), source.node.layer))
        for f in found[: max(room, 0)]
    )


_DATABASES = frozenset({dpkg.STATUS, *apk.INSTALLED, *rpm.SQLITE})
"""Files that each list many packages (``history`` finds the layer of each)."""


def _key(found: Found) -> Hashable:
    return (found.name, found.version, found.arch, tuple(sorted(found.qualifiers.items())))


async def _add_databases(
    layerpeek: Layerpeek, image: ResolvedImage, overlay: Overlay, distro: Distro, tally: _Tally
) -> None:
    """Add the packages of each many-package database, each with the layer that installed
    it: the lower copies of the database are read (by ranges) and compared."""
    for source, found in tally.databases:
        copies: list[tuple[int, set[Hashable]]] = []
        lower = await anyio.to_thread.run_sync(history.lower_copies, overlay, source.node)
        for node in lower:
            listed = await _copy_keys(layerpeek, image, source, node, tally)
            if listed is None:
                break
            copies.append((node.layer, listed))
        keys = [_key(f) for f in found]
        layers = history.install_layers(source.node.layer, keys, copies)
        _add(tally, source, found, distro, layers)
    tally.databases = []


async def _copy_keys(
    layerpeek: Layerpeek, image: ResolvedImage, source: Source, node: Node, tally: _Tally
) -> set[Hashable] | None:
    """The package keys of a lower copy of a database; None when it cannot be read (the
    copies below it then say nothing)."""
    if node.size > source.limit or source.parse is None:
        return None
    try:
        data = await layerpeek.read_span(image, node, 0, node.size)
        tally.bytes += len(data)
        tally.files += 1
        found = await anyio.to_thread.run_sync(source.parse, data)
    except _Partly as exc:
        found = exc.found
    except (PackageDataError, LayerError, FileNotInLayer):
        return None
    return {_key(f) for f in found}


async def _found(source: Source, read_at: Callable[[int, int], Awaitable[bytes]]) -> list[Found]:
    size = _size(source.node)
    if source.parse is None:
        info = await golang.read_buildinfo(read_at, size)
        return golang.parse_modules(info[1]) if info else []
    if size > source.limit:
        raise PackageDataError(_too_large(source))
    data = await read_at(0, size)
    return await anyio.to_thread.run_sync(source.parse, data)


def _problem(source: Source, message: str) -> DatabaseProblem:
    return DatabaseProblem(
        kind=source.kind, path=source.node.path, layer=source.node.layer, message=message
    )


def _package(source: Source, found: Found, distro: Distro, layer: int) -> Package:
    return Package(
        name=found.name,
        version=found.version,
        arch=found.arch,
        kind=source.kind,
        path=source.node.path,
        layer=layer,
        purl=purl_for(source.kind, found, distro),
    )


async def _distro(
    layerpeek: Layerpeek, image: ResolvedImage, overlay: Overlay, tally: _Tally
) -> Distro:
    """The distribution of the first os-release that is a regular file."""
    for asked in OS_RELEASE:
        node = overlay.lookup(asked).node
        if node is None or node.type != "file" or node.size > MANIFEST_LIMIT:
            continue
        try:
            data = await layerpeek.read_span(image, node, 0, node.size)
        except (LayerError, FileNotInLayer):
            continue
        tally.bytes += len(data)
        tally.files += 1
        fields = parse_os_release(data.decode("utf-8", "replace"))
        return Distro(fields.get("ID", "").lower(), fields.get("VERSION_ID", ""))
    return Distro()
