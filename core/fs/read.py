"""Reading one file: which copy a path names, why there is none, and its bytes.

``locate`` answers which entry of which layer a read of a path returns, from the merged
view (``Overlay.lookup``, the only path rules) or from one layer's own listing, or raises
the one-line error that says why there is none: missing, deleted by a later layer, cut by
the scanner, not a regular file, a symlink loop. ``read`` streams a located copy from its
layer's index: through the layer's TOC, with one range, or by streaming the layer up to it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial

import anyio
import anyio.to_thread

from layerpeek.core.errors import FileNotInLayer, LayerError, LayerpeekError, TruncatedLayer
from layerpeek.core.filehead import read_head
from layerpeek.core.fs.merge import Merges
from layerpeek.core.fs.overlay import CUT_REASON, MAX_HOPS, Event, Lookup, Node, Overlay
from layerpeek.core.image.resolve import ResolvedImage
from layerpeek.core.layers.entry import NAME_LIMIT, TarEntry, display_path
from layerpeek.core.layers.index.model import LayerIndex
from layerpeek.core.layers.index.ranged import ranged, read_ranged
from layerpeek.core.layers.index.store import LayerIndexes
from layerpeek.core.layers.reader import BlobReader
from layerpeek.core.layers.scan import FileData, scan_layer
from layerpeek.core.layers.toc.files import read_toc_file
from layerpeek.core.registry.client import RegistryClient


@dataclass(frozen=True)
class FileCopy:
    """The bytes a read returns: entry ``position`` of layer ``layer``'s listing, named
    ``layer_path`` there, ``size`` bytes.

    ``asked`` is the path as given (normalised), ``path`` the merged path read once links
    were followed (``asked`` itself for a layer's own copy), ``links`` the symlinks followed
    on the way, so an answer can say ``etc/os-release → usr/lib/os-release``."""

    asked: str
    path: str
    links: tuple[str, ...]
    layer: int
    layer_path: str
    position: int
    size: int

    @property
    def shown(self) -> str:
        """The path asked, and where links led it when they did."""
        return self.asked if self.path == self.asked else f"{self.asked} → {self.path}"

    @classmethod
    def of(cls, node: Node) -> FileCopy:
        """The very copy of a regular file the merged view saw (present or removed)."""
        return cls(node.path, node.path, (), node.layer, node.layer_path, node.position, 0)


class FileReads:
    """Locate and read single files of the images one service reads."""

    def __init__(self, client: RegistryClient, indexes: LayerIndexes, merges: Merges) -> None:
        self.client = client
        self.indexes = indexes
        self.merges = merges

    async def locate(
        self, image: ResolvedImage, path: str, layer: int | None = None, *, follow: bool = True
    ) -> FileCopy:
        """Which copy of which file a read of ``path`` returns (``Layerpeek.locate``)."""
        path = _normalise(path)
        if layer is not None:
            index = image.layer(layer)
            entries = (await self.layer_index(image, index)).entries
            return await anyio.to_thread.run_sync(_layer_copy, image, index, path, entries)
        overlay = await self.merges.overlay(image)
        found = await anyio.to_thread.run_sync(partial(overlay.lookup, path, follow))
        return _merged_copy(image, overlay, path, found)

    async def read(self, image: ResolvedImage, copy: FileCopy) -> AsyncGenerator[bytes, None]:
        """Stream the bytes of a located copy (``Layerpeek.read``)."""
        known = await self.layer_index(image, copy.layer)
        entry = known.entries[copy.position] if copy.position < len(known.entries) else None
        if entry is None or entry.path != copy.layer_path or entry.type != "file":
            raise LayerpeekError(
                f"layer {copy.layer} no longer lists {copy.layer_path} where it did; read again"
            )
        if not entry.size:
            return
        descriptor = image.manifest.layers[copy.layer]
        toc = await self.indexes.toc(image.reference, descriptor)
        copies, total = await anyio.to_thread.run_sync(_copies, known.entries, copy.position)
        if toc is not None and copies + 1 == total and entry.path in toc.files:
            fetch = partial(self.client.fetch_range, image.reference, descriptor.digest)
            reading = read_toc_file(fetch, toc, entry.path)
        elif toc is None and ranged(known, entry):
            reading = read_ranged(self.client, image.reference, known, entry)
        else:
            reading = self._streamed(image, copy.layer, entry.path, copies)
        async with aclosing(reading) as chunks:
            async for chunk in chunks:
                yield chunk

    async def head(self, image: ResolvedImage, node: Node, limit: int) -> bytes | None:
        """The first ``limit`` bytes of the regular file ``node`` (present or removed): the
        very copy the merged view saw, wherever its layer holds others of that name. None
        when the layer's damage keeps them from being read (the report already names it)."""
        try:
            return (await read_head(self.read(image, FileCopy.of(node)), limit)).data
        except LayerError:
            return None

    async def span(self, image: ResolvedImage, node: Node, start: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``start`` of the regular file (or hard link) ``node``
        (``Layerpeek.read_span``): one range of its layer where the layer's index allows it,
        else the file read up to them."""
        file = node.linked if node.type == "hardlink" else node
        if file is None or file.type != "file" or start >= file.size or length <= 0:
            return b""
        length = min(length, file.size - start)
        known = await self.layer_index(image, file.layer)
        entry = known.entries[file.position] if 0 <= file.position < len(known.entries) else None
        toc = await self.indexes.toc(image.reference, image.manifest.layers[file.layer])
        if entry is not None and entry.type == "file" and toc is None:
            part = entry._replace(offset=entry.offset + start, size=length)
            if ranged(known, part):
                reading, start = read_ranged(self.client, image.reference, known, part), 0
            else:
                reading = self.read(image, FileCopy.of(file))
        else:
            reading = self.read(image, FileCopy.of(file))
        data, seen = bytearray(), 0
        async with aclosing(reading) as chunks:
            async for chunk in chunks:
                if seen + len(chunk) > start:
                    data += chunk[max(start - seen, 0) :]
                seen += len(chunk)
                if len(data) >= length:
                    break
        return bytes(data[:length])

    def events(
        self, image: ResolvedImage, layer: int, want: Callable[[TarEntry], bool]
    ) -> AsyncGenerator[TarEntry | FileData, None]:
        """One streaming pass over layer ``layer`` (resuming after drops): its entries, and
        the data of the regular files ``want`` accepts."""
        return scan_layer(self._blob(image, layer).chunks(), want=want)

    async def files(
        self, image: ResolvedImage, layer: int, want: Callable[[TarEntry], bool]
    ) -> AsyncGenerator[FileData, None]:
        """The data of every regular file of layer ``layer`` that ``want`` accepts, in one
        streaming pass (``Layerpeek.stream_files``)."""
        events = self.events(image, layer, want)
        try:
            async for event in events:
                if isinstance(event, FileData):
                    yield event
        finally:
            await events.aclose()

    def _blob(self, image: ResolvedImage, layer: int) -> BlobReader:
        """Layer ``layer``'s blob, read in one pass that resumes after drops."""
        descriptor = image.manifest.layers[layer]
        return BlobReader(
            self.client, image.reference, descriptor.digest, end=descriptor.size or None
        )

    async def layer_index(self, image: ResolvedImage, layer: int) -> LayerIndex:
        """The layer's complete index: remembered, cached, from its TOC, or scanned now."""
        descriptor = image.manifest.layers[layer]
        view = await self.indexes.view(image.reference, descriptor, None, whole=True)
        if view.problem is not None:  # a read needs the whole layer's word on its names
            raise view.problem
        assert view.index is not None, "a complete view carries its index"
        return view.index

    async def _streamed(
        self, image: ResolvedImage, layer: int, path: str, copies: int
    ) -> AsyncGenerator[bytes, None]:
        """One pass over a layer (resuming after drops), up to the data of its regular file
        ``path`` that follows ``copies`` others of that name, and no further."""
        events = scan_layer(self._blob(image, layer).chunks(), want=_nth_named(path, copies + 1))
        try:
            async for event in events:
                if isinstance(event, FileData):
                    for chunk in event.content():
                        yield chunk
                    if event.last:
                        return
        finally:
            await events.aclose()
        raise TruncatedLayer(f"layer {layer} ends before the data of {path!r}")


def _nth_named(path: str, nth: int) -> Callable[[TarEntry], bool]:
    """A scan's ``want``: the ``nth`` regular file named ``path`` the scanner offers."""
    seen = [0]

    def want(entry: TarEntry) -> bool:
        if entry.path != path:
            return False
        seen[0] += 1
        return seen[0] == nth

    return want


def _normalise(path: str) -> str:
    """A user's path in listing form; ``..`` is kept, so a hostile name can be read by it."""
    clean = display_path(path.strip())
    if clean in ("", "."):
        raise LayerpeekError("a file path is needed, not the root directory")
    return clean


def _merged_copy(image: ResolvedImage, overlay: Overlay, asked: str, found: Lookup) -> FileCopy:
    """The copy a merged-view lookup found, or the error that says why there is none."""
    shown = asked if found.path == asked else f"{asked} → {found.path}"
    if found.loop:
        raise FileNotInLayer(f"{asked}: {_loop(found.links)}", path=asked)
    node = found.node
    if node is None:
        if found.path == "":
            raise FileNotInLayer(f"{shown}: the root directory, not a file", path=asked)
        raise _missing(image, overlay, asked, shown, found.path)
    if node.type == "symlink":
        raise FileNotInLayer(
            f"{shown} is a symlink to {node.link} in layer {node.layer}, not followed", path=asked
        )
    file = node.linked if node.type == "hardlink" else node
    if file is None:
        raise FileNotInLayer(
            f"{shown} is a hard link to {node.link} in layer {node.layer}, which names no file",
            path=asked,
        )
    if file.type != "file":
        raise FileNotInLayer(
            f"{shown} is a {node.type} in layer {node.layer}, not a regular file", path=asked
        )
    return FileCopy(
        asked, found.path, found.links, file.layer, file.layer_path, file.position, file.size
    )


def _missing(
    image: ResolvedImage, overlay: Overlay, asked: str, shown: str, path: str
) -> FileNotInLayer:
    """Why nothing is at the merged ``path`` that ``asked`` led to: a later layer removed
    it, its name is one the scanner cut (no runtime creates it), or no layer has it."""
    cut = next(
        (odd for odd in overlay.irregular if odd.path == path and odd.reason == CUT_REASON), None
    )
    if cut is not None:
        return FileNotInLayer(_cut_message(path, cut.layer), path=asked)
    story = overlay.story(path)
    if story and story[-1].action in ("deleted", "hidden", "displaced"):
        removal = story[-1]
        readable = _still_shipped(story[:-1], asked, path)
        return FileNotInLayer(
            _deleted_message(image, removal.layer, shown, removal.action, readable),
            path=asked,
            deleted_in=removal.layer,
            readable_layers=readable,
        )
    return FileNotInLayer(f"{shown} is not a file in any layer of {image.reference}", path=asked)


def _still_shipped(story: Sequence[Event], asked: str, path: str) -> tuple[int, ...]:
    """The layers whose own copy at the merged ``path`` is a regular file named ``asked``
    in their tar: a read of that layer's copy of ``asked`` returns it."""
    return tuple(
        sorted(
            {
                event.layer
                for event in story
                if event.action in ("added", "changed")
                and event.type == "file"
                and (event.shipped_as or path) == asked
            }
        )
    )


def _loop(links: tuple[str, ...]) -> str:
    """A symlink loop named by its cycle, or the chain when no link repeats."""
    first: dict[str, int] = {}
    for at, link in enumerate(links):
        if link in first:
            return "a symlink loop: " + _chain(links[first[link] : at + 1])
        first[link] = at
    return f"more than {MAX_HOPS} symlinks on the way: " + _chain(links)


def _chain(links: tuple[str, ...]) -> str:
    """Links joined by arrows, each and the whole of them cut to a readable length."""
    names = [link if len(link) <= 80 else link[:80] + "…" for link in links]
    if len(names) > 6:
        names = [*names[:3], "…", *names[-2:]]
    return " → ".join(names)


def _layer_copy(
    image: ResolvedImage, layer: int, path: str, entries: Sequence[TarEntry]
) -> FileCopy:
    """The copy layer ``layer`` ships as ``path``: its last entry of that name, a hard link
    read through the entry it names before it."""
    position = _last_named(entries, path, len(entries))
    if position < 0:
        raise FileNotInLayer(
            f"{path} is not a file in layer {layer} of {image.reference}", path=path, layer=layer
        )
    while entries[position].type == "hardlink" and not entries[position].cut:
        link = entries[position]
        position = _last_named(entries, display_path(link.link), position)
        if position < 0:
            raise FileNotInLayer(
                f"{link.path} is a hard link to {link.link}, which layer {layer} does not ship "
                "before it",
                path=path,
                layer=layer,
                merged=True,
            )
    entry = entries[position]
    _readable(entry, layer)
    return FileCopy(path, path, (), layer, entry.path, position, entry.size)


def _last_named(entries: Sequence[TarEntry], path: str, before: int) -> int:
    """The position of the last entry named ``path`` before ``before``; -1 for none."""
    for position in range(before - 1, -1, -1):
        if entries[position].path == path:
            return position
    return -1


def _copies(entries: Sequence[TarEntry], position: int) -> tuple[int, int]:
    """How many regular files named as entry ``position`` come before it, and how many
    there are in all: the scanner offers only those to a read's ``want``, and a TOC keeps
    only the last."""
    name, before, total = entries[position].path, 0, 0
    for at, entry in enumerate(entries):
        if entry.type == "file" and not entry.cut and entry.path == name:
            before += at < position
            total += 1
    return before, total


def _readable(entry: TarEntry, index: int) -> None:
    """Nothing for a regular file; a clear error for what cannot be read as one."""
    path = entry.path
    if entry.cut:
        raise FileNotInLayer(_cut_message(path, index), path=path, layer=index)
    if entry.type == "file":
        return
    if entry.type == "symlink":
        raise FileNotInLayer(
            f"{path} is a symlink to {entry.link} in layer {index}; a layer's own copy "
            "is read as shipped, not followed",
            path=path,
            layer=index,
            merged=True,
        )
    raise FileNotInLayer(
        f"{path} is a {entry.type} in layer {index}, not a regular file", path=path, layer=index
    )


def _cut_message(path: str, layer: int) -> str:
    return (
        f"{path[:80]}… in layer {layer} is listed with its name cut at {NAME_LIMIT:,} bytes; "
        "a name that long cannot be read"
    )


def _deleted_message(
    image: ResolvedImage, index: int, path: str, action: str, readable: tuple[int, ...]
) -> str:
    """What removed ``path``, by which build step, and which lower layers still ship it."""
    step = image.config.step_for_layer(index)
    how = f" ({step[:80]})" if step else ""
    why = {"hidden": " by an opaque directory", "displaced": " with a directory above it"}
    said = f"{path} was deleted in layer {index}{why.get(action, '')}{how}"
    if len(readable) == 1:
        return f"{said}; layer {readable[0]} still ships a copy"
    if readable:
        return f"{said}; layers {', '.join(map(str, readable))} still ship copies"
    return said
