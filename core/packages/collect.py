"""What an inventory gathers as it reads: packages with their purls and layers, the
problems of the databases it could not read, the files and bytes read."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

from layerpeek.core.packages import apk, dpkg, rpm
from layerpeek.core.packages.model import (
    MAX_PACKAGES,
    DatabaseProblem,
    Distro,
    Found,
    Package,
    purl_for,
)
from layerpeek.core.packages.sources import Source


@dataclass
class Tally:
    """One inventory's findings so far (its reads run at once, on one event loop)."""

    packages: list[Package] = field(default_factory=list)
    problems: list[DatabaseProblem] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    cut: bool = False
    databases: list[tuple[Source, list[Found]]] = field(default_factory=list)
    """Databases of many packages, added once ``history`` says which layer installed each."""


def add(
    tally: Tally,
    source: Source,
    found: list[Found],
    distro: Distro,
    layers: dict[Hashable, int] | None = None,
) -> None:
    """Add what ``source`` lists; a database of many packages waits for ``layers`` (which
    layer installed each, by ``package_key``), the rest take their file's layer."""
    if layers is None and source.node.path in DATABASES and found:
        tally.databases.append((source, found))
        return
    room = MAX_PACKAGES - len(tally.packages)
    if len(found) > room:
        tally.cut = True
    tally.packages.extend(
        _package(source, f, distro, (layers or {}).get(package_key(f), source.node.layer))
        for f in found[: max(room, 0)]
    )


DATABASES = frozenset({dpkg.STATUS, *apk.INSTALLED, *rpm.SQLITE})
"""Files that each list many packages (``history`` finds the layer of each)."""


def package_key(found: Found) -> Hashable:
    """A package as the copies of one database are compared: all it says of it."""
    return (found.name, found.version, found.arch, tuple(sorted(found.qualifiers.items())))


def problem(source: Source, message: str) -> DatabaseProblem:
    """Why ``source`` was not read, or read only in part."""
    return DatabaseProblem(
        kind=source.kind, path=source.node.path, layer=source.node.layer, message=message
    )


def _package(source: Source, found: Found, distro: Distro, layer: int) -> Package:
    return Package(
        name=found.name,
        version=found.version,
        arch=found.arch,
        kind=source.kind,
        path=source.node.path,
        layer=layer,
        purl=purl_for(source.kind, found, distro),
    )
