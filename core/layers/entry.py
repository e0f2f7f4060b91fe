"""One tar entry as layerpeek reports it, whatever tar dialect or compression it came from,
and the caps on what a layer's listing may hold."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, NamedTuple

from layerpeek.core.errors import ImageTooLarge, LayerTooLarge

if TYPE_CHECKING:
    from layerpeek.core.errors import LayerpeekError

EntryType = Literal[
    "file", "dir", "symlink", "hardlink", "char", "block", "fifo", "whiteout", "opaque"
]

_OPAQUE = ".wh..wh..opq"
_WHITEOUT_PREFIX = ".wh."

NAME_LIMIT = 4096
"""Longest path or link name kept, in bytes: Linux's PATH_MAX. No runtime can create a longer
path (containerd's apply fails with ENAMETOOLONG), so a longer name is only ever an attack on
whoever lists it: a 64 KiB ``a/a/a/…`` path made the merged view hold 2.2 GB. Such a name is
listed cut to its first ``NAME_LIMIT`` bytes, with ``TarEntry.cut`` set."""


class TarEntry(NamedTuple):
    """A file, directory, link or whiteout found in a layer.

    ``path`` is normalised for display and comparison only (no leading ``./`` or ``/``, no
    trailing ``/``); ``..`` components, newlines and undecodable bytes are kept as they are
    (undecodable bytes via ``surrogateescape``), because a hostile name must be reported, not
    repaired. It is never used as a local path. ``offset`` is where the entry's data starts in
    the uncompressed tar stream, so a later reader can fetch just this file. ``sparse`` marks a
    file written by ``tar --sparse``: what follows its header is a map of fragments, not its
    content. ``cut`` marks an entry whose path or link name was longer than ``NAME_LIMIT``
    bytes and is shown cut: it is listed so that it can be seen, and never read, since its
    name is not the one in the layer.

    A named tuple, immutable like the layer it describes: one is made for every file of every
    layer scanned or read back from the cache, and a frozen dataclass took several times as
    long to build, on the thread that scans tar headers.
    Held in a layer index, one costs ~350 bytes (scanned) to ~390 (decoded from the cache,
    where no two entries share a number object) plus a byte a character of its name.
    """

    path: str
    type: EntryType
    size: int
    mode: int
    uid: int
    gid: int
    mtime: int
    link: str = ""
    offset: int = 0
    sparse: bool = False
    cut: bool = False


class Limits(NamedTuple):
    """The most entries, and characters of names (paths and link names), one listing holds."""

    entries: int
    names: int
    what: str
    error: type[LayerpeekError]

    def refusal(self, entries: int, names: int) -> str | None:
        """Why a listing of ``entries`` entries and ``names`` characters of names is refused;
        None while it fits."""
        if entries > self.entries:
            return f"{self.what} has more than {self.entries:,} entries"
        if names > self.names:
            return f"{self.what} has more than {self.names >> 20} MiB of names"
        return None


LAYER_LIMITS = Limits(2_000_000, 256 << 20, "layer", LayerTooLarge)
"""Per layer: 4x the largest real layer we know (a 500k-file node_modules), with names of
~128 characters on average. A layer index at the cap holds ~1 GB (``TarEntry``)."""
IMAGE_LIMITS = Limits(4_000_000, 512 << 20, "image", ImageTooLarge)
"""Per image, over the layers a whole-image listing (merged view, find, trace) reads."""


class Tally:
    """Entries and name characters counted against ``Limits`` as a listing is assembled."""

    __slots__ = ("entries", "limits", "names")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.entries = 0
        self.names = 0

    def add(self, entry: TarEntry) -> None:
        """Count ``entry``; raise the limits' error, saying how many entries were read, if
        it does not fit."""
        names = self.names + len(entry.path) + len(entry.link)
        refusal = self.limits.refusal(self.entries + 1, names)
        if refusal is not None:
            noun = "entry" if self.entries == 1 else "entries"
            raise self.limits.error(f"{refusal} ({self.entries:,} {noun} read)")
        self.entries += 1
        self.names = names

    def fit(self, entries: Sequence[TarEntry]) -> int:
        """Count the leading ``entries`` that fit, as ``add`` counts each; returns how many.
        One check for all of them while they fit; the caller then ``add``s the first that
        does not, which raises the error ``add`` raises."""
        names = self.names + sum(len(entry.path) + len(entry.link) for entry in entries)
        if self.limits.refusal(self.entries + len(entries), names) is None:
            self.entries += len(entries)
            self.names = names
            return len(entries)
        for fitted, entry in enumerate(entries):
            names = self.names + len(entry.path) + len(entry.link)
            if self.limits.refusal(self.entries + 1, names) is not None:
                return fitted
            self.entries += 1
            self.names = names
        return len(entries)


def cut_name(raw: bytes) -> bytes:
    """The first ``NAME_LIMIT`` bytes of a name, backed off so as not to split a UTF-8
    character (the byte after the cut is then not a continuation byte)."""
    end = NAME_LIMIT
    while end > NAME_LIMIT - 3 and raw[end] & 0xC0 == 0x80:
        end -= 1
    return raw[:end]


def cut_text(name: str) -> str | None:
    """``name`` cut by ``cut_name`` when its UTF-8 form is longer than ``NAME_LIMIT`` bytes;
    None when it fits. Lone surrogates (JSON's ``\\udcXX``) count as their three bytes."""
    if len(name) <= NAME_LIMIT // 4:
        return None
    raw = name.encode("utf-8", "surrogatepass")
    if len(raw) <= NAME_LIMIT:
        return None
    return cut_name(raw).decode("utf-8", "surrogatepass")


def display_path(name: str) -> str:
    """A name as listings show it: no leading ``./`` or ``/``, no trailing ``/``; the archive
    root is ``.``. Nothing else changes: ``..`` stays, so a hostile name is shown as it is and
    can be asked for by that name."""
    if not name.startswith(("./", "/")) and not name.endswith("/"):
        return name
    at = 0  # one pass, however many ``./`` a hostile name repeats
    while name.startswith(("./", "/"), at):
        at += 2 if name.startswith("./", at) else 1
    return name[at:].rstrip("/") or "."


def whiteout_type(path: str, entry_type: EntryType) -> EntryType:
    """Overlay whiteouts are ordinary entries recognised by their basename alone."""
    if ".wh." not in path:
        return entry_type
    base = path.rstrip("/").rpartition("/")[2]
    if base == _OPAQUE:
        return "opaque"
    if base.startswith(_WHITEOUT_PREFIX):
        return "whiteout"
    return entry_type
