"""An image's merged filesystem, or one directory of it, as a tar stream (``crane export``).

The members and their order come from :mod:`layerpeek.core.fs.export`; each file's bytes are
read as ``cat`` reads them (``Layerpeek.read``): by the chunks of a TOC, by one range from a
checkpoint of an indexed layer, else by streaming its layer up to the file. So exporting one
directory of an indexed layer costs that directory's bytes, not the layer's.

Many files of one compressed layer without a TOC (``STREAM_AFTER`` or more) are read in one
pass over the layer instead: a range per file would decompress up to a checkpoint spacing
(4 MiB) for each, where the containerd order, the layer's own tar order, lets a single
scan hand over each file's bytes as the archive reaches it.

A damaged layer stops the export with its error instead of ending in an archive that looks
whole; a file whose bytes come short of its header's size does too.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from functools import partial

import anyio.to_thread

from layerpeek.core.errors import FileNotInLayer, TruncatedLayer
from layerpeek.core.fs.export import (
    END,
    Member,
    extraction_order,
    header,
    members,
    padding,
    subtree,
)
from layerpeek.core.fs.overlay import Node
from layerpeek.core.fs.read import FileCopy
from layerpeek.core.image.resolve import ResolvedImage
from layerpeek.core.layers.entry import TarEntry, display_path
from layerpeek.core.layers.scan import FileData
from layerpeek.core.service import Layerpeek

STREAM_AFTER = 16
"""Files of one compressed layer without a TOC from which one pass over the layer serves them."""


async def tar_stream(
    peek: Layerpeek,
    image: ResolvedImage,
    path: str | None = None,
    *,
    stream_after: int = STREAM_AFTER,
) -> AsyncGenerator[bytes, None]:
    """The tar of ``path`` (a directory, or a file; symlinks on the way followed as in the
    image) or of the whole merged filesystem; ends with the archive's end blocks."""
    selected = await _selected(peek, image, path)
    ordered = await anyio.to_thread.run_sync(extraction_order, selected)
    planned = await anyio.to_thread.run_sync(list, members(ordered))
    for layer, run in _by_layer(planned):
        files = [m for m in run if m.data is not None and m.data.layer == layer and m.size]
        passing = len(files) >= stream_after and await _one_pass_pays(peek, image, layer)
        stream = _LayerPass(peek, image, layer, files) if passing else None
        by_pass = {id(member) for member in files} if passing else set()
        try:
            for member in run:
                yield header(member)
                if member.data is None:
                    continue
                source = stream.data(member) if stream and id(member) in by_pass else None
                async for chunk in source or _data(peek, image, member):
                    yield chunk
                yield padding(member.size)
        finally:
            if stream is not None:
                await stream.aclose()
    yield END


def _by_layer(planned: list[Member]) -> list[tuple[int, list[Member]]]:
    """The members in runs of one layer each (the containerd order keeps a layer together)."""
    runs: list[tuple[int, list[Member]]] = []
    for member in planned:
        if not runs or runs[-1][0] != member.node.layer:
            runs.append((member.node.layer, []))
        runs[-1][1].append(member)
    return runs


async def _one_pass_pays(peek: Layerpeek, image: ResolvedImage, layer: int) -> bool:
    """A compressed layer without a TOC: its files cost more by range than by one pass."""
    descriptor = image.manifest.layers[layer]
    if await peek.indexes.toc(image.reference, descriptor) is not None:
        return False
    return (await peek.layer_index(image, layer)).compression != "none"


class _LayerPass:
    """One streaming pass over a layer handing out the bytes of ``files`` in order: the
    scanner is asked for exactly those entries (by name and by how many regular files of that
    name come before, as a read of one copy asks)."""

    def __init__(
        self, peek: Layerpeek, image: ResolvedImage, layer: int, files: list[Member]
    ) -> None:
        self._peek, self._image, self._layer = peek, image, layer
        self._files = files
        self._events: AsyncGenerator[TarEntry | FileData, None] | None = None

    async def _start(self) -> AsyncGenerator[TarEntry | FileData, None]:
        known = await self._peek.layer_index(self._image, self._layer)
        positions = {m.data.position for m in self._files if m.data is not None}
        wanted = await anyio.to_thread.run_sync(_wanted, known.entries, positions)
        seen: dict[str, int] = {}

        def want(entry: TarEntry) -> bool:
            count = seen.get(entry.path, 0)
            seen[entry.path] = count + 1
            return (entry.path, count) in wanted

        return self._peek.layer_events(self._image, self._layer, want)

    async def data(self, member: Member) -> AsyncGenerator[bytes, None]:
        """The next wanted file's bytes, which must be ``member``'s."""
        if self._events is None:
            self._events = await self._start()
        file = member.data
        assert file is not None
        async for event in self._events:
            if not isinstance(event, FileData):
                continue
            if event.entry.path != file.layer_path:
                raise TruncatedLayer(
                    f"layer {self._layer} gave {event.entry.path!r} where {file.layer_path!r} "
                    "was next"
                )
            for chunk in event.content():
                yield chunk
            if event.last:
                return
        raise TruncatedLayer(f"layer {self._layer} ends before the data of {file.layer_path!r}")

    async def aclose(self) -> None:
        if self._events is not None:
            await self._events.aclose()


def _wanted(entries: Sequence[TarEntry], positions: set[int]) -> set[tuple[str, int]]:
    """(name, how many regular files of that name come before) of the entries at
    ``positions``: how the scanner's ``want`` recognises them, in one pass over the layer."""
    seen: dict[str, int] = {}
    wanted = set()
    for at, entry in enumerate(entries):
        if entry.type == "file" and not entry.cut:
            count = seen.get(entry.path, 0)
            seen[entry.path] = count + 1
            if at in positions:
                wanted.add((entry.path, count))
    return wanted


async def _selected(peek: Layerpeek, image: ResolvedImage, path: str | None) -> Sequence[Node]:
    view = await peek.merged(image)  # no problems list: a damaged layer is raised
    asked = display_path(path.strip()) if path else ""
    if asked in ("", "."):
        return view.nodes
    found = await anyio.to_thread.run_sync(partial(view.overlay.lookup, asked, True))
    if found.node is None:
        raise FileNotInLayer(f"{asked} is not in the merged filesystem of {image.reference}")
    return await anyio.to_thread.run_sync(subtree, view.nodes, found.path)


async def _data(
    peek: Layerpeek, image: ResolvedImage, member: Member
) -> AsyncGenerator[bytes, None]:
    """The member's bytes, exactly its header's size of them."""
    file = member.data
    assert file is not None
    copy = FileCopy(
        member.node.path, file.path, (), file.layer, file.layer_path, file.position, file.size
    )
    sent = 0
    async with aclosing(peek.read(image, copy)) as chunks:
        async for chunk in chunks:
            sent += len(chunk)
            if sent > file.size:
                break
            yield chunk
    if sent != file.size:
        raise TruncatedLayer(
            f"layer {file.layer} gave {sent} bytes of {file.path}, whose header says {file.size}"
        )
