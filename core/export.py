"""An image's merged filesystem, or one directory of it, as a tar stream (``crane export``).

The members and their order come from :mod:`layerpeek.core.fs.export`; each file's bytes are
read as ``cat`` reads them (``Layerpeek.read``): by the chunks of a TOC, by one range from a
checkpoint of an indexed layer, else by streaming its layer up to the file. So exporting one
directory of an indexed layer costs that directory's bytes, not the layer's.

A damaged layer stops the export with its error instead of ending in an archive that looks
whole; a file whose bytes come short of its header's size does too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
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
from layerpeek.core.layers.entry import display_path
from layerpeek.core.service import FileCopy, Layerpeek, ResolvedImage


async def tar_stream(
    peek: Layerpeek, image: ResolvedImage, path: str | None = None
) -> AsyncIterator[bytes]:
    """The tar of ``path`` (a directory, or a file; symlinks on the way followed as in the
    image) or of the whole merged filesystem; ends with the archive's end blocks."""
    selected = await _selected(peek, image, path)
    ordered = await anyio.to_thread.run_sync(extraction_order, selected)
    for member in await anyio.to_thread.run_sync(list, members(ordered)):
        yield header(member)
        if member.data is not None:
            async for chunk in _data(peek, image, member):
                yield chunk
            yield padding(member.size)
    yield END


async def _selected(peek: Layerpeek, image: ResolvedImage, path: str | None) -> Sequence[Node]:
    view = await peek.merged(image)  # no problems list: a damaged layer is raised
    asked = display_path(path.strip()) if path else ""
    if asked in ("", "."):
        return view.nodes
    found = await anyio.to_thread.run_sync(partial(view.overlay.lookup, asked, True))
    if found.node is None:
        raise FileNotInLayer(f"{asked} is not in the merged filesystem of {image.reference}")
    return await anyio.to_thread.run_sync(subtree, view.nodes, found.path)


async def _data(peek: Layerpeek, image: ResolvedImage, member: Member) -> AsyncIterator[bytes]:
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
