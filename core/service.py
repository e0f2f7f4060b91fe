"""The façade every front end calls: one method per user action, typed answers.

Front ends (CLI, MCP server, Discord bot) parse their input, call one of these and format the
result; registries, HTTP, tar and caching stay behind this line.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path

import anyio
import anyio.to_thread

from layerpeek.core.cache.store import CacheStore, key_for, open_cache
from layerpeek.core.errors import (
    FileNotInLayer,
    LayerError,
    LayerpeekError,
    ManifestError,
    RegistryError,
    TruncatedLayer,
)
from layerpeek.core.flight import Flights
from layerpeek.core.fs import reports as fsreports
from layerpeek.core.fs.find import FindSpec
from layerpeek.core.fs.kept import MergedView, MergedViews
from layerpeek.core.fs.overlay import CUT_REASON, MAX_HOPS, Lookup, Node, Overlay
from layerpeek.core.fs.reports import LayerFacts, check_page, layer_facts
from layerpeek.core.fs.triage import (
    CONTENT_LIMIT,
    CONTENT_READS,
    OS_RELEASE,
    PRIVATE_KEY,
    parse_os_release,
    runs_as_root,
    wants_content_check,
)
from layerpeek.core.image.documents import (
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    parse_config,
    parse_manifest,
)
from layerpeek.core.layers.entry import IMAGE_LIMITS, NAME_LIMIT, Tally, TarEntry, display_path
from layerpeek.core.layers.format import layer_format
from layerpeek.core.layers.index import LayerIndex, LayerIndexes, OnScan, ranged, read_ranged
from layerpeek.core.layers.reader import BlobReader
from layerpeek.core.layers.scan import FileData, scan_layer
from layerpeek.core.layers.sparse import zero_chunks
from layerpeek.core.layers.toc import read_toc_file
from layerpeek.core.models import (
    ConfigInfo,
    DiffReport,
    EntryInfo,
    EntryPage,
    Finding,
    FindResult,
    HistoryInfo,
    ImageReport,
    IrregularInfo,
    LayerInfo,
    LayerProblem,
    MergedListing,
    OsInfo,
    PathTrace,
    PlatformsReport,
    PlatformSummary,
    PullResult,
    RemovedReport,
    TriageReport,
    marks,
)
from layerpeek.core.registry.client import RegistryClient, digest_of
from layerpeek.core.registry.platform import (
    DEFAULT_PLATFORM,
    Platform,
    choose,
    parse_platform,
    runnable,
)
from layerpeek.core.registry.reference import Reference, parse_reference, parse_repository


@dataclass(frozen=True)
class Progress:
    """How far a long read has come; ``total`` is the blob size when known."""

    bytes_read: int
    total: int
    entries: int


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class ResolvedImage:
    """A reference resolved to one platform's manifest and config."""

    reference: Reference
    digest: str
    index: Index | None
    manifest: Manifest
    config: ImageConfig
    platform: Platform

    @property
    def platforms(self) -> list[str]:
        if self.index is None:
            return [str(self.platform)]
        return [str(d.platform) for d in runnable(self.index.manifests)]

    def layer(self, index: int) -> int:
        """Check a user-given layer index (negative counts from the top, like Python)."""
        count = len(self.manifest.layers)
        if not -count <= index < count:
            raise LayerpeekError(
                f"layer {index} out of range: {self.reference} has {count} layers (0-{count - 1})"
            )
        return index % count


def _as_reference(reference: str | Reference) -> Reference:
    return reference if isinstance(reference, Reference) else parse_reference(reference)


def _as_platform(platform: str | Platform | None) -> Platform | None:
    return parse_platform(platform) if isinstance(platform, str) else platform


