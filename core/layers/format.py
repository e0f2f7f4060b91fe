"""A layer's format as its manifest descriptor names it, for ``inspect`` to show without
reading the layer: the compression its media type says, or the TOC format its annotations
announce (eStargz and zstd:chunked are gzip and zstd blobs a TOC-aware reader reads by file).

A TOC layer pushed without its annotations is named by its compression here; the range
engine still finds its TOC by the footer when it reads the layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from layerpeek.core.layers.toc.footer import announces_toc
from layerpeek.core.layers.toc.model import ESTARGZ_TOC_DIGEST

LayerFormat = Literal["gzip", "zstd", "eStargz", "zstd:chunked", "uncompressed", "unknown"]


def layer_format(media_type: str, annotations: Mapping[str, str]) -> LayerFormat:
    """``eStargz``/``zstd:chunked`` when a TOC is announced, else the media type's compression
    (OCI ``…tar+gzip``, Docker ``…tar.gzip``, ``…tar`` uncompressed)."""
    if announces_toc(annotations):
        return "eStargz" if annotations.get(ESTARGZ_TOC_DIGEST) else "zstd:chunked"
    kind = media_type.rpartition(".tar")[2]
    if kind in ("+gzip", ".gzip", "") and ".tar" in media_type:
        return "gzip" if kind else "uncompressed"
    if kind in ("+zstd", ".zstd"):
        return "zstd"
    return "unknown"
