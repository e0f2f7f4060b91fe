"""The nouns of an image: descriptors, manifests, indexes, configs and their history.

Parsed defensively from raw JSON (registries and build tools disagree on optional fields) and
kept beside the raw bytes they came from, so digests can always be checked against the bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .errors import ManifestError
from .platform import Platform

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
# Registries serve OCI types only when asked for them by name (RESEARCH §1): always send all four.
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))


@dataclass(frozen=True)
class Descriptor:
    """A pointer to content: what it is, its digest and size, and for index entries a platform."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> Descriptor:
        if not isinstance(data, dict) or not isinstance(data.get("digest"), str):
            raise ManifestError(f"malformed descriptor: {str(data)[:80]}")
        size = data.get("size", 0)
        return cls(
            media_type=str(data.get("mediaType", "")),
            digest=data["digest"],
            size=size if isinstance(size, int) and size >= 0 else 0,
            platform=Platform.from_json(data.get("platform")),
            annotations={str(k): str(v) for k, v in (data.get("annotations") or {}).items()},
        )


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


def _load_json(raw: bytes, what: str) -> dict[str, Any]:
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
    data = _load_json(raw, f"manifest {digest}")
    media_type = _media_type_of(data, content_type)
    if media_type in INDEX_TYPES:
        entries = tuple(Descriptor.from_json(d) for d in data.get("manifests") or [])
        return Index(media_type, digest, entries)
    if "config" not in data:
        raise ManifestError(f"manifest {digest} has no config descriptor")
    return Manifest(
        media_type=media_type,
        digest=digest,
        config=Descriptor.from_json(data["config"]),
        layers=tuple(Descriptor.from_json(d) for d in data.get("layers") or []),
        annotations={str(k): str(v) for k, v in (data.get("annotations") or {}).items()},
    )


@dataclass(frozen=True)
class HistoryEntry:
    """One build step; ``layer`` is the index of the layer it made, None for empty steps."""

    created_by: str
    empty_layer: bool
    layer: int | None
    created: str = ""
    comment: str = ""


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an image config people ask about (OCI image-spec config, Docker's too)."""

    os: str
    architecture: str
    variant: str
    created: str
    env: tuple[str, ...]
    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None
    user: str
    working_dir: str
    labels: dict[str, str]
    exposed_ports: tuple[str, ...]
    history: tuple[HistoryEntry, ...]
    diff_ids: tuple[str, ...]

    @property
    def platform(self) -> Platform:
        return Platform.make(self.os or "unknown", self.architecture or "unknown", self.variant)

    def step_for_layer(self, layer: int) -> str:
        """The build step that produced ``layer``, or "" when the history does not say."""
        for entry in self.history:
            if entry.layer == layer:
                return entry.created_by
        return ""


def _strings(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value) if isinstance(value, list) else None


def align_history(raw_history: list[Any]) -> tuple[HistoryEntry, ...]:
    """Number the non-empty steps: the i-th step without ``empty_layer`` made layer i."""
    entries, layer = [], 0
    for item in raw_history:
        if not isinstance(item, dict):
            continue
        empty = bool(item.get("empty_layer", False))
        entries.append(
            HistoryEntry(
                created_by=str(item.get("created_by", "")),
                empty_layer=empty,
                layer=None if empty else layer,
                created=str(item.get("created", "")),
                comment=str(item.get("comment", "")),
            )
        )
        layer += 0 if empty else 1
    return tuple(entries)


def parse_config(raw: bytes, digest: str) -> ImageConfig:
    """Parse an image config blob."""
    data = _load_json(raw, f"config {digest}")
    conf = data.get("config") or {}
    if not isinstance(conf, dict):
        conf = {}
    rootfs = data.get("rootfs") or {}
    return ImageConfig(
        os=str(data.get("os", "")),
        architecture=str(data.get("architecture", "")),
        variant=str(data.get("variant", "")),
        created=str(data.get("created", "")),
        env=_strings(conf.get("Env")) or (),
        entrypoint=_strings(conf.get("Entrypoint")),
        cmd=_strings(conf.get("Cmd")),
        user=str(conf.get("User") or ""),
        working_dir=str(conf.get("WorkingDir") or ""),
        labels={str(k): str(v) for k, v in (conf.get("Labels") or {}).items()},
        exposed_ports=tuple(sorted(str(p) for p in conf.get("ExposedPorts") or {})),
        history=align_history(data.get("history") or []),
        diff_ids=tuple(str(d) for d in rootfs.get("diff_ids") or []),
    )
