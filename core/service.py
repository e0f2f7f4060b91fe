"""The façade every front end calls: one method per user action, typed answers.

Front ends (CLI, MCP server, Discord bot) parse their input, call one of these and format the
result; registries, HTTP, tar and caching stay behind this line.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio

from .client import RegistryClient
from .errors import DigestMismatch, FileNotInLayer, LayerpeekError, ManifestError
from .image import ImageConfig, Index, Manifest, parse_config, parse_manifest
from .layers.entry import TarEntry
from .layers.scan import FileData, scan_layer
from .models import (
    ConfigInfo,
    EntryInfo,
    EntryPage,
    HistoryInfo,
    ImageReport,
    LayerInfo,
    PlatformsReport,
    PlatformSummary,
    PullResult,
)
from .platform import DEFAULT_PLATFORM, Platform, choose, parse_platform, runnable
from .reference import Reference, parse_reference, parse_repository


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


class Layerpeek:
    """Inspect images through one shared :class:`RegistryClient`."""

    def __init__(self, client: RegistryClient) -> None:
        self.client = client

    # -- manifests and configs ---------------------------------------------------------------

    async def _manifest(self, ref: Reference, target: str | None = None) -> Manifest | Index:
        raw = await self.client.get_manifest(ref, target)
        return parse_manifest(raw.body, raw.media_type, raw.digest)

    async def _child(self, ref: Reference, index: Index, wanted: Platform) -> Manifest:
        entry = choose(index.manifests, wanted)
        child = await self._manifest(ref, entry.digest)
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
        raw = await self.client.get_blob(ref, manifest.config.digest)
        return parse_config(raw, manifest.config.digest)

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
        descriptor = image.manifest.layers[layer]
        chunks = self.client.stream_blob(image.reference, descriptor.digest)

        def report(compressed: int, entries: int) -> None:
            if on_progress:
                on_progress(Progress(compressed, descriptor.size, entries))

        return scan_layer(chunks, want=want, on_progress=report)

    async def entries(
        self,
        image: ResolvedImage,
        layer: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> AsyncIterator[EntryInfo]:
        """Entries of one layer, or of every layer bottom-up; stop iterating to stop reading."""
        layers = [image.layer(layer)] if layer is not None else range(len(image.manifest.layers))
        for index in layers:
            events = self._events(image, index, on_progress=on_progress)
            try:
                async for event in events:
                    if isinstance(event, TarEntry):
                        yield EntryInfo.of(index, event)
            finally:
                await events.aclose()

    async def list_page(
        self,
        image: ResolvedImage,
        layer: int | None = None,
        start: int = 0,
        limit: int = 100,
        on_progress: ProgressCallback | None = None,
    ) -> EntryPage:
        """Entries ``start`` to ``start + limit`` of a listing (one layer, or all bottom-up).

        Front ends page with this: the answer says where the next page starts.
        """
        if start < 0 or limit < 1:
            raise LayerpeekError("a page needs start >= 0 and limit >= 1")
        found: list[EntryInfo] = []
        position = 0
        listing = self.entries(image, layer, on_progress)
        try:
            async for entry in listing:
                if position >= start + limit:
                    return EntryPage(entries=found, next_start=position, complete=False)
                if position >= start:
                    found.append(entry)
                position += 1
        finally:
            await listing.aclose()
        return EntryPage(entries=found, next_start=None, complete=True)

    async def read_file(
        self, image: ResolvedImage, path: str, layer: int | None = None
    ) -> AsyncIterator[bytes]:
        """The bytes of ``path`` as the image sees it (the topmost layer that has it), or as
        layer ``layer`` ships it. Streams until the file and stops reading there."""
        path = _normalise(path)
        merged = layer is None
        layers = reversed(range(len(image.manifest.layers))) if merged else [image.layer(layer)]
        for index in layers:
            search = _Search()
            async for chunk in self._stream_path(image, index, path, merged, search):
                yield chunk
            if search.found:
                return
            if search.hidden:
                raise FileNotInLayer(_deleted_message(image, index, path))
        where = "any layer" if merged else f"layer {layer}"
        raise FileNotInLayer(f"{path} is not a file in {where} of {image.reference}")

    async def _stream_path(
        self, image: ResolvedImage, index: int, path: str, merged: bool, search: _Search
    ) -> AsyncIterator[bytes]:
        """One pass over a layer: yield the file's data if it is here, else note whether this
        layer deletes it (whiteout) or hides lower copies (opaque directory)."""
        events = self._events(image, index, want=lambda e: e.path == path)
        try:
            async for event in events:
                if isinstance(event, FileData):
                    if event.data:
                        yield event.data
                    if event.last:
                        return
                elif event.path == path:
                    search.found = _readable(event, index)
                elif merged and _deletes(event, path):
                    raise FileNotInLayer(_deleted_message(image, index, path))
                else:
                    search.hidden = search.hidden or (merged and _hides_below(event, path))
        finally:
            await events.aclose()

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
        fd, temp_name = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
        os.close(fd)
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
        algorithm, _, expected = digest.partition(":")
        hasher = hashlib.new(algorithm)
        total = 0
        async with await anyio.open_file(target, "wb") as out:
            async for chunk in self.client.stream_blob(image.reference, digest):
                hasher.update(chunk)
                total += len(chunk)
                await out.write(chunk)
                if on_progress:
                    on_progress(Progress(total, 0, 0))
        if hasher.hexdigest() != expected:
            raise DigestMismatch(
                f"layer blob {digest}: downloaded bytes hash to {algorithm}:{hasher.hexdigest()}"
            )
        return total

    async def tags(self, repository: str | Reference) -> list[str]:
        """The repository's tags, every page of them, sorted (registries need not sort)."""
        ref = repository if isinstance(repository, Reference) else parse_repository(repository)
        return sorted(await self.client.list_tags(ref))


