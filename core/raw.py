"""An image's documents exactly as its registry serves them, for scripts.

``layerpeek manifest``, ``config`` and ``digest`` answer what ``crane manifest``, ``crane
config`` and ``crane digest`` (or ``skopeo inspect --raw``) answer: bytes a script can hash,
diff or feed to another tool, not layerpeek's reading of them. Each starts with a request to
the registry, as every answer does. The bytes printed are checked against the digest they
were asked by (a tag's manifest against the digest the registry names for it); the digest
printed is the one the registry names, as ``crane digest`` prints it.

A platform is chosen as everywhere else in layerpeek (``Layerpeek.resolve``): from an index
by ``--platform``, default linux/amd64; a single-platform image must be that platform.
"""

from __future__ import annotations

from layerpeek.core.errors import RegistryError
from layerpeek.core.registry.client import RawManifest
from layerpeek.core.registry.reference import is_digest, parse_reference
from layerpeek.core.service import Layerpeek


async def manifest(peek: Layerpeek, reference: str, platform: str | None = None) -> RawManifest:
    """What ``reference`` names (a manifest or an index); with ``platform``, the manifest of
    that platform."""
    if platform is None:
        return await peek.client.get_manifest(parse_reference(reference))
    image = await peek.resolve(reference, platform)
    return await peek.client.get_manifest(image.reference, image.manifest.digest)


async def config(peek: Layerpeek, reference: str, platform: str | None = None) -> bytes:
    """The config blob of the image's manifest for ``platform`` (default linux/amd64)."""
    image = await peek.resolve(reference, platform)
    return await peek.client.get_blob(image.reference, image.manifest.config.digest)


async def digest(peek: Layerpeek, reference: str, platform: str | None = None) -> str:
    """The digest of what ``reference`` names (an index's for a multi-platform tag), or with
    ``platform`` of that platform's manifest.

    Without a platform a HEAD answers, as for ``crane digest``: a registry counts no pull
    for it. A registry that names no usable digest there, or refuses HEAD, is asked with a
    GET, whose bytes are hashed.
    """
    if platform is not None:
        return (await peek.resolve(reference, platform)).manifest.digest
    ref = parse_reference(reference)
    try:
        named = await peek.client.check_manifest(ref)
    except RegistryError as exc:
        if exc.status not in (404, 405):
            raise
        named = None  # a HEAD answer has no body to say why: a GET gives the registry's words
    if named is not None and is_digest(named):
        return named
    return (await peek.client.get_manifest(ref)).digest
