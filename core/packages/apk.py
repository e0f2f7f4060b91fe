"""Alpine: apk's installed database, ``lib/apk/db/installed``.

One paragraph per package, separated by blank lines; each line is a one-letter key, a colon
and the value (``P:`` name, ``V:`` version, ``A:`` architecture; ``F:``/``R:`` file lines
and the rest are not needed here)."""

from __future__ import annotations

from layerpeek.core.packages.model import Found, clip

INSTALLED = ("lib/apk/db/installed", "usr/lib/apk/db/installed")


def parse_installed(data: bytes) -> list[Found]:
    """Every package paragraph that names a package."""
    found: list[Found] = []
    fields: dict[str, str] = {}
    for line in [*data.decode("utf-8", "replace").splitlines(), ""]:
        if not line.strip():
            if fields.get("P"):
                found.append(Found(fields["P"], fields.get("V", ""), fields.get("A", "")))
            fields = {}
            continue
        key, sep, value = line.partition(":")
        if sep and key in ("P", "V", "A") and key not in fields:
            fields[key] = clip(value)
    return found
