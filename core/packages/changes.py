"""What changed in the installed packages from image A to image B: added, removed,
upgraded, downgraded (or "changed" where a version cannot be ordered in its kind)."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Literal

from pydantic import BaseModel, Field

from layerpeek.core.packages.model import Kind, Package, PackageReport
from layerpeek.core.packages.versions import compare

Change = Literal["added", "removed", "upgraded", "downgraded", "changed"]

SIGNS: dict[Change, str] = {
    "added": "+",
    "removed": "-",
    "upgraded": "^",
    "downgraded": "v",
    "changed": "~",
}
"""How a change is marked on its line, in the order the summary counts them."""


class PackageChange(BaseModel):
    kind: Kind
    name: str
    arch: str = ""
    change: Change
    before: str | None = Field(description="the version in A; null when added")
    after: str | None = Field(description="the version in B; null when removed")
    layer: int | None = Field(description="the layer of B that installed it; null when removed")


class PackageChanges(BaseModel):
    a: str
    b: str
    changes: list[PackageChange] = Field(description="by kind, then name")
    unchanged: int = Field(description="packages with the same version on both sides")


Key = tuple[Kind, str, str]


def package_changes(a: PackageReport, b: PackageReport) -> PackageChanges:
    """Packages are matched by kind, name and architecture; a name present in several
    versions on one side (two copies of an npm package) pairs its versions only when one
    went and one came, else each is added or removed."""
    before, after = _versions(a.packages), _versions(b.packages)
    changes: list[PackageChange] = []
    unchanged = 0
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key, {}), after.get(key, {})
        unchanged += len(old.keys() & new.keys())
        gone, came = sorted(old.keys() - new.keys()), sorted(new.keys() - old.keys())
        if len(gone) == 1 and len(came) == 1:
            changes.append(_paired(key, gone[0], came[0], new[came[0]]))
            continue
        changes += [_one(key, "removed", v, None, None) for v in gone]
        changes += [_one(key, "added", None, v, new[v]) for v in came]
    return PackageChanges(a=a.reference, b=b.reference, changes=changes, unchanged=unchanged)


def _versions(packages: list[Package]) -> dict[Key, dict[str, int]]:
    found: dict[Key, dict[str, int]] = defaultdict(dict)
    for package in packages:
        found[(package.kind, package.name, package.arch)].setdefault(package.version, package.layer)
    return found


def _paired(key: Key, old: str, new: str, layer: int) -> PackageChange:
    order = compare(key[0], old, new)
    change: Change = "upgraded" if order == -1 else "downgraded" if order == 1 else "changed"
    return _one(key, change, old, new, layer)


def _one(
    key: Key, change: Change, old: str | None, new: str | None, layer: int | None
) -> PackageChange:
    kind, name, arch = key
    return PackageChange(
        kind=kind,
        name=name,
        arch=arch,
        change=change,
        before=old,
        after=new,
        layer=layer,
    )


def change_line(change: PackageChange) -> str:
    """``^ deb tiny all 1.0 -> 2.0  (layer 2)``: one change on one line, as the CLI and the
    bot show it (``+`` added, ``-`` removed, ``^`` upgraded, ``v`` downgraded, ``~``
    changed); the text is the image's, for the front end to make safe."""
    arch = f" {change.arch}" if change.arch else ""
    versions = " -> ".join(v for v in (change.before, change.after) if v is not None)
    layer = f"  (layer {change.layer})" if change.layer is not None else ""
    return f"{SIGNS[change.change]} {change.kind} {change.name}{arch} {versions}{layer}"


def summary(changes: PackageChanges) -> str:
    """``1 added, 1 removed, 1 upgraded, 0 downgraded, 0 changed, 9 unchanged``: every kind
    of change counted, so two answers read alike whatever changed."""
    counts = Counter(c.change for c in changes.changes)
    shown = ", ".join(f"{counts[c]:,} {c}" for c in SIGNS)
    return f"{shown}, {changes.unchanged:,} unchanged"