# -- pure helpers ----------------------------------------------------------------------------


def _normalise(path: str) -> str:
    """Paths as layers list them: no leading ``/`` or ``./``, no trailing ``/``."""
    clean = posixpath.normpath("/" + path.strip()).lstrip("/")
    if not clean:
        raise LayerpeekError("a file path is needed, not the root directory")
    return clean


def _whiteout_target(entry: TarEntry) -> str:
    directory, _, name = entry.path.rpartition("/")
    target = name.removeprefix(".wh.")
    return f"{directory}/{target}" if directory else target


def _deletes(entry: TarEntry, path: str) -> bool:
    """A whiteout for ``path`` or for a directory above it."""
    if entry.type != "whiteout":
        return False
    target = _whiteout_target(entry)
    return path == target or path.startswith(target + "/")


def _hides_below(entry: TarEntry, path: str) -> bool:
    """An opaque marker on a directory above ``path``: lower layers' copies are hidden."""
    if entry.type != "opaque":
        return False
    directory = entry.path.rpartition("/")[0]
    return not directory or path.startswith(directory + "/")


@dataclass
class _Search:
    """What one layer pass learnt about a path."""

    found: bool = False
    hidden: bool = False


def _readable(entry: TarEntry, index: int) -> bool:
    """True for a regular file; a clear error for what cannot be read as one."""
    if entry.type == "file":
        return True
    if entry.type == "symlink":
        raise FileNotInLayer(
            f"{entry.path} is a symlink to {entry.link} in layer {index}; read the target instead"
        )
    if entry.type == "hardlink":
        raise FileNotInLayer(
            f"{entry.path} is a hard link to {entry.link} in layer {index}; read that path instead"
        )
    raise FileNotInLayer(f"{entry.path} is a {entry.type} in layer {index}, not a regular file")


def _deleted_message(image: ResolvedImage, index: int, path: str) -> str:
    step = image.config.step_for_layer(index)
    how = f" ({step[:80]})" if step else ""
    return (
        f"{path} was deleted in layer {index}{how}; "
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
                created_by=config.step_for_layer(i),
            )
            for i, d in enumerate(image.manifest.layers)
        ],
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
