"""Reading the sources of an inventory: a file by ranges of its layer
(``Layerpeek.read_span``), or every source of one layer in one pass over it
(``Layerpeek.stream_files``), a Go binary scanned as it streams past."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable

import anyio
import anyio.to_thread

from layerpeek.core.errors import FileNotInLayer, LayerError, PackageDataError
from layerpeek.core.image.resolve import ResolvedImage
from layerpeek.core.packages import golang
from layerpeek.core.packages.collect import Tally, add, problem
from layerpeek.core.packages.model import Distro, Found, Partly
from layerpeek.core.packages.sources import (
    MANIFEST_LIMIT,
    Source,
    file_of,
    size_of,
    too_large,
)
from layerpeek.core.service import Layerpeek


async def read_source(
    layerpeek: Layerpeek,
    image: ResolvedImage,
    source: Source,
    distro: Distro,
    tally: Tally,
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
        except Partly as exc:
            found = exc.found
            tally.problems.append(problem(source, str(exc)))
        except (PackageDataError, LayerError, FileNotInLayer) as exc:
            tally.problems.append(problem(source, str(exc)))
        tally.files += 1
    add(tally, source, found, distro)


async def read_layer(
    layerpeek: Layerpeek,
    image: ResolvedImage,
    layer: int,
    sources: list[Source],
    distro: Distro,
    tally: Tally,
) -> None:
    """Read every source of one layer in one pass over it; a Go binary of the older format
    is read by ranges after it."""
    wanted: dict[str, list[Source]] = defaultdict(list)
    for source in sources:
        if source.parse is not None and size_of(source.node) > source.limit:
            tally.problems.append(problem(source, too_large(source)))
            tally.files += 1
        else:
            wanted[file_of(source.node).layer_path].append(source)
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
            tally.problems.extend(problem(source, damage) for source in group)
    for source in later:
        await read_source(layerpeek, image, source, distro, tally, anyio.CapacityLimiter(1))


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


async def _finish(piece: _Piece, distro: Distro, tally: Tally, later: list[Source]) -> None:
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
                found = await _modules(info[1]) if info else []
            elif source.parse is not None:
                found = await anyio.to_thread.run_sync(source.parse, bytes(piece.data))
        except Partly as exc:
            found = exc.found
            tally.problems.append(problem(source, str(exc)))
        except PackageDataError as exc:
            tally.problems.append(problem(source, str(exc)))
        tally.files += 1
        add(tally, source, found, distro)


async def _found(source: Source, read_at: Callable[[int, int], Awaitable[bytes]]) -> list[Found]:
    size = size_of(source.node)
    if source.parse is None:
        info = await golang.read_buildinfo(read_at, size)
        return await _modules(info[1]) if info else []
    if size > source.limit:
        raise PackageDataError(too_large(source))
    data = await read_at(0, size)
    return await anyio.to_thread.run_sync(source.parse, data)


async def _modules(info: str) -> list[Found]:
    """A binary's modules, parsed in a worker thread: its build information may be 4 MiB."""
    return await anyio.to_thread.run_sync(golang.parse_modules, info)
