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
from collections.abc import Collection, Hashable

import anyio
import anyio.to_thread

from layerpeek.core.errors import FileNotInLayer, LayerError, PackageDataError
from layerpeek.core.fs.overlay import Node, Overlay
from layerpeek.core.fs.triage import OS_RELEASE, parse_os_release
from layerpeek.core.image.resolve import ResolvedImage
from layerpeek.core.models import LayerProblem, marks
from layerpeek.core.packages import history
from layerpeek.core.packages.collect import Tally, add, package_key
from layerpeek.core.packages.model import (
    KINDS,
    MAX_PACKAGES,
    Distro,
    Kind,
    PackageReport,
    Partly,
)
from layerpeek.core.packages.reads import read_layer, read_source
from layerpeek.core.packages.sources import MANIFEST_LIMIT, Source, file_of, find_sources
from layerpeek.core.service import Layerpeek

PARALLEL = 8
"""Files read at once."""


STREAM_AT = 8
"""Files to read in one compressed layer from which that layer is read in one pass instead
of a range a file: each range inflates from the checkpoint before it (up to 4 MiB away), so
hundreds of small reads of one layer cost more than the layer."""


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
    tally = Tally()
    sources, skipped = await anyio.to_thread.run_sync(find_sources, view.nodes, frozenset(kinds))
    tally.problems.extend(skipped)
    distro = await _distro(layerpeek, image, view.overlay, tally)
    limiter = anyio.CapacityLimiter(PARALLEL)
    ranged, passes = _plan(image, sources, stream_at)
    async with anyio.create_task_group() as group:
        for source in ranged:
            group.start_soon(read_source, layerpeek, image, source, distro, tally, limiter)
        for layer, group_sources in passes.items():
            group.start_soon(read_layer, layerpeek, image, layer, group_sources, distro, tally)
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


def _plan(
    image: ResolvedImage, sources: list[Source], stream_at: int
) -> tuple[list[Source], dict[int, list[Source]]]:
    """The sources read by ranges, and by layer those read in one pass of their layer."""
    by_layer: dict[int, list[Source]] = defaultdict(list)
    for source in sources:
        by_layer[file_of(source.node).layer].append(source)
    passes = {
        layer: group
        for layer, group in by_layer.items()
        if len(group) >= stream_at and _compressed(image.manifest.layers[layer].media_type)
    }
    ranged = [s for layer, group in by_layer.items() if layer not in passes for s in group]
    return ranged, passes


def _compressed(media_type: str) -> bool:
    return not media_type.endswith((".tar", "tar"))


async def _add_databases(
    layerpeek: Layerpeek, image: ResolvedImage, overlay: Overlay, distro: Distro, tally: Tally
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
        keys = [package_key(f) for f in found]
        layers = history.install_layers(source.node.layer, keys, copies)
        add(tally, source, found, distro, layers)
    tally.databases = []


async def _copy_keys(
    layerpeek: Layerpeek, image: ResolvedImage, source: Source, node: Node, tally: Tally
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
    except Partly as exc:
        found = exc.found
    except (PackageDataError, LayerError, FileNotInLayer):
        return None
    return {package_key(f) for f in found}


async def _distro(
    layerpeek: Layerpeek, image: ResolvedImage, overlay: Overlay, tally: Tally
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
