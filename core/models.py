"""What the core answers with: the JSON contract of DESIGN §3, shared by every front end.

The CLI prints these as JSON, the MCP server uses them as output schemas, the bot renders them.
Field names are part of the contract; add fields, never rename them.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from .layers.entry import TarEntry


class LayerInfo(BaseModel):
    index: int
    digest: str
    size: int
    media_type: str
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
    mtime: int
    link: str

    @classmethod
    def of(cls, layer: int, entry: TarEntry) -> EntryInfo:
        return cls(
            layer=layer,
            path=entry.path,
            type=entry.type,
            size=entry.size,
            mode=entry.mode,
            uid=entry.uid,
            gid=entry.gid,
            mtime=entry.mtime,
            link=entry.link,
        )


class EntryPage(BaseModel):
    """One page of a listing; ``next_start`` continues it, None once the listing is done."""

    entries: list[EntryInfo]
    next_start: int | None = Field(description="position of the next entry; null at the end")
    complete: bool = Field(description="true when the whole listing is known to end here")


class PullResult(BaseModel):
    path: str
    digest: str
    size: int
    media_type: str
