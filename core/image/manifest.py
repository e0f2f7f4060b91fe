"""Manifests and indexes: the descriptors an image is made of, parsed from the registry's JSON.

Parsed defensively from raw JSON (registries and build tools disagree on optional fields) and
kept beside the raw bytes they came from, so digests can always be checked against the bytes.
What an image's author controls is bounded here, where it is parsed: every descriptor digest
must be a well-formed sha256 or sha512 digest (it becomes part of a URL and a cache key), an
image has at most ``MAX_LAYERS`` layers and an index ``MAX_INDEX_ENTRIES`` entries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from layerpeek.core.errors import ManifestError
from layerpeek.core.registry.platform import Platform
from layerpeek.core.registry.reference import is_digest

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
# Registries serve OCI types only when asked for them by name: always send all four.
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))
# Docker refuses to build or run more than 127 layers and Linux's overlayfs stacks at most 500
# lower directories (OVL_MAX_STACK), so no image that runs anywhere has more than 500 layers.
MAX_LAYERS = 1000
# Multi-platform indexes list a few dozen images and attestations; a 4 MiB index could list
# 25,000, each a platform to parse.
MAX_INDEX_ENTRIES = 1000


@dataclass(frozen=True)
class Descriptor:
    """A pointer to content: what it is, its digest and size, and for index entries a platform."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any, field: str = "descriptor") -> Descriptor:
        """``field`` names where the descriptor sits (``manifest sha256:…: layers[3]``), for the
        error message."""
        if not isinstance(data, dict) or not isinstance(data.get("digest"), str):
            raise ManifestError(f"malformed descriptor {field}: {str(data)[:80]}")
        size = data.get("size", 0)
        return cls(
            media_type=str(data.get("mediaType", "")),
            digest=_checked_digest(data["digest"], field),
            size=size if isinstance(size, int) and size >= 0 else 0,
            platform=Platform.from_json(data.get("platform")),
            annotations={str(k): str(v) for k, v in (data.get("annotations") or {}).items()},
        )


def _checked_digest(digest: str, field: str) -> str:
    if not is_digest(digest):
        raise ManifestError(
            f"{field}.digest is not a sha256 or sha512 digest: {digest[:80]!r}"
            " (expected sha256: and 64 lowercase hex digits, or sha512: and 128)"
        )
    return digest


def _descriptors(items: Any, field: str, cap: int) -> tuple[Descriptor, ...]:
    """The descriptors of a manifest's ``layers`` or an index's ``manifests``, at most ``cap``."""
    if not items:
        return ()
    if not isinstance(items, list):
        raise ManifestError(f"{field} is not a list")
    capped(items, field, cap)
    return tuple(Descriptor.from_json(d, f"{field}[{i}]") for i, d in enumerate(items))


@dataclass(frozen=True)
class Manifest:
    """One image: its config and its layers, in order from the base up."""

    media_type: str
    digest: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: dict[str, str]


@dataclass(frozen=True)
class Index:
    """A multi-platform image: one manifest per platform (plus attestations)."""

    media_type: str
    digest: str
    manifests: tuple[Descriptor, ...]


def load_json(raw: bytes, what: str) -> dict[str, Any]:
    """The JSON object of a manifest, index or config; ``what`` names it in the error."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{what} is not a JSON object")
    return data


def _media_type_of(data: dict[str, Any], content_type: str) -> str:
    """The body's own mediaType wins; else the header; else guess from the shape (OCI allows
    a missing mediaType)."""
    declared = data.get("mediaType") or content_type.split(";")[0].strip()
    if declared in INDEX_TYPES | MANIFEST_TYPES:
        return declared
    if declared in DOCKER_SCHEMA1 or data.get("schemaVersion") == 1:
        raise ManifestError(
            "Docker schema 1 manifests are not supported (deprecated; re-push the image)"
        )
    if "manifests" in data:
        return OCI_INDEX
    if "layers" in data:
        return OCI_MANIFEST
    raise ManifestError(f"unknown manifest media type {declared!r}")


def parse_manifest(raw: bytes, content_type: str, digest: str) -> Manifest | Index:
    """Parse a manifest or index body into its model."""
    data = load_json(raw, f"manifest {digest}")
    media_type = _media_type_of(data, content_type)
    owner = f"manifest {digest}"
    if media_type in INDEX_TYPES:
        entries = _descriptors(data.get("manifests"), f"{owner}: manifests", MAX_INDEX_ENTRIES)
        return Index(media_type, digest, entries)
    if "config" not in data:
        raise ManifestError(f"{owner} has no config descriptor")
    return Manifest(
        media_type=media_type,
        digest=digest,
        config=Descriptor.from_json(data["config"], f"{owner}: config"),
        layers=_descriptors(data.get("layers"), f"{owner}: layers", MAX_LAYERS),
        annotations={str(k): str(v) for k, v in (data.get("annotations") or {}).items()},
    )


def capped(value: Any, field: str, cap: int) -> list[Any]:
    """A list an image's author wrote (an empty one when it is not a list), refused when it
    holds more than ``cap`` items."""
    if not isinstance(value, list):
        return []
    if len(value) > cap:
        raise ManifestError(f"{field} has {len(value)} entries, more than the {cap} allowed")
    return value
