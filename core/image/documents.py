"""The nouns of an image: descriptors, manifests, indexes, configs and their history.

Parsed defensively from raw JSON (registries and build tools disagree on optional fields) and
kept beside the raw bytes they came from, so digests can always be checked against the bytes.
What an image's author controls is bounded here, where it is parsed: every descriptor digest
must be a well-formed sha256 or sha512 digest (it becomes part of a URL and a cache key), and
an image has at most ``MAX_LAYERS`` layers and ``MAX_HISTORY`` build steps, each list or map
of its run config ``MAX_CONFIG_ENTRIES`` entries, an index ``MAX_INDEX_ENTRIES`` entries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
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
# Registries serve OCI types only when asked for them by name (RESEARCH §1): always send all four.
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))
# Docker refuses to build or run more than 127 layers and Linux's overlayfs stacks at most 500
# lower directories (OVL_MAX_STACK), so no image that runs anywhere has more than 500 layers.
MAX_LAYERS = 1000
# Steps that make no layer (ENV, LABEL, ...) are recorded too; a Dockerfile of 127 layers and
# thousands of ENV lines stays far below this.
MAX_HISTORY = 10_000
# Each list or map of the run config (Env, Labels, ExposedPorts, Entrypoint, Cmd): real images
# hold dozens; 1.5M labels fit in a 32 MiB config and cost 0.6 s to report.
MAX_CONFIG_ENTRIES = 10_000
# Multi-platform indexes list a few dozen images and attestations; a 4 MiB index could list
# 25,000, each a platform to parse (0.2 s of CPU).
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
    _capped(items, field, cap)
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

    @cached_property
    def _layer_steps(self) -> dict[int, str]:
        """Layer index → its build step, made once: a report asks for every layer's step, and a
        scan of the history per layer was quadratic in what the image's author wrote."""
        steps: dict[int, str] = {}
        for entry in self.history:
            if entry.layer is not None:
                steps.setdefault(entry.layer, entry.created_by)
        return steps

    def step_for_layer(self, layer: int) -> str:
        """The build step that produced ``layer``, or "" when the history does not say."""
        return self._layer_steps.get(layer, "")


def _strings(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value) if isinstance(value, list) else None


def _mapping(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _ports(value: Any) -> list[Any] | dict[Any, Any]:
    """``ExposedPorts`` is an object keyed by port; some tools write a list."""
    return value if isinstance(value, dict | list) else {}


def _capped(value: Any, field: str, cap: int) -> list[Any]:
    """A list from the config, refused when it holds more than ``cap`` items."""
    if not isinstance(value, list):
        return []
    if len(value) > cap:
        raise ManifestError(f"{field} has {len(value)} entries, more than the {cap} allowed")
    return value


def align_history(raw_history: Any, field: str = "history") -> tuple[HistoryEntry, ...]:
    """Number the non-empty steps: the i-th step without ``empty_layer`` made layer i."""
    raw_history = _capped(raw_history, field, MAX_HISTORY)
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


def _run_config(data: dict[str, Any], owner: str) -> dict[str, Any]:
    """The ``config`` object, every list or map in it checked against MAX_CONFIG_ENTRIES."""
    conf = _mapping(data.get("config"))
    for name, value in conf.items():
        if isinstance(value, list | dict) and len(value) > MAX_CONFIG_ENTRIES:
            raise ManifestError(
                f"{owner}: config.{str(name)[:40]} has {len(value)} entries, "
                f"more than the {MAX_CONFIG_ENTRIES} allowed"
            )
    return conf


def parse_config(raw: bytes, digest: str) -> ImageConfig:
    """Parse an image config blob."""
    owner = f"config {digest}"
    data = _load_json(raw, owner)
    conf = _run_config(data, owner)
    rootfs = _mapping(data.get("rootfs"))
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
        labels={str(k): str(v) for k, v in _mapping(conf.get("Labels")).items()},
        exposed_ports=tuple(sorted(str(p) for p in _ports(conf.get("ExposedPorts")))),
        history=align_history(data.get("history"), f"{owner}: history"),
        diff_ids=tuple(
            str(d) for d in _capped(rootfs.get("diff_ids"), f"{owner}: rootfs.diff_ids", MAX_LAYERS)
        ),
    )
