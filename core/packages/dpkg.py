"""Debian and Ubuntu: dpkg's ``var/lib/dpkg/status``, and the one-package files of
``var/lib/dpkg/status.d/`` that distroless images hold instead (same format, often without
a ``Status`` field, since nothing but the image's builder ever installed them)."""

from __future__ import annotations

from layerpeek.core.packages.model import Found, clip
from layerpeek.core.packages.stanzas import paragraphs

STATUS = "var/lib/dpkg/status"
STATUS_D = "var/lib/dpkg/status.d"
_FIELDS = frozenset({"Package", "Version", "Architecture", "Status"})


def parse_status(data: bytes) -> list[Found]:
    """The packages of a status file whose state is ``installed`` (what ``dpkg-query``
    shows as ``ii``; a removed package's config-files paragraph is not installed), or that
    have no ``Status`` at all (distroless)."""
    found = []
    for fields in paragraphs(data.decode("utf-8", "replace"), _FIELDS):
        name = fields.get("Package", "")
        if not name or not _installed(fields.get("Status")):
            continue
        found.append(
            Found(clip(name), clip(fields.get("Version", "")), clip(fields.get("Architecture", "")))
        )
    return found


def _installed(status: str | None) -> bool:
    """``Status: want flag state``: installed when the state (third word) is installed."""
    if status is None:
        return True
    words = status.split()
    return len(words) == 3 and words[2] == "installed"


def is_status_d(path: str) -> bool:
    """A package file of distroless's ``status.d`` (its ``.md5sums`` files are not)."""
    parent, _, name = path.rpartition("/")
    return parent == STATUS_D and not name.endswith(".md5sums")
