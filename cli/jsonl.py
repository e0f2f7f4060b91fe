"""``ls --json``'s lines, written a batch of entries at a time.

A listing of a real layer has tens of thousands of entries; making each an ``EntryInfo``,
dumping it to a dict and encoding that with ``json.dumps`` cost more than scanning the
layer. ``lines`` writes the same text straight from the tar entries: ``json.dumps`` of
``EntryInfo.model_dump()`` with its default separators and ``ensure_ascii`` (which keeps a
name's undecodable bytes, surrogate escapes, representable), byte for byte, its strings
escaped by the same C encoder ``json`` uses. ``tests/test_cli.py`` holds the two equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from json.encoder import encode_basestring_ascii as _quoted  # the C encoder when present

from layerpeek.core.layers.entry import TarEntry


def lines(layer: int, entries: Sequence[TarEntry]) -> str:
    """One JSON object a line for each entry of layer ``layer``, each line ending in a
    newline."""
    return "".join(
        f'{{"layer": {layer}, "path": {_quoted(e.path)}, "type": {_quoted(e.type)}, '
        f'"size": {e.size}, "mode": {e.mode}, "uid": {e.uid}, "gid": {e.gid}, '
        f'"mtime": {e.mtime}, "link": {_quoted(e.link)}, "cut": {"true" if e.cut else "false"}}}\n'
        for e in entries
    )