def _where(ref: Reference, target: str) -> tuple[str, str, str]:
    """What a shared request is keyed by: the registry, the repository (whose access the
    request checks) and what it asks for."""
    return ref.registry, ref.repository, target


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
        self._manifests: Flights[tuple[str, ...], Manifest | Index] = Flights()
        self._configs: Flights[tuple[str, ...], ImageConfig] = Flights()
        # One merge per image however many ask, kept so that its pages are slices.
        self._views = MergedViews()
        # Told how far the layer reads behind a merged view (and find) have come: a front
        # end with one user at a time (the CLI) shows it; shared front ends leave it None.
        self.on_progress: ProgressCallback | None = None

    async def __aenter__(self) -> Layerpeek:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release the cache's connections (the client is its owner's to close)."""
        if self._owns_cache:
            await self.cache.close()

    # -- manifests and configs ---------------------------------------------------------------

    async def _manifest(self, ref: Reference) -> Manifest | Index:
        """What ``ref`` names now. The registry is asked first, with the caller's credentials
        and through the guard (``check_manifest``); only then may the cache save the body of
        the digest it named. A cache filled by another process (an unguarded CLI, another
        user's credentials) therefore never answers a reference its caller cannot reach.

        Callers asking at the same time for the same registry, repository and target share
        one check and one fetch (``flight``): every caller of this process uses the same
        credentials, so the registry would answer each of them the same. A caller that comes
        after the check has answered asks the registry again."""
        key = ("check", *_where(ref, ref.target))
        return await self._manifests.run(key, partial(self._check_manifest, ref))

    async def _check_manifest(self, ref: Reference) -> Manifest | Index:
        """``_manifest``'s check, then the manifest from the cache or the registry."""
        try:
            digest = await self.client.check_manifest(ref)
        except RegistryError as exc:
            if exc.status not in (404, 405):
                raise
            # A HEAD answer has no body to say why (MANIFEST_UNKNOWN, NAME_UNKNOWN), and a few
            # registries refuse HEAD: a GET gives the registry's own words, or the manifest.
            return await self._fetch_manifest(ref, ref.target)
        if digest is None:
            return await self._fetch_manifest(ref, ref.target)
        return await self._manifest_by_digest(ref, digest)

    async def _manifest_by_digest(self, ref: Reference, digest: str) -> Manifest | Index:
        """The manifest ``digest`` names, from the cache (checked against the digest) or the
        registry; one look for all who ask at once."""
        key = ("digest", *_where(ref, digest))
        return await self._manifests.run(key, partial(self._cached_or_fetched, ref, digest))

    async def _cached_or_fetched(self, ref: Reference, digest: str) -> Manifest | Index:
        return await self._cached_manifest(ref, digest) or await self._fetch_manifest(ref, digest)

    async def _cached_manifest(self, ref: Reference, digest: str) -> Manifest | Index | None:
        """The manifest this registry served under ``digest``, checked against it again (a
        shared cache is written by other processes)."""
        cached = await self.cache.get("manifest", key_for(ref, digest))
        if cached is None:
            return None
        media_type, _, body = cached.partition(b"\n")
        if digest_of(body, digest.partition(":")[0]) != digest:
            return None
        return parse_manifest(body, media_type.decode(), digest)

    async def _fetch_manifest(self, ref: Reference, target: str) -> Manifest | Index:
        raw = await self.client.get_manifest(ref, target)
        stored = raw.media_type.encode() + b"\n" + raw.body
        await self.cache.put("manifest", key_for(ref, raw.digest), stored)
        return parse_manifest(raw.body, raw.media_type, raw.digest)

    async def _child(self, ref: Reference, index: Index, wanted: Platform) -> Manifest:
        """The platform's manifest of an index the registry has just vouched for: by digest,
        so a cached copy (checked against the digest) is the same bytes it would send."""
        entry = choose(index.manifests, wanted)
        child = await self._manifest_by_digest(ref, entry.digest)
        if not isinstance(child, Manifest):
            raise ManifestError(f"index {index.digest} points to another index for {wanted}")
        return child

    async def resolve(
        self, reference: str | Reference, platform: str | Platform | None = None
    ) -> ResolvedImage:
        """Tag → manifest (through the index for ``platform``, default linux/amd64) + config."""
        ref = _as_reference(reference)
        wanted = _as_platform(platform)
        top = await self._manifest(ref)
        index = top if isinstance(top, Index) else None
        manifest = await self._child(ref, top, wanted or DEFAULT_PLATFORM) if index else top
        assert isinstance(manifest, Manifest)
        config = await self._config(ref, manifest)
        if index is None and wanted and config.platform != wanted:
            raise LayerpeekError(
                f"{ref} is a single-platform image for {config.platform}, not {wanted}"
            )
        return ResolvedImage(ref, top.digest, index, manifest, config, config.platform)

    async def _config(self, ref: Reference, manifest: Manifest) -> ImageConfig:
        """The image's config, from the cache or the registry, parsed; one GET and one parse
        for all who ask at once for it in this repository."""
        digest = manifest.config.digest
        return await self._configs.run(
            ("config", *_where(ref, digest)), partial(self._load_config, ref, digest)
        )

    async def _load_config(self, ref: Reference, digest: str) -> ImageConfig:
        key = key_for(ref, digest)
        raw = await self.cache.get("config", key)
        if raw is None or digest_of(raw, digest.partition(":")[0]) != digest:
            raw = await self.client.get_blob(ref, digest)
            await self.cache.put("config", key, raw)
        # Up to 32 MiB of JSON the image's author wrote: parsed off the event loop.
        return await anyio.to_thread.run_sync(parse_config, raw, digest)

    async def inspect(
        self, reference: str | Reference, platform: str | Platform | None = None
    ) -> ImageReport:
        """What the image is: platforms, layers with their build steps, history, config."""
        image = await self.resolve(reference, platform)
        return image_report(image)

    async def inspect_platforms(self, reference: str | Reference) -> PlatformsReport:
        """Every platform of a multi-arch tag side by side (fetched concurrently)."""
        ref = _as_reference(reference)
        top = await self._manifest(ref)
        if isinstance(top, Manifest):
            image = await self.resolve(ref)
            return PlatformsReport(
                reference=str(ref), digest=top.digest, platforms=[platform_summary(image)]
            )
        entries = runnable(top.manifests)
        summaries: list[PlatformSummary | None] = [None] * len(entries)

        async def summarise(i: int, platform: Platform) -> None:
            manifest = await self._child(ref, top, platform)
            config = await self._config(ref, manifest)
            image = ResolvedImage(ref, top.digest, top, manifest, config, platform)
            summaries[i] = platform_summary(image)

        try:
            async with anyio.create_task_group() as group:
                for i, entry in enumerate(entries):
                    assert entry.platform is not None
                    group.start_soon(summarise, i, entry.platform)
        except ExceptionGroup as failures:
            # One platform's failure is the answer; the group wrapper would hide its message.
            raise failures.exceptions[0] from None
        return PlatformsReport(
            reference=str(ref), digest=top.digest, platforms=[s for s in summaries if s]
        )

    # -- layers ----------------------------------------------------------------------------

    def _events(
        self,
        image: ResolvedImage,
        layer: int,
        want: Callable[[TarEntry], bool] | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> AsyncIterator[TarEntry | FileData]:
        """One streaming pass over a layer (resuming after drops), e.g. to reach one file."""
        descriptor = image.manifest.layers[layer]
        blob = BlobReader(
            self.client, image.reference, descriptor.digest, end=descriptor.size or None
        )
        return scan_layer(blob.chunks(), want=want, on_progress=_reporter(descriptor, on_progress))

    async def entries(
        self,
        image: ResolvedImage,
        layer: int | None = None,
        on_progress: ProgressCallback | None = None,
        *,
        whole: bool = False,
        tally: Tally | None = None,
        problems: list[LayerProblem] | None = None,
        start: int = 0,
    ) -> AsyncIterator[EntryInfo]:
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
        if start and layer is None:
            raise LayerpeekError("a listing starts past entry 0 only within one layer")
        layers = [image.layer(layer)] if layer is not None else range(len(image.manifest.layers))
        tally = Tally(IMAGE_LIMITS) if tally is None else tally
        for index in layers:
            descriptor = image.manifest.layers[index]
            report = _reporter(descriptor, on_progress)
            seen = start
            while True:
                view = await self.indexes.view(
                    image.reference, descriptor, seen + 1, report, whole=whole
                )
                fresh = view.entries[seen:]
                seen += len(fresh)
                for position, entry in enumerate(fresh, 1):
                    tally.add(entry)
                    yield EntryInfo.of(index, entry)
                    if position % _YIELD_EVERY == 0:
                        # A cached layer arrives whole: let other tasks run while it is listed.
                        await anyio.lowlevel.checkpoint()
                if view.problem is not None:
                    _met(image, index, view.problem, problems)
                    break
                if view.complete:
                    break

    async def count(self, image: ResolvedImage, layer: int | None = None) -> int:
        """Entries of one layer, or of every layer: a damaged layer's up to its damage (the
        page that reaches it names it). Read from the layers' indexes, no model made."""
        layers = [image.layer(layer)] if layer is not None else range(len(image.manifest.layers))
        total = 0
        for index in layers:
            descriptor = image.manifest.layers[index]
            view = await self.indexes.view(image.reference, descriptor, None, whole=True)
            total += len(view.entries)
        return total

    async def list_page(
        self,
        image: ResolvedImage,
        layer: int | None = None,
        start: int = 0,
        limit: int = 100,
        on_progress: ProgressCallback | None = None,
    ) -> EntryPage:
        """Entries ``start`` to ``start + limit`` of a listing (one layer, or all bottom-up).

        Front ends page with this: the answer says where the next page starts. A page reads a
        layer only as far as its last entry (plus one, to know whether more follow); the scan
        stays open, so the next page continues from there, and a layer scanned to its end is
        indexed and cached. ``scanned_bytes`` of ``layer_bytes`` says how much of the layer
        the page's last layer has been read.

        A damaged layer's entries end at its damage, and the listing goes on with the next
        layer; the damage sits between the two, and the page that holds that position (or
        the last page, when it is at the very end) names it in ``problems``.
        """
        check_page(start, limit)
        layers = [image.layer(layer)] if layer is not None else range(len(image.manifest.layers))
        found: list[EntryInfo] = []
        damage: list[tuple[int, LayerProblem]] = []  # (position in the listing, problem)
        offset = 0  # position of the current layer's first entry in the whole listing
        for index in layers:
            descriptor = image.manifest.layers[index]
            end = start + limit - offset  # where the page ends, counted in this layer
            report = _reporter(descriptor, on_progress)
            view = await self.indexes.view(image.reference, descriptor, end + 1, report)
            found.extend(EntryInfo.of(index, e) for e in view.entries[max(start - offset, 0) : end])
            coverage = {"layer": index, "scanned_bytes": view.scanned, "layer_bytes": view.size}
            if len(view.entries) > end:
                return EntryPage(
                    entries=found,
                    next_start=start + limit,
                    complete=False,
                    problems=_on_page(damage, start, start + limit),
                    **coverage,
                )
            offset += len(view.entries)
            if view.problem is not None:
                damage.append((offset, _problem(image, index, view.problem)))
        return EntryPage(
            entries=found,
            next_start=None,
            complete=True,
            problems=_on_page(damage, start, None),
            **coverage,
        )

    async def read_file(
        self,
        image: ResolvedImage,
        path: str,
        layer: int | None = None,
        *,
        follow: bool = True,
    ) -> AsyncIterator[bytes]:
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
        path = _normalise(path)
        if layer is not None:
            index = image.layer(layer)
            entries = (await self._layer_index(image, index)).entries
            return await anyio.to_thread.run_sync(_layer_copy, image, index, path, entries)
        overlay = await self.overlay(image)
        found = await anyio.to_thread.run_sync(partial(overlay.lookup, path, follow))
        return _merged_copy(image, overlay, path, found)

    async def read(self, image: ResolvedImage, copy: FileCopy) -> AsyncIterator[bytes]:
        """Stream the bytes of a located copy.

        From the layer's index: through its TOC's chunks when it has one, else with one
        range (a plain layer, a gzip layer from its nearest checkpoint, a zstd layer from a
        frame start), else by streaming the layer up to the entry (a sparse file, a file
        before the first checkpoint, a single-frame zstd layer)."""
        known = await self._layer_index(image, copy.layer)
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

    async def _layer_index(self, image: ResolvedImage, layer: int) -> LayerIndex:
        """The layer's complete index: remembered, cached, from its TOC, or scanned now."""
        descriptor = image.manifest.layers[layer]
        view = await self.indexes.view(image.reference, descriptor, None, whole=True)
        if view.problem is not None:  # a read needs the whole layer's word on its names
            raise view.problem
        assert view.index is not None, "a complete view carries its index"
        return view.index

    async def _streamed(
        self, image: ResolvedImage, layer: int, path: str, copies: int
    ) -> AsyncIterator[bytes]:
        """One pass over a layer, up to the data of its regular file ``path`` that follows
        ``copies`` others of that name, and no further."""
        seen = [0]

        def want(entry: TarEntry) -> bool:
            if entry.path != path:
                return False
            seen[0] += 1
            return seen[0] == copies + 1

        events = self._events(image, layer, want=want)
        try:
            async for event in events:
                if isinstance(event, FileData):
                    for zeros in zero_chunks(event.zeros):
                        yield zeros
                    if event.data:
                        yield event.data
                    if event.last:
                        return
        finally:
            await events.aclose()
        raise TruncatedLayer(f"layer {layer} ends before the data of {path!r}")

    async def pull_layer(
        self,
        image: ResolvedImage,
        layer: int,
        destination: Path,
        on_progress: ProgressCallback | None = None,
    ) -> PullResult:
        """Save a layer blob to ``destination``: verified, written under a temporary name and
        renamed, so a failed or interrupted pull leaves nothing behind."""
        descriptor = image.manifest.layers[image.layer(layer)]
        destination = destination.resolve()
        temp_name = _created_beside(destination)
        try:
            size = await self._download(image, descriptor.digest, Path(temp_name), on_progress)
            os.replace(temp_name, destination)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        return PullResult(
            path=str(destination),
            digest=descriptor.digest,
            size=size,
            media_type=descriptor.media_type,
        )

    async def _download(
        self,
        image: ResolvedImage,
        digest: str,
        target: Path,
        on_progress: ProgressCallback | None,
    ) -> int:
        """Write the blob to ``target``; the reader checks it against ``digest`` at its end
        (``DigestMismatch`` before the caller renames anything into place)."""
        total = 0
        async with await anyio.open_file(target, "wb") as out:
            async for chunk in BlobReader(self.client, image.reference, digest).chunks():
                total += len(chunk)
                await out.write(chunk)
                if on_progress:
                    on_progress(Progress(total, 0, 0))
        return total

    async def stream_layer(self, image: ResolvedImage, layer: int) -> AsyncIterator[bytes]:
        """A layer blob's bytes as they arrive, for relaying (a download link). The reader
        checks the digest after the last chunk: a mismatch raises there, so the relay aborts
        instead of completing a response with bytes that are not the layer."""
        digest = image.manifest.layers[image.layer(layer)].digest
        async for chunk in BlobReader(self.client, image.reference, digest).chunks():
            yield chunk

    async def tags(self, repository: str | Reference) -> list[str]:
        """The repository's tags, every page of them, sorted (registries need not sort)."""
        ref = repository if isinstance(repository, Reference) else parse_repository(repository)
        return sorted(await self.client.list_tags(ref))

    # -- the merged filesystem: provenance, removed files, find, diff, triage ----------------

    async def merged(
        self, image: ResolvedImage, problems: list[LayerProblem] | None = None
    ) -> MergedView:
        """The image's merged filesystem, built once however many ask at once and kept
        (``merged.MergedViews``), by manifest digest within the image's registry.

        With ``problems``, each damaged layer the view was built from is recorded there (the
        view holds the entries read before its damage); without, the first is raised."""
        key = key_for(image.reference, image.manifest.digest)
        view = await self._views.get(key, partial(self._merge, image))
        for index, error in view.damage:
            _met(image, index, error, problems)
        return view

    async def _merge(self, image: ResolvedImage) -> MergedView:
        """Every layer's listing through the overlay rules, bottom-up; one layer's listing
        in memory at a time besides the merged tree. The rules run in a worker thread: their
        work grows with the listing, which the image's author chose."""
        overlay, tally = Overlay(), Tally(IMAGE_LIMITS)
        damage: list[tuple[int, LayerError]] = []
        for index, descriptor in enumerate(image.manifest.layers):
            # The layer's own entries, not a model per entry: a million-entry layer would
            # hold ~0.5 GB of them beside the tree for nothing.
            report = _reporter(descriptor, self.on_progress)
            view = await self.indexes.view(image.reference, descriptor, None, report, whole=True)
            await anyio.to_thread.run_sync(_apply, overlay, tally, index, view.entries)
            if view.problem is not None:
                damage.append((index, view.problem))
        nodes = await anyio.to_thread.run_sync(overlay.listing)
        return MergedView(overlay, nodes, tuple(damage))

    async def overlay(
        self, image: ResolvedImage, problems: list[LayerProblem] | None = None
    ) -> Overlay:
        """The merged tree of ``image`` (``merged``): provenance, removed files, lookups."""
        return (await self.merged(image, problems)).overlay

    def _facts(self, image: ResolvedImage) -> LayerFacts:
        return layer_facts(image.manifest, image.config)

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
        check_page(start, limit)
        problems: list[LayerProblem] = []
        view = await self.merged(image, problems)
        page = partial(
            fsreports.merged_page,
            view.nodes,
            view.overlay.irregular,
            str(image.reference),
            start,
            limit,
            where,
        )
        listing = await anyio.to_thread.run_sync(page)
        return listing.model_copy(update=marks(problems))

    async def merged_entries(
        self,
        image: ResolvedImage,
        problems: list[LayerProblem],
        irregular: list[IrregularInfo],
    ) -> AsyncIterator[EntryInfo]:
        """The whole merged filesystem sorted by path, one entry at a time: what a full
        listing prints, without a model of every path held at once (a million-entry image
        would hold ~1 GB of them beside the tree). Entries are made in batches in a worker
        thread; a damaged layer is added to ``problems`` (``overlay``), names the view could
        not place to ``irregular`` (filled once the tree is built)."""
        view = await self.merged(image, problems)
        irregular.extend(
            IrregularInfo(path=i.path, layer=i.layer, reason=i.reason)
            for i in view.overlay.irregular
        )
        nodes = iter(view.nodes)
        while batch := await anyio.to_thread.run_sync(_entries_of, nodes, _YIELD_EVERY):
            for entry in batch:
                yield entry

    async def trace(self, image: ResolvedImage, path: str) -> PathTrace:
        """Where ``path`` came from: added, changed, deleted in which layers, by which steps."""
        clean = display_path(path.strip())
        if not clean:
            raise LayerpeekError("a path is needed, not the root directory")
        problems: list[LayerProblem] = []
        overlay = await self.overlay(image, problems)
        facts = self._facts(image)
        trace = await anyio.to_thread.run_sync(
            fsreports.trace, overlay, facts, str(image.reference), clean
        )
        return trace.model_copy(update=marks(problems))

    async def removed_files(self, image: ResolvedImage) -> RemovedReport:
        """Files a later layer deleted or overwrote that a lower layer still ships (all of
        them, largest first); ``read_file(image, path, layer)`` reads any of them."""
        problems: list[LayerProblem] = []
        overlay = await self.overlay(image, problems)
        report = await anyio.to_thread.run_sync(
            fsreports.removed_report, overlay, self._facts(image), str(image.reference)
        )
        return report.model_copy(update=marks(problems))

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
        check_page(start, limit)
        problems: list[LayerProblem] = []
        overlay = await self.overlay(image, problems)
        per_layer = None if merged else await self._layer_matches(image, spec)
        matches = await anyio.to_thread.run_sync(
            fsreports.find_matches, overlay, self._facts(image), spec, per_layer
        )
        end = len(matches) if limit is None else min(len(matches), start + limit)
        return FindResult(
            reference=str(image.reference),
            pattern=spec.pattern,
            merged=merged,
            matches=matches[start:end],
            total=len(matches),
            next_start=end if end < len(matches) else None,
            **marks(problems),
        )

    async def _layer_matches(self, image: ResolvedImage, spec: FindSpec) -> list[EntryInfo]:
        """Every layer's own entries (whiteouts included) that ``spec`` matches, layer by
        layer; a damaged layer's up to its damage (the merged view already names it)."""
        found: list[EntryInfo] = []
        tally = Tally(IMAGE_LIMITS)
        for index in range(len(image.manifest.layers)):
            entries = self.entries(
                image, index, self.on_progress, whole=True, tally=tally, problems=[]
            )
            listing = [e async for e in entries]
            found += await anyio.to_thread.run_sync(fsreports.matching, spec, listing)
        return found

    async def diff(self, a: ResolvedImage, b: ResolvedImage) -> DiffReport:
        """Added, removed and changed paths from ``a`` to ``b`` at the merged level, and the
        layers they share (every list complete, sorted by path)."""
        sides = []
        problems: list[LayerProblem] = []
        for image in (a, b):
            overlay = await self.overlay(image, problems)
            sides.append((str(image.reference), image.manifest.digest, overlay, self._facts(image)))
        report = await anyio.to_thread.run_sync(fsreports.diff_report, sides[0], sides[1])
        return report.model_copy(update=marks(problems))

    async def triage(self, image: ResolvedImage, largest: int = 10) -> TriageReport:
        """Secrets (present, or deleted above a layer that still ships them), setuid/setgid
        and world-writable paths, the user, the OS and the largest files; findings sorted by
        severity. Reads only os-release and at most CONTENT_READS small key-like files."""
        if largest < 0:
            raise LayerpeekError("the number of largest files to show cannot be negative")
        problems: list[LayerProblem] = []
        overlay = await self.overlay(image, problems)
        facts = self._facts(image)
        candidates = await anyio.to_thread.run_sync(fsreports.secret_candidates, overlay)
        findings = await self._secret_findings(image, candidates, facts)
        shape = await anyio.to_thread.run_sync(fsreports.tree_findings, overlay, facts, largest)
        return TriageReport(
            reference=str(image.reference),
            digest=image.manifest.digest,
            platform=str(image.platform),
            user=image.config.user,
            runs_as_root=runs_as_root(image.config.user),
            os=await self._os_info(image, overlay),
            findings=fsreports.sort_findings(findings + shape.findings),
            largest=shape.largest,
            removed_size=shape.removed_size,
            **marks(problems),
        )

    async def _secret_findings(
        self, image: ResolvedImage, candidates: fsreports.SecretCandidates, facts: LayerFacts
    ) -> list[Finding]:
        present, gone = candidates
        reads = [CONTENT_READS]
        found = []
        for node, kind in present:
            detail, key = await self._key_check(image, node, kind, reads)
            if detail is not None:
                severity = fsreports.secret_severity(kind, key)
                found.append(fsreports.finding(facts, "secret", severity, node, detail))
        for node, kind, removed_in, action in gone:
            detail, _ = await self._key_check(image, node, kind, reads)
            if detail is not None:
                how = f"{action} in layer {removed_in} ({facts.step(removed_in)[:60]})"
                detail += f"; {how}, still shipped: cat --layer {node.layer} reads it"
                found.append(fsreports.finding(facts, "deleted-secret", "high", node, detail))
        return found

    async def _key_check(
        self, image: ResolvedImage, node: Node, kind: str, reads: list[int]
    ) -> tuple[str | None, bool]:
        """(detail, confirmed private key); detail is None for a ``.pem`` whose content is
        no private key (a certificate). ``reads`` is the remaining content-check budget."""
        if node.type != "file" or not wants_content_check(kind, node.size) or reads[0] <= 0:
            return kind, False
        reads[0] -= 1
        head = await self._head(image, node, CONTENT_LIMIT)
        if head is None:
            return kind, False
        if PRIVATE_KEY.search(head):
            return "private key (content checked)", True
        return (None, False) if kind.startswith("PEM") else (f"{kind} (no PEM key inside)", False)

    async def _head(self, image: ResolvedImage, node: Node, limit: int) -> bytes | None:
        """The first ``limit`` bytes of the regular file ``node`` (present or removed): the
        very copy the merged view saw, wherever its layer holds others of that name. None
        when the layer's damage keeps them from being read (the report already names it)."""
        copy = FileCopy(node.path, node.path, (), node.layer, node.layer_path, node.position, 0)
        data = bytearray()
        stream = self.read(image, copy)
        try:
            async for chunk in stream:
                data += chunk
                if len(data) >= limit:
                    break
        except LayerError:
            return None
        finally:
            await stream.aclose()
        return bytes(data[:limit])

    async def _os_info(self, image: ResolvedImage, overlay: Overlay) -> OsInfo | None:
        """From the first os-release that is a regular file once links are followed
        (etc/os-release is usually a symlink to ../usr/lib/os-release)."""
        for asked in OS_RELEASE:
            found = overlay.lookup(asked)
            node, path = found.node, found.path
            if node is None or node.type != "file" or node.size > CONTENT_LIMIT:
                continue
            head = await self._head(image, node, CONTENT_LIMIT)
            if head is None:
                continue
            fields = parse_os_release(head.decode("utf-8", "replace"))
            return OsInfo(
                id=fields.get("ID", ""),
                version_id=fields.get("VERSION_ID", ""),
                pretty_name=fields.get("PRETTY_NAME", ""),
                path=path,
            )
        return None


# -- pure helpers ----------------------------------------------------------------------------


_YIELD_EVERY = 1000
"""Entries listed between two passes through the event loop (~5 ms of work)."""


def _reporter(descriptor: Descriptor, on_progress: ProgressCallback | None) -> OnScan | None:
    """The scan's ``(bytes, entries)`` callback as the front ends' ``Progress``."""
    if on_progress is None:
        return None
    callback = on_progress

    def report(received: int, entries: int) -> None:
        callback(Progress(received, descriptor.size, entries))

    return report


def _created_beside(destination: Path) -> str:
    """A new, empty, uniquely named file next to ``destination``, created with mode 0o666 so
    the umask decides what others may read, as cp and curl leave it (mkstemp's 0600 would
    make every pulled layer private whatever the user's umask says)."""
    for _ in range(100):
        name = str(destination.with_name(f".{destination.name}.{secrets.token_hex(4)}"))
        try:
            os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return name
    raise FileExistsError(f"no free temporary name beside {destination}")


def _problem(image: ResolvedImage, index: int, error: LayerError) -> LayerProblem:
    digest = image.manifest.layers[index].digest
    return LayerProblem.of(str(image.reference), index, digest, error)


def _entries_of(nodes: Iterator[Node], count: int) -> list[EntryInfo]:
    """In a worker thread: the next ``count`` merged nodes as listing entries."""
    return [fsreports.entry_of(node) for node in islice(nodes, count)]


def _apply(overlay: Overlay, tally: Tally, index: int, entries: list[TarEntry]) -> None:
    """In a worker thread: count a layer's entries against the image's limits, then apply
    them (both take time in proportion to a listing its author chose)."""
    for entry in entries:
        tally.add(entry)
    overlay.apply(index, entries)


def _met(
    image: ResolvedImage, index: int, error: LayerError, problems: list[LayerProblem] | None
) -> None:
    """A layer's damage, met after its entries before it were delivered: recorded in
    ``problems`` for a caller that answers with what was read, else raised."""
    if problems is None:
        raise error
    problems.append(_problem(image, index, error))


def _on_page(
    damage: list[tuple[int, LayerProblem]], start: int, end: int | None
) -> list[LayerProblem]:
    """The problems whose position in a listing falls on the page ``[start, end)``; ``end``
    None for the last page, which also holds a position at the listing's very end."""
    return [p for at, p in damage if start <= at and (end is None or at < end)]


def _normalise(path: str) -> str:
    """A user's path in listing form; ``..`` is kept, so a hostile name can be read by it."""
    clean = display_path(path.strip())
    if clean in ("", "."):
        raise LayerpeekError("a file path is needed, not the root directory")
    return clean


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


def _merged_copy(image: ResolvedImage, overlay: Overlay, asked: str, found: Lookup) -> FileCopy:
    """The copy a merged-view lookup found, or the error that says why there is none."""
    shown = asked if found.path == asked else f"{asked} → {found.path}"
    if found.loop:
        raise FileNotInLayer(f"{asked}: {_loop(found.links)}")
    node = found.node
    if node is None:
        if found.path == "":
            raise FileNotInLayer(f"{shown}: the root directory, not a file")
        raise FileNotInLayer(_missing_message(image, overlay, shown, found.path))
    if node.type == "symlink":
        raise FileNotInLayer(
            f"{shown} is a symlink to {node.link} in layer {node.layer}, not followed"
        )
    file = node.linked if node.type == "hardlink" else node
    if file is None:
        raise FileNotInLayer(
            f"{shown} is a hard link to {node.link} in layer {node.layer}, which names no file"
        )
    if file.type != "file":
        raise FileNotInLayer(f"{shown} is a {node.type} in layer {node.layer}, not a regular file")
    return FileCopy(
        asked, found.path, found.links, file.layer, file.layer_path, file.position, file.size
    )


def _missing_message(image: ResolvedImage, overlay: Overlay, shown: str, path: str) -> str:
    """Why nothing is at ``path``: a later layer removed it, its name is one the scanner
    cut (no runtime creates it), or no layer has it."""
    cut = next(
        (odd for odd in overlay.irregular if odd.path == path and odd.reason == CUT_REASON), None
    )
    if cut is not None:
        return _cut_message(path, cut.layer)
    story = overlay.story(path)
    if story and story[-1].action in ("deleted", "hidden", "displaced"):
        return _deleted_message(image, story[-1].layer, shown, story[-1].action)
    return f"{shown} is not a file in any layer of {image.reference}"


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
        raise FileNotInLayer(f"{path} is not a file in layer {layer} of {image.reference}")
    while entries[position].type == "hardlink" and not entries[position].cut:
        link = entries[position]
        position = _last_named(entries, display_path(link.link), position)
        if position < 0:
            raise FileNotInLayer(
                f"{link.path} is a hard link to {link.link}, which layer {layer} does not ship "
                "before it; read it without a layer for the file it shares"
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
    if entry.cut:
        raise FileNotInLayer(_cut_message(entry.path, index))
    if entry.type == "file":
        return
    if entry.type == "symlink":
        raise FileNotInLayer(
            f"{entry.path} is a symlink to {entry.link} in layer {index}; a layer's own copy "
            "is read as shipped: read the path without a layer to follow it"
        )
    raise FileNotInLayer(f"{entry.path} is a {entry.type} in layer {index}, not a regular file")


def _cut_message(path: str, layer: int) -> str:
    return (
        f"{path[:80]}… in layer {layer} is listed with its name cut at {NAME_LIMIT:,} bytes; "
        "a name that long cannot be read"
    )


def _deleted_message(image: ResolvedImage, index: int, path: str, action: str) -> str:
    step = image.config.step_for_layer(index)
    how = f" ({step[:80]})" if step else ""
    why = {"hidden": " by an opaque directory", "displaced": " with a directory above it"}
    return (
        f"{path} was deleted in layer {index}{why.get(action, '')}{how}; "
        f"read an older copy with --layer N for a layer below {index}"
    )


def image_report(image: ResolvedImage) -> ImageReport:
    """The DESIGN §3 ``inspect`` answer for a resolved image."""
    config = image.config
    return ImageReport(
        reference=str(image.reference),
        digest=image.digest,
        platform=str(image.platform),
        platforms=image.platforms,
        manifest_digest=image.manifest.digest,
        layers=[
            LayerInfo(
                index=i,
                digest=d.digest,
                size=d.size,
                media_type=d.media_type,
                format=layer_format(d.media_type, d.annotations),
                created_by=config.step_for_layer(i),
            )
            for i, d in enumerate(image.manifest.layers)
        ],
        created=config.created,
        history=[
            HistoryInfo(created_by=h.created_by, empty_layer=h.empty_layer, layer=h.layer)
            for h in config.history
        ],
        config=ConfigInfo(
            env=list(config.env),
            entrypoint=list(config.entrypoint) if config.entrypoint is not None else None,
            cmd=list(config.cmd) if config.cmd is not None else None,
            user=config.user,
            working_dir=config.working_dir,
            labels=config.labels,
            exposed_ports=list(config.exposed_ports),
        ),
    )


def platform_summary(image: ResolvedImage) -> PlatformSummary:
    config = image.config
    return PlatformSummary(
        platform=str(image.platform),
        manifest_digest=image.manifest.digest,
        layer_count=len(image.manifest.layers),
        total_size=sum(d.size for d in image.manifest.layers),
        user=config.user,
        entrypoint=list(config.entrypoint) if config.entrypoint is not None else None,
        cmd=list(config.cmd) if config.cmd is not None else None,
        created=config.created,
    )
