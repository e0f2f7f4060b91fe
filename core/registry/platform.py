"""Platforms (os/arch/variant): parse, format, and choose one from an index as Docker does.

Docker treats ``linux/arm64`` as ``linux/arm64/v8`` and ``linux/arm`` as ``linux/arm/v7``, so a
user who asks for ``linux/arm64`` gets the ``v8`` child whether or not the index spells the
variant. Attestation entries (``unknown/unknown``) are provenance documents, not images.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from layerpeek.core.errors import InvalidReference, PlatformNotFound

_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}
_ARCH_ALIASES = {"aarch64": "arm64", "x86_64": "amd64", "x86-64": "amd64", "armhf": "arm"}


@dataclass(frozen=True, order=True)
class Platform:
    """An image platform, normalised (``arm64`` always carries its ``v8`` variant)."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    @classmethod
    def make(cls, os: str, architecture: str, variant: str = "") -> Platform:
        """Build a normalised platform from raw fields (as found in an index or config)."""
        arch = _ARCH_ALIASES.get(architecture.lower(), architecture.lower())
        return cls(os.lower(), arch, (variant or _DEFAULT_VARIANT.get(arch, "")).lower())

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Platform | None:
        """The ``platform`` object of an index entry, or None when it has none."""
        if not isinstance(data, dict) or not data.get("os") or not data.get("architecture"):
            return None
        return cls.make(str(data["os"]), str(data["architecture"]), str(data.get("variant", "")))

    @property
    def is_attestation(self) -> bool:
        """BuildKit attaches provenance as ``unknown/unknown`` entries: not runnable images."""
        return self.os == "unknown" or self.architecture == "unknown"


DEFAULT_PLATFORM = Platform("linux", "amd64")


def parse_platform(text: str) -> Platform:
    """Parse ``os/arch[/variant]``, e.g. ``linux/arm64`` (= ``linux/arm64/v8``)."""
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidReference(
            f"invalid platform {text!r} (expected os/arch[/variant], e.g. linux/arm64)"
        )
    return Platform.make(*parts)


class HasPlatform(Protocol):
    """Anything an index lists: a descriptor that may carry a platform."""

    @property
    def platform(self) -> Platform | None: ...


T = TypeVar("T", bound=HasPlatform)


def runnable(entries: Iterable[T]) -> list[T]:
    """Entries that are images for some platform (attestations and unlabelled ones dropped)."""
    return [e for e in entries if e.platform is not None and not e.platform.is_attestation]


def choose(entries: Sequence[T], wanted: Platform) -> T:
    """The entry for ``wanted``; an error listing what exists when none matches."""
    candidates = runnable(entries)
    for entry in candidates:
        if entry.platform == wanted:
            return entry
    available = tuple(str(e.platform) for e in candidates)
    raise PlatformNotFound(
        f"no image for platform {wanted} (available: {', '.join(available) or 'none'})",
        available,
    )
