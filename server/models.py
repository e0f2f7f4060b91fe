"""Output schemas of the tools: the core's answer models, wrapped with what paging adds.

Where the core already has the model (ImageReport, EntryInfo...) it is reused as is, so the
MCP answer and ``layerpeek ... --json`` share one contract.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from layerpeek.core.models import (
    DiffReport,
    EntryInfo,
    FindResult,
    ImageReport,
    Partial,
    PlatformsReport,
    RemovedReport,
    TriageReport,
)

NEXT_CURSOR = "pass as cursor to get the next page; null when this is the last page"


class InspectResult(BaseModel):
    image: ImageReport | None = Field(
        description="the chosen platform's image; null when all_platforms was asked"
    )
    all_platforms: PlatformsReport | None = Field(
        description="every platform side by side; null unless all_platforms was asked"
    )
    cut_steps: int = Field(
        description="build steps shortened to max_step_chars (each cut says how much is left)"
    )


class FilePage(Partial):
    """A page of a listing. Where a layer could not be read to its end, the page that
    reaches its damage lists what was read before it, is marked incomplete and names the
    problem; the listing goes on with the next layer. A merged page is built from what was
    read of every layer, so each of its pages carries the problems."""

    reference: str
    digest: str = Field(description="the platform image manifest the listing comes from")
    platform: str
    layer: int | None = Field(description="the layer listed; null when every layer is listed")
    merged: bool = Field(description="true for the merged filesystem (sorted by path)")
    entries: list[EntryInfo] = Field(
        description="in layer order, then tar order; by path if merged"
    )
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class FileContent(BaseModel):
    reference: str
    digest: str = Field(description="the platform image manifest the file comes from")
    path: str
    read_path: str = Field(
        description="the file whose bytes these are: path with its symlinks followed"
    )
    links_followed: list[str] = Field(description="the symlinks followed on the way, in order")
    layer: int | None = Field(description="the layer read; null for the image's own view")
    size: int = Field(description="the whole file's size in bytes")
    sha256: str = Field(description="sha256 of the whole file, hex")
    kind: Literal["text", "binary"] = Field(description="text when the bytes are UTF-8 text")
    encoding: Literal["utf-8", "hex", "base64"] = Field(description="how content is written")
    content: str = Field(description="the text, or a preview of the bytes in hex/base64")
    returned_bytes: int = Field(description="how many of the file's bytes content holds")
    truncated: bool = Field(description="true when content holds less than the whole file")


class TagPage(BaseModel):
    repository: str
    tags: list[str] = Field(description="sorted")
    total: int = Field(description="number of tags in the repository")
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class FindPage(BaseModel):
    find: FindResult = Field(description="matches of this page; total counts all pages")
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class DiffPage(BaseModel):
    diff: DiffReport = Field(
        description="added, removed and changed hold this page's share of the differences, "
        "in that order across pages"
    )
    total_added: int
    total_removed: int
    total_changed: int
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class TriagePage(BaseModel):
    triage: TriageReport = Field(description="findings hold this page's share, most severe first")
    total_findings: int
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class RemovedPage(BaseModel):
    removed: RemovedReport = Field(description="files hold this page's share, largest first")
    total_files: int
    next_cursor: str | None = Field(description=NEXT_CURSOR)


class DownloadLink(BaseModel):
    url: str = Field(description="signed download URL; anyone holding it can fetch the bytes")
    expires_at: str = Field(description="when the link stops working (UTC, ISO 8601)")
    size: int = Field(description="bytes the link serves")
    digest: str | None = Field(
        description="the layer blob's digest (the bytes are checked against it); null for a file"
    )
    what: str = Field(description="what the link serves, in words, to tell the person")
