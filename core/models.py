"""What the core answers with: the JSON contract of every answer, shared by every front end.

The CLI prints these as JSON, the MCP server uses them as output schemas, the bot renders them.
Field names are part of the contract; add fields, never rename them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from pydantic import BaseModel, Field

from layerpeek.core.layers.entry import TarEntry
from layerpeek.core.text import short_digest
from layerpeek.core.unvalidated import model_builder

if TYPE_CHECKING:
    from layerpeek.core.errors import LayerError
    from layerpeek.core.fs.overlay import Node


class LayerInfo(BaseModel):
    index: int
    digest: str
    size: int = Field(description="compressed: the blob's size in the registry")
    media_type: str
    format: str = Field(
        default="unknown",
        description="gzip | zstd | eStargz | zstd:chunked | uncompressed | unknown, from the "
        "media type and the TOC annotations",
    )
    created_by: str = Field(description="the build step that made this layer, from the history")


class HistoryInfo(BaseModel):
    created_by: str
    empty_layer: bool
    layer: int | None = Field(description="index of the layer this step made; null if none")


class ConfigInfo(BaseModel):
    env: list[str]
    entrypoint: list[str] | None
    cmd: list[str] | None
    user: str
    working_dir: str
    labels: dict[str, str]
    exposed_ports: list[str]


class ImageReport(BaseModel):
    reference: str
    digest: str = Field(description="what the reference resolved to (the index for multi-arch)")
    platform: str
    platforms: list[str] = Field(description="every platform of the index; just one otherwise")
    manifest_digest: str = Field(description="the platform-specific image manifest")
    layers: list[LayerInfo]
    history: list[HistoryInfo]
    config: ConfigInfo
    created: str = Field(default="", description="the config's creation time (RFC 3339), if set")


class PlatformSummary(BaseModel):
    platform: str
    manifest_digest: str
    layer_count: int
    total_size: int = Field(description="sum of the compressed layer sizes")
    user: str
    entrypoint: list[str] | None
    cmd: list[str] | None
    created: str


class PlatformsReport(BaseModel):
    reference: str
    digest: str
    platforms: list[PlatformSummary]


class EntryInfo(BaseModel):
    layer: int
    path: str
    type: str
    size: int
    mode: int
    uid: int
    gid: int
    mtime: int | None = Field(
        description="seconds since the epoch; null for a directory no layer lists (an implicit "
        "parent of a path), whose time no layer gives"
    )
    link: str
    cut: bool = False
    """The path or link name was longer than 4096 bytes and is shown cut: no runtime can
    extract it, and layerpeek never reads it."""

    @staticmethod
    def of(layer: int, entry: TarEntry | Node) -> EntryInfo:
        """From a layer's tar entry or a merged node (they share these fields).

        Built without validating the fields again (``unvalidated``): they come typed from
        the tar scanner or the merged view, and a listing builds one per entry.
        """
        return _build_entry_info(
            {
                "layer": layer,
                "path": entry.path,
                "type": entry.type,
                "size": entry.size,
                "mode": entry.mode,
                "uid": entry.uid,
                "gid": entry.gid,
                "mtime": entry.mtime,
                "link": entry.link,
                "cut": entry.cut,
            }
        )


_build_entry_info = model_builder(EntryInfo)


class LayerProblem(BaseModel):
    """Damage that stopped the reading of one layer. What was read before it is in the
    answer; nothing after it is, so the answer is marked incomplete."""

    reference: str = Field(description="the image the layer belongs to")
    layer: int = Field(description="the layer's index")
    digest: str = Field(description="the layer blob's digest")
    offset: int = Field(description="compressed bytes of the layer read before the damage")
    entries: int = Field(description="entries of the layer read before the damage")
    message: str = Field(description="what was wrong, in one line")

    @staticmethod
    def of(reference: str, layer: int, digest: str, error: LayerError) -> LayerProblem:
        return LayerProblem(
            reference=reference,
            layer=layer,
            digest=digest,
            offset=error.offset,
            entries=error.entries,
            message=str(error),
        )

    def describe(self) -> str:
        """The one line every front end shows for it (escaped there for its medium)."""
        return (
            f"layer {self.layer} ({short_digest(self.digest)}) of {self.reference} could not "
            f"be read to its end: {self.message}; what was read before it is shown"
        )


INCOMPLETE = (
    "false when a layer could not be read to its end (see problems): the answer is built "
    "from the entries read before the damage"
)


class Partial(BaseModel):
    """An answer built from every layer's listing, which a damaged layer may cut short."""

    complete: bool = Field(default=True, description=INCOMPLETE)
    problems: list[LayerProblem] = Field(
        default_factory=list, description="each layer that could not be read to its end"
    )


class Marks(TypedDict):
    """The fields ``marks`` sets, by name and type, so that ``**marks(...)`` is checked."""

    complete: bool
    problems: list[LayerProblem]


def marks(problems: list[LayerProblem]) -> Marks:
    """The ``complete`` and ``problems`` fields of a ``Partial`` answer, from its problems."""
    return {"complete": not problems, "problems": list(problems)}


