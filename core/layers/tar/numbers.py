"""Numeric fields of tar headers: octal text, or GNU base-256 for values octal cannot hold.

One parser for every place a tar stream holds a number (header fields, old GNU sparse maps
and their extension blocks), as Go's ``archive/tar`` reads them all with one: a writer that
needs base-256 for a size needs it for a sparse offset of that file too.
"""

from __future__ import annotations

from layerpeek.core.errors import CorruptLayer


def tar_number(field: bytes, what: str, at: int) -> int:
    """Octal text padded with spaces or NULs, base-256 (high bit of the first byte set), or
    an empty field (0). Anything else is a CorruptLayer naming ``what`` and ``at``."""
    try:
        return int(field.replace(b"\0", b" "), 8)  # int() ignores surrounding spaces.
    except ValueError:
        pass
    if field and field[0] & 0x80:
        if field[0] & 0x40:  # 0xff lead byte: a negative two's complement number.
            return int.from_bytes(field, "big", signed=True)
        return int.from_bytes(field, "big") - (0x80 << (8 * (len(field) - 1)))
    if not field.strip(b" \0"):
        return 0
    raise CorruptLayer(f"bad tar {what} field {field!r} at tar offset {at:,}", at)
