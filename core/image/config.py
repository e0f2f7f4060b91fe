"""Image configs: the run config and the build history people ask about.

Parsed defensively from the config blob's JSON, bounded where it is parsed: at most
``MAX_HISTORY`` build steps, each list or map of the run config ``MAX_CONFIG_ENTRIES``
entries, and no more diff ids than an image may have layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from layerpeek.core.errors import ManifestError
from layerpeek.core.image.manifest import MAX_LAYERS, capped, load_json
from layerpeek.core.registry.platform import Platform

# Steps that make no layer (ENV, LABEL, ...) are recorded too; a Dockerfile of 127 layers and
# thousands of ENV lines stays far below this.
MAX_HISTORY = 10_000
# Each list or map of the run config (Env, Labels, ExposedPorts, Entrypoint, Cmd): real images
# hold dozens; a 32 MiB config could hold over a million labels, each a row to report.
MAX_CONFIG_ENTRIES = 10_000


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


def align_history(raw_history: Any, field: str = "history") -> tuple[HistoryEntry, ...]:
    """Number the non-empty steps: the i-th step without ``empty_layer`` made layer i."""
    raw_history = capped(raw_history, field, MAX_HISTORY)
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
    data = load_json(raw, owner)
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
            str(d) for d in capped(rootfs.get("diff_ids"), f"{owner}: rootfs.diff_ids", MAX_LAYERS)
        ),
    )