class EntryPage(BaseModel):
    """One page of a listing; ``next_start`` continues it, None once the listing is done."""

    entries: list[EntryInfo]
    start: int = Field(default=0, description="position of the page's first entry")
    next_start: int | None = Field(description="position of the next entry; null at the end")
    complete: bool = Field(
        description="true when the whole listing is known to end here (where a layer is "
        "damaged, its entries end at the damage: see problems)"
    )
    layer: int | None = Field(default=None, description="the layer the page ends in")
    scanned_bytes: int | None = Field(
        default=None,
        description="compressed bytes of that layer read so far; equals layer_bytes once the "
        "layer is fully indexed, less while the listing is partial",
    )
    layer_bytes: int | None = Field(default=None, description="that layer's compressed size")
    problems: list[LayerProblem] = Field(
        default_factory=list,
        description="layers whose damage this page reached: their entries stop there",
    )


class PullResult(BaseModel):
    path: str
    digest: str
    size: int
    media_type: str


# -- the merged filesystem, provenance, find, diff, triage ---------------------------------


class IrregularInfo(BaseModel):
    """An entry kept literally (never resolved against a parent) or a rule that was ignored."""

    path: str
    layer: int
    reason: str


class MergedListing(Partial):
    """The filesystem after every layer, sorted by path; ``layer`` is the providing layer.

    A hard link's ``size`` is the size of the file it resolves to.
    """

    reference: str
    entries: list[EntryInfo]
    total: int = Field(description="number of paths in the merged filesystem")
    next_start: int | None = Field(description="start of the next page; null at the end")
    irregular: list[IrregularInfo]


class PathEvent(BaseModel):
    """One layer's effect on a path: added, changed, deleted, hidden or displaced."""

    layer: int
    action: str = Field(
        description="added | changed | deleted (whiteout) | hidden (opaque directory above) | "
        "displaced (a directory above was replaced by a non-directory)"
    )
    type: str = Field(description="the entry type that was added, or that was removed")
    size: int
    cause: str = Field(description="the whiteout, opaque marker or replacing path, if any")
    created_by: str = Field(description="the build step of the layer")
    layer_digest: str
    layer_path: str = Field(
        description="the name in this layer's tar, which a read of this layer's copy takes; it "
        "differs from the path when a symlinked directory placed the entry"
    )


class PathTrace(Partial):
    """A path's story across the layers and what the image shows for it now."""

    reference: str
    path: str
    exists: bool = Field(description="whether the merged filesystem has the path")
    entry: EntryInfo | None = Field(description="the merged entry; null when it is gone")
    events: list[PathEvent]
    readable_layers: list[int] = Field(
        description="layers shipping a regular file at this path (a read of that layer's "
        "copy returns it)"
    )


class RemovedFile(BaseModel):
    """A file a lower layer still ships although a later layer deleted or overwrote it."""

    path: str
    type: str
    size: int
    layer: int = Field(description="the layer that still ships it")
    layer_path: str = Field(
        description="its name in that layer's tar, which a read of that layer's copy takes"
    )
    created_by: str
    removed_in: int
    removed_by: str = Field(description="the build step of the removing layer")
    action: str = Field(description="changed (overwritten) | deleted | hidden | displaced")
    cause: str


class RemovedReport(Partial):
    """Every removed-but-shipped file, sorted by size (largest first), then path."""

    reference: str
    files: list[RemovedFile]
    total_size: int = Field(description="bytes still shipped for nothing")


class FindMatch(EntryInfo):
    """A matching entry plus the story of its path (same as ``trace``)."""

    history: list[PathEvent]


class FindResult(Partial):
    """Matches sorted by path (merged) or by layer then path; paged by ``start``/``limit``."""

    reference: str
    pattern: str
    merged: bool
    matches: list[FindMatch]
    total: int = Field(description="number of matches in all pages")
    next_start: int | None


class DiffChange(BaseModel):
    path: str
    fields: list[str] = Field(description="what differs: type, size, mode, uid, gid, link")
    before: EntryInfo
    after: EntryInfo
    content: str = Field(
        description="same (both from one shared layer blob) | differs (size differs) | unknown"
    )


class DiffReport(Partial):
    """Merged-level differences from ``a`` to ``b``, each list sorted by path."""

    a: str
    b: str
    a_digest: str = Field(description="manifest digest of the first image")
    b_digest: str
    added: list[EntryInfo]
    removed: list[EntryInfo]
    changed: list[DiffChange]
    shared_layers: list[str] = Field(description="layer digests both images use")
    unchanged: int = Field(description="paths identical in type, size, mode, owner and link")
    unverified: int = Field(
        description="paths with identical metadata from different layer blobs: bytes may differ"
    )


class Finding(BaseModel):
    kind: str = Field(
        description="secret | deleted-secret | setuid | setgid | world-writable | irregular"
    )
    severity: str = Field(description="high | medium | low")
    path: str
    layer: int
    created_by: str
    size: int
    detail: str


class OsInfo(BaseModel):
    id: str
    version_id: str
    pretty_name: str
    path: str = Field(description="the os-release file it came from")


class TriageReport(Partial):
    reference: str
    digest: str
    platform: str
    user: str
    runs_as_root: bool
    os: OsInfo | None
    findings: list[Finding] = Field(description="sorted by severity, then path")
    largest: list[EntryInfo] = Field(description="the largest files of the merged filesystem")
    removed_size: int = Field(description="bytes of deleted or overwritten files still shipped")
