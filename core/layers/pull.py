"""A whole layer blob, verified against its digest: saved to a file, or relayed as it arrives."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncGenerator
from pathlib import Path

import anyio

from layerpeek.core.image.resolve import ResolvedImage
from layerpeek.core.layers.progress import Progress, ProgressCallback
from layerpeek.core.layers.reader import BlobReader
from layerpeek.core.models import PullResult
from layerpeek.core.registry.client import RegistryClient


async def pull_layer(
    client: RegistryClient,
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
        blob = BlobReader(client, image.reference, descriptor.digest)
        size = await _download(blob, Path(temp_name), on_progress)
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


async def _download(blob: BlobReader, target: Path, on_progress: ProgressCallback | None) -> int:
    """Write the blob to ``target``; the reader checks it against its digest at its end
    (``DigestMismatch`` before the caller renames anything into place)."""
    total = 0
    async with await anyio.open_file(target, "wb") as out:
        async for chunk in blob.chunks():
            total += len(chunk)
            await out.write(chunk)
            if on_progress:
                on_progress(Progress(total, 0, 0))
    return total


async def stream_layer(
    client: RegistryClient, image: ResolvedImage, layer: int
) -> AsyncGenerator[bytes, None]:
    """A layer blob's bytes as they arrive, for relaying (a download link). The reader
    checks the digest after the last chunk: a mismatch raises there, so the relay aborts
    instead of completing a response with bytes that are not the layer."""
    digest = image.manifest.layers[image.layer(layer)].digest
    async for chunk in BlobReader(client, image.reference, digest).chunks():
        yield chunk


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
