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
from layerpeek.server.progress import ProgressRelay

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


def path_matcher(prefix: str, glob: str | None) -> Callable[[str], bool] | None:
    """The filter of list_files on a path: a prefix and an fnmatch pattern on the whole
    path; None when it lets every path through."""
    if not prefix and glob is None:
        return None

    def match(path: str) -> bool:
        if not path.startswith(prefix):
            return False
        return glob is None or fnmatch.fnmatchcase(path, glob)

    return match


def matcher(prefix: str, glob: str | None) -> Match:
    """The filter of list_files on a layer's entries (``path_matcher``)."""
    on_path = path_matcher(prefix, glob)
    return (lambda entry: True) if on_path is None else (lambda entry: on_path(entry.path))


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
        # The listing starts at the position (a slice of the layer): what it skips is not read.
        seen = start.entry if index == start.layer else 0
        progress = relay.layer(position, index)
        listing = peek.entries(image, index, on_progress=progress, problems=problems, start=seen)
        async with aclosing(listing) as entries:
            async for entry in entries:
                if match(entry):
                    if len(found) == limit:
                        return Page(found, Position(index, seen), problems)
                    found.append(entry)
                seen += 1
                await relay.flush()
        await relay.flush()
    return Page(found, None, problems)
