"""Pages of a filtered file listing, resumable at a (layer, entry) position.

The position is kept per layer, so the next page starts reading at the layer it stopped in
instead of at layer 0. A page ends one match early: the match that did not fit is where the
next page starts, so a listing never ends with an empty page.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass

from layerpeek.core.models import EntryInfo, LayerProblem
from layerpeek.core.service import Layerpeek, ResolvedImage

from .progress import ProgressRelay

Match = Callable[[EntryInfo], bool]


@dataclass(frozen=True)
class Position:
    """Where a listing continues: layer ``layer`` of the image, after ``entry`` tar entries."""

    layer: int
    entry: int


@dataclass(frozen=True)
class Page:
    entries: list[EntryInfo]
    next: Position | None
    problems: list[LayerProblem]
    """Damaged layers whose entries this page read to the damage."""


def normal_prefix(prefix: str) -> str:
    """Strip what the layer paths never have (a leading ``/`` or ``./``); keep a trailing ``/``
    so "etc/" means "inside etc" while "etc" also matches "etcetera"."""
    clean = prefix.strip()
    if not clean:
        return ""
    trailing = "/" if clean.endswith("/") else ""
    normal = posixpath.normpath("/" + clean).lstrip("/")
    return normal + trailing if normal else ""


def matcher(prefix: str, glob: str | None) -> Match:
    """The filter of list_files: a path prefix and an fnmatch pattern on the whole path."""

    def match(entry: EntryInfo) -> bool:
        if not entry.path.startswith(prefix):
            return False
        return glob is None or fnmatch.fnmatchcase(entry.path, glob)

    return match


async def page_of_entries(
    peek: Layerpeek,
    image: ResolvedImage,
    layers: list[int],
    start: Position,
    limit: int,
    match: Match,
    relay: ProgressRelay,
) -> Page:
    """Up to ``limit`` matching entries of ``layers`` from ``start`` on. A damaged layer
    ends at its damage: the page that reads up to it names the problem (``entries``) and
    goes on with the next layer, so no later page meets the same damage again."""
    found: list[EntryInfo] = []
    problems: list[LayerProblem] = []
    first = layers.index(start.layer)
    for position, index in enumerate(layers[first:], start=first):
        skip = start.entry if index == start.layer else 0
        seen = 0
        progress = relay.layer(position, index)
        listing = peek.entries(image, index, on_progress=progress, problems=problems)
        async with aclosing(listing) as entries:
            async for entry in entries:
                if seen >= skip and match(entry):
                    if len(found) == limit:
                        return Page(found, Position(index, seen), problems)
                    found.append(entry)
                seen += 1
                await relay.flush()
        await relay.flush()
    return Page(found, None, problems)
