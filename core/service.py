"""The façade every front end calls: one method per user action, typed answers.

Front ends (CLI, MCP server, Discord bot) parse their input, call one of these and format the
result; registries, HTTP, tar and caching stay behind this line. Each method is a few lines
over the module that does the work, in the order of the flow: ``image.resolve`` (reference →
manifest → platform → config), ``layers.listing`` and ``layers.pull`` (a layer's entries or
its blob), ``fs.read`` (one file), ``fs.analyses`` (questions of the merged filesystem).
``fs.analyses`` (with its reports, triage rules and RE2) is imported by the methods that ask
it, so that a process that only lists or reads layers never loads it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING

from layerpeek.core.cache.interface import CacheStore, open_cache
from layerpeek.core.fs.kept import MergedView
from layerpeek.core.fs.merge import Merges
from layerpeek.core.fs.overlay import Node, Overlay
from layerpeek.core.fs.read import FileCopy, FileReads
from layerpeek.core.image.resolve import ResolvedImage, Resolver, image_report
from layerpeek.core.layers import listing, pull
from layerpeek.core.layers.entry import Tally, TarEntry
from layerpeek.core.layers.index.model import LayerIndex
from layerpeek.core.layers.index.store import LayerIndexes
from layerpeek.core.layers.progress import ProgressCallback
from layerpeek.core.layers.scan import FileData
from layerpeek.core.models import (
    DiffReport,
    EntryInfo,
    EntryPage,
    FindResult,
    ImageReport,
    IrregularInfo,
    LayerProblem,
    MergedListing,
    PathTrace,
    PlatformsReport,
    PullResult,
    RemovedReport,
    TriageReport,
)
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.registry.platform import Platform
from layerpeek.core.registry.reference import Reference, parse_repository

if TYPE_CHECKING:
    from layerpeek.core.fs.find import FindSpec


class Layerpeek:
    """Inspect images through one shared :class:`RegistryClient`."""

    def __init__(self, client: RegistryClient, *, cache: CacheStore | None = None) -> None:
        """``cache``: one the caller owns and closes; by default the settings' own, which
        ``aclose`` closes."""
        self.client = client
        self._owns_cache = cache is None
        self.cache = cache or open_cache(client.settings)
        self.indexes = LayerIndexes(client, self.cache)
        # Concurrent asks for one manifest or config of one repository share one request.
        self._resolver = Resolver(client, self.cache)
        # One merge per image however many ask, kept so that its pages are slices.
        self._merges = Merges(self.indexes)
        self._reads = FileReads(client, self.indexes, self._merges)

    async def __aenter__(self) -> Layerpeek:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release the cache's connections (the client is its owner's to close)."""
        if self._owns_cache:
            await self.cache.close()

    # -- images ----------------------------------------------------------------------------

    async def resolve(
        self, reference: str | Reference, platform: str | Platform | None = None
    ) -> ResolvedImage:
        """Tag → manifest (through the index for ``platform``, default linux/amd64) + config."""
        return await self._resolver.resolve(reference, platform)

    async def inspect(
        self, reference: str | Reference, platform: str | Platform | None = None
    ) -> ImageReport:
        """What the image is: platforms, layers with their build steps, history, config."""
        return image_report(await self.resolve(reference, platform))

    async def inspect_platforms(self, reference: str | Reference) -> PlatformsReport:
        """Every platform of a multi-arch tag side by side (fetched concurrently)."""
        return await self._resolver.platforms(reference)

    async def tags(self, repository: str | Reference) -> list[str]:
        """The repository's tags, every page of them, sorted (registries need not sort)."""
        ref = repository if isinstance(repository, Reference) else parse_repository(repository)
        return sorted(await self.client.list_tags(ref))

    # -- layers ----------------------------------------------------------------------------

    def entries(
        self,
        image: ResolvedImage,
        layer: int | None = None,
        on_progress: ProgressCallback | None = None,
        *,
        whole: bool = False,
        tally: Tally | None = None,
        problems: list[LayerProblem] | None = None,
        start: int = 0,
    ) -> AsyncGenerator[EntryInfo, None]:
        """Entries of one layer, or of every layer bottom-up; stop iterating to stop reading.

        ``whole``: the caller will read every entry (a full listing, a count, the merged
        view), so a scan reads ahead from the layer's first byte; without it the first 4 MiB
        are read step by step, as for a page, and stopping early costs little. Past
        ``IMAGE_LIMITS`` entries or characters of names in all, ``ImageTooLarge``: ``tally``
        counts them across calls, for a caller that lists the layers one call each.

        A damaged layer (``LayerError``) yields every entry before the damage. Then, given
        ``problems``, the damage is added to it and the listing goes on with the next layer:
        the caller answers with what was read and says it is incomplete. Without
        ``problems`` the error is raised there, for callers that need the whole layer.

        ``start``: the listing of one ``layer`` begins at its entry ``start``, a slice of the
        layer's index: a page deep in a layer makes no model of the entries it skips."""
        return listing.entries(
            self.indexes,
            image,
            layer,
            on_progress,
            whole=whole,
            tally=tally,
            problems=problems,
            start=start,
        )

    def entry_batches(
        self,
        image: ResolvedImage,
        layer: int | None = None,
        on_progress: ProgressCallback | None = None,
        *,
        whole: bool = False,
        problems: list[LayerProblem] | None = None,
    ) -> AsyncGenerator[tuple[int, list[TarEntry]], None]:
        """``entries`` as batches of the layers' own tar entries, each with its layer's index:
        for a caller that writes out thousands of entries and needs no model of each (``ls
        --json``). The same entries, limits and damage as ``entries``."""
        return listing.batches(
            self.indexes, image, layer, on_progress, whole=whole, problems=problems
        )

    async def list_page(
        self,
        image: ResolvedImage,
        layer: int | None = None,
        start: int = 0,
        limit: int = 100,
        on_progress: ProgressCallback | None = None,
        *,
        last: bool = False,
    ) -> EntryPage:
        """Entries ``start`` to ``start + limit`` of a listing (one layer, or all bottom-up);
        ``last``: its last page of ``limit`` entries instead (``paging.entry_page``).

        Front ends page with this: the answer says where the next page starts. A page reads a
        layer only as far as its last entry (plus one, to know whether more follow); the scan
        stays open, so the next page continues from there, and a layer scanned to its end is
        indexed and cached. ``scanned_bytes`` of ``layer_bytes`` says how much of the layer
        the page's last layer has been read.

        A damaged layer's entries end at its damage, and the listing goes on with the next
        layer; the damage sits between the two, and the page that holds that position (or
        the last page, when it is at the very end) names it in ``problems``.
        """
        return await listing.page(self.indexes, image, layer, start, limit, on_progress, last=last)

    async def pull_layer(
        self,
        image: ResolvedImage,
        layer: int,
        destination: Path,
        on_progress: ProgressCallback | None = None,
    ) -> PullResult:
        """Save a layer blob to ``destination``: verified, written under a temporary name and
        renamed, so a failed or interrupted pull leaves nothing behind."""
        return await pull.pull_layer(self.client, image, layer, destination, on_progress)

    def stream_layer(self, image: ResolvedImage, layer: int) -> AsyncGenerator[bytes, None]:
        """A layer blob's bytes as they arrive, for relaying (a download link); a digest
        mismatch raises after the last chunk, so the relay aborts."""
        return pull.stream_layer(self.client, image, layer)

    # -- one file --------------------------------------------------------------------------

    async def read_file(
        self,
        image: ResolvedImage,
        path: str,
        layer: int | None = None,
        *,
        follow: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        """The bytes of ``path`` as the image shows it, or as layer ``layer`` ships it
        (``locate`` says which copy that is; ``read`` streams it)."""
        copy = await self.locate(image, path, layer, follow=follow)
        async with aclosing(self.read(image, copy)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def file_size(
        self, image: ResolvedImage, path: str, layer: int | None = None, *, follow: bool = True
    ) -> int:
        """The size of the file ``read_file`` would stream, from the listings alone: a
        download link states it (and refuses a missing file) before anyone follows it."""
        return (await self.locate(image, path, layer, follow=follow)).size

    async def locate(
        self,
        image: ResolvedImage,
        path: str,
        layer: int | None = None,
        *,
        follow: bool = True,
    ) -> FileCopy:
        """Which copy of which file a read of ``path`` returns, or a one-line error saying
        why there is none (missing, deleted, not a regular file, a symlink loop).

        Without ``layer``, the merged view answers (``Overlay.lookup``), the one place that
        applies whiteouts, opaque directories, symlinked directories and duplicates: links
        are followed like a chroot's (``follow=False`` leaves a final symlink unfollowed, and
        it is the error), and a hard link reads the file it shares. The view needs every
        layer's listing: the first read of an image lists each layer once, the indexes are
        cached, and a later read costs only the file's bytes.

        With ``layer``, that layer's own listing answers: its last entry named ``path`` (a
        layer holding a path twice is extracted with the last), links not followed but a
        hard link read through the entry it names, earlier in the same layer."""
        return await self._reads.locate(image, path, layer, follow=follow)

    def read(self, image: ResolvedImage, copy: FileCopy) -> AsyncGenerator[bytes, None]:
        """Stream the bytes of a located copy.

        From the layer's index: through its TOC's chunks when it has one, else with one
        range (a plain layer, a gzip layer from its nearest checkpoint, a zstd layer from a
        frame start), else by streaming the layer up to the entry (a sparse file, a file
        before the first checkpoint, a single-frame zstd layer)."""
        return self._reads.read(image, copy)

    async def read_span(self, image: ResolvedImage, node: Node, start: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``start`` of the regular file (or hard link) ``node`` of
        the merged view: one range of its layer where the layer's index allows it, else the
        file read up to them. A region of a large file (a binary's build information) costs
        that region, not the file."""
        return await self._reads.span(image, node, start, length)

    def stream_files(
        self, image: ResolvedImage, layer: int, want: Callable[[TarEntry], bool]
    ) -> AsyncGenerator[FileData, None]:
        """The data of every regular file of layer ``layer`` that ``want`` accepts, in one
        pass over the layer: where many small pieces of one compressed layer are needed,
        cheaper than a range each (each inflates from its nearest checkpoint)."""
        return self._reads.files(image, layer, want)

    async def layer_index(self, image: ResolvedImage, layer: int) -> LayerIndex:
        """Layer ``layer``'s complete index: remembered, cached, from its TOC, or scanned
        now (a damaged layer raises its damage: a read needs the whole layer's word)."""
        return await self._reads.layer_index(image, layer)

    def layer_events(
        self, image: ResolvedImage, layer: int, want: Callable[[TarEntry], bool]
    ) -> AsyncGenerator[TarEntry | FileData, None]:
        """One streaming pass over layer ``layer``: its entries, and the data of the regular
        files ``want`` accepts (an export of many files of one compressed layer)."""
        return self._reads.events(image, layer, want)

    @property
    def on_progress(self) -> ProgressCallback | None:
        """Told how far the layer reads behind a merged view (and find) have come: a front
        end with one user at a time (the CLI) sets it; shared front ends leave it None."""
        return self._merges.on_progress

    @on_progress.setter
    def on_progress(self, callback: ProgressCallback | None) -> None:
        self._merges.on_progress = callback

    # -- the merged filesystem: provenance, removed files, find, diff, triage ----------------

    async def merged(
        self, image: ResolvedImage, problems: list[LayerProblem] | None = None
    ) -> MergedView:
        """The image's merged filesystem, built once however many ask at once and kept
        (``kept.MergedViews``), by manifest digest within the image's registry.

        With ``problems``, each damaged layer the view was built from is recorded there (the
        view holds the entries read before its damage); without, the first is raised."""
        return await self._merges.view(image, problems)

    async def overlay(
        self, image: ResolvedImage, problems: list[LayerProblem] | None = None
    ) -> Overlay:
        """The merged tree of ``image`` (``merged``): provenance, removed files, lookups."""
        return await self._merges.overlay(image, problems)

    async def merged_listing(
        self,
        image: ResolvedImage,
        start: int = 0,
        limit: int | None = None,
        where: Callable[[str], bool] | None = None,
    ) -> MergedListing:
        """The merged filesystem sorted by path: ``limit`` paths from ``start`` (None: all),
        a slice of the kept view; with ``where``, of the paths it accepts (and ``total``
        counts those)."""
        from layerpeek.core.fs import analyses

        return await analyses.merged_listing(self._merges, image, start, limit, where)

    def merged_entries(
        self,
        image: ResolvedImage,
        problems: list[LayerProblem],
        irregular: list[IrregularInfo],
    ) -> AsyncGenerator[EntryInfo, None]:
        """The whole merged filesystem sorted by path, one entry at a time: what a full
        listing prints, without a model of every path held at once (a million-entry image
        would hold ~1 GB of them beside the tree). A damaged layer is added to ``problems``,
        names the view could not place to ``irregular`` (filled once the tree is built)."""
        from layerpeek.core.fs import analyses

        return analyses.merged_entries(self._merges, image, problems, irregular)

    async def trace(self, image: ResolvedImage, path: str) -> PathTrace:
        """Where ``path`` came from: added, changed, deleted in which layers, by which steps."""
        from layerpeek.core.fs import analyses

        return await analyses.trace(self._merges, image, path)

    async def removed_files(self, image: ResolvedImage) -> RemovedReport:
        """Files a later layer deleted or overwrote that a lower layer still ships (all of
        them, largest first); ``read_file(image, path, layer)`` reads any of them."""
        from layerpeek.core.fs import analyses

        return await analyses.removed_files(self._merges, image)

    async def find(
        self,
        image: ResolvedImage,
        spec: FindSpec,
        merged: bool = True,
        start: int = 0,
        limit: int | None = None,
    ) -> FindResult:
        """Entries matching ``spec`` in the merged view (sorted by path) or in every layer
        (layer order, whiteouts included), each with its path's story; paged."""
        from layerpeek.core.fs import analyses

        return await analyses.find(self._merges, image, spec, merged, start, limit)

    async def diff(self, a: ResolvedImage, b: ResolvedImage) -> DiffReport:
        """Added, removed and changed paths from ``a`` to ``b`` at the merged level, and the
        layers they share (every list complete, sorted by path)."""
        from layerpeek.core.fs import analyses

        return await analyses.diff(self._merges, a, b)

    async def triage(self, image: ResolvedImage, largest: int = 10) -> TriageReport:
        """Secrets (present, or deleted above a layer that still ships them), setuid/setgid
        and world-writable paths, the user, the OS and the largest files; findings sorted by
        severity. Reads only os-release and at most CONTENT_READS small key-like files."""
        from layerpeek.core.fs import analyses

        return await analyses.triage(self._reads, image, largest)
