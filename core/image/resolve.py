"""Resolution: a reference → its manifest (HEAD, then GET) → one platform's manifest → config.

The registry is asked first, with the caller's credentials and through the guard; only then
may the cache answer with the body of the digest the registry named, checked against that
digest. Concurrent asks for one manifest or config of one repository share one request.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import anyio
import anyio.to_thread

from layerpeek.core.cache.interface import CacheStore, key_for
from layerpeek.core.errors import LayerpeekError, ManifestError, PlatformNotFound, RegistryError
from layerpeek.core.flight import Flights
from layerpeek.core.image.config import ImageConfig, parse_config
from layerpeek.core.image.manifest import Index, Manifest, parse_manifest
from layerpeek.core.layers.format import layer_format
from layerpeek.core.models import (
    ConfigInfo,
    HistoryInfo,
    ImageReport,
    LayerInfo,
    PlatformsReport,
    PlatformSummary,
)
from layerpeek.core.registry.client import RegistryClient, digest_of
from layerpeek.core.registry.platform import (
    DEFAULT_PLATFORM,
    Platform,
    choose,
    parse_platform,
    runnable,
)
from layerpeek.core.registry.reference import Reference, parse_reference


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
        """The runnable platforms of the image's index (its own alone without one)."""
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

    def layers(self, layer: int | None) -> list[int] | range:
        """The one layer a user named (checked), or every layer bottom-up."""
        return [self.layer(layer)] if layer is not None else range(len(self.manifest.layers))


def as_reference(reference: str | Reference) -> Reference:
    """A front end's reference, parsed once (a parsed one passes through)."""
    return reference if isinstance(reference, Reference) else parse_reference(reference)


def as_platform(platform: str | Platform | None) -> Platform | None:
    """A front end's platform, parsed once; None asks for the default."""
    return parse_platform(platform) if isinstance(platform, str) else platform


def _where(ref: Reference, target: str) -> tuple[str, str, str]:
    """What a shared request is keyed by: the registry, the repository (whose access the
    request checks) and what it asks for."""
    return ref.registry, ref.repository, target


class Resolver:
    """Manifests and configs of one client, through one cache, shared while in flight."""

    def __init__(self, client: RegistryClient, cache: CacheStore) -> None:
        self.client = client
        self.cache = cache
        self._manifests: Flights[tuple[str, ...], Manifest | Index] = Flights()
        self._configs: Flights[tuple[str, ...], ImageConfig] = Flights()

    async def manifest(self, ref: Reference) -> Manifest | Index:
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
        """``manifest``'s check, then the manifest from the cache or the registry."""
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
        ref = as_reference(reference)
        wanted = as_platform(platform)
        top = await self.manifest(ref)
        index = top if isinstance(top, Index) else None
        if isinstance(top, Manifest):
            manifest = top
        else:
            manifest = await self._child(ref, top, wanted or DEFAULT_PLATFORM)
        config = await self._config(ref, manifest)
        if index is None and wanted and config.platform != wanted:
            raise PlatformNotFound(
                f"{ref} is a single-platform image for {config.platform}, not {wanted}",
                (str(config.platform),),
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

    async def platforms(self, reference: str | Reference) -> PlatformsReport:
        """Every platform of a multi-arch tag side by side (fetched concurrently)."""
        ref = as_reference(reference)
        top = await self.manifest(ref)
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


def image_report(image: ResolvedImage) -> ImageReport:
    """The ``inspect`` answer for a resolved image."""
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
    """One platform's line of ``inspect_platforms``: its size, user and command."""
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
