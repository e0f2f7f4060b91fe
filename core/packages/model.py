"""One installed package as every inventory reports it, and its package URL.

The parsers of each kind (``dpkg``, ``apk``, ``rpm``, ``python``, ``npm``, ``golang``) turn
the bytes of one database or manifest into ``Found`` records, knowing nothing of images; the
inventory adds where each came from (path, layer) and the distribution, and builds the purl
here, with ``packageurl-python`` so that every kind's quoting and normalising rules are the
spec's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from packageurl import PackageURL
from pydantic import BaseModel, Field

from layerpeek.core.errors import PackageDataError
from layerpeek.core.models import Partial
from layerpeek.core.packages.kinds import FORMATS as FORMATS
from layerpeek.core.packages.kinds import KINDS as KINDS
from layerpeek.core.packages.kinds import Format as Format
from layerpeek.core.packages.kinds import Kind as Kind

MAX_PACKAGES = 200_000
"""Packages one inventory holds at most; past it the answer says it was cut."""
FIELD_LIMIT = 1024
"""Characters kept of a name, version or architecture read from an image."""


@dataclass(frozen=True, slots=True)
class Found:
    """What a parser read of one package: ``qualifiers`` are extra purl qualifiers the
    database knows (an rpm's epoch), ``namespace`` the purl namespace where the name has
    one (an npm scope, a Go module's path)."""

    name: str
    version: str
    arch: str = ""
    namespace: str = ""
    qualifiers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Distro:
    """The distribution the image says it is (os-release ``ID`` and ``VERSION_ID``)."""

    id: str = ""
    version_id: str = ""

    @property
    def qualifier(self) -> str:
        """purl's ``distro`` qualifier: ``debian-12``, ``alpine-3.20.3``; "" when unknown."""
        if not self.id:
            return ""
        return f"{self.id}-{self.version_id}" if self.version_id else self.id


class Package(BaseModel):
    """One installed package."""

    name: str
    version: str
    arch: str = Field(default="", description="the architecture where the database says it")
    kind: Kind
    path: str = Field(description="the database or manifest file it was read from")
    layer: int = Field(
        description="the layer that installed it at this version: the file's layer, or for a "
        "database of many packages, the lowest layer from which every copy lists it unchanged"
    )
    purl: str = Field(description="its package URL")


class DatabaseProblem(BaseModel):
    """A database or manifest not read, or read in part, and why."""

    kind: Kind
    path: str
    layer: int
    message: str


class PackageReport(Partial):
    """Every package found in an image, with what could not be read."""

    reference: str
    digest: str = Field(description="the manifest digest the inventory was read from")
    platform: str
    distro: str = Field(description="os-release ID-VERSION_ID, '' when the image has none")
    packages: list[Package]
    databases: list[DatabaseProblem] = Field(
        default_factory=list, description="databases damaged, too large or in a format not read"
    )
    files_read: int = Field(description="database files and binaries read")
    bytes_read: int = Field(description="bytes of those files read (ranges, not whole files)")
    layers_streamed: list[int] = Field(
        default_factory=list,
        description="layers read in one pass (many files in one compressed layer), not by ranges",
    )
    cut: bool = Field(default=False, description=f"true when past {MAX_PACKAGES} packages")


_NAMESPACES = {"deb": "debian", "apk": "alpine", "rpm": ""}


def purl_for(kind: Kind, found: Found, distro: Distro) -> str:
    """The package URL of ``found``: the distribution as namespace and ``distro`` qualifier
    for the system kinds, the architecture as ``arch``."""
    qualifiers = dict(found.qualifiers)
    namespace = found.namespace or None
    if kind in _NAMESPACES:
        namespace = distro.id or _NAMESPACES[kind] or None
        if distro.qualifier:
            qualifiers["distro"] = distro.qualifier
    if found.arch:
        qualifiers["arch"] = found.arch
    name = found.name
    if found.namespace and name.startswith(found.namespace + "/"):
        name = name[len(found.namespace) + 1 :]
    url = PackageURL(
        type=kind,
        namespace=namespace,
        name=name,
        version=found.version or None,
        qualifiers=qualifiers or None,
    )
    return url.to_string()


def clip(value: str) -> str:
    """A field as kept: at most ``FIELD_LIMIT`` characters, surrounding space removed."""
    return value.strip()[:FIELD_LIMIT]


class Partly(PackageDataError):
    """A database read in part: the packages read, and why the rest were not."""

    def __init__(self, found: list[Found], message: str) -> None:
        super().__init__(message)
        self.found = found
