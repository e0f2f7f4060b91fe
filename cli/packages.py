"""``layerpeek packages REF``: what an image has installed, as a table, JSON or an SBOM.

Registered by :mod:`layerpeek.cli.main` like its other commands. Database problems (damaged,
too large, not read) are named on stderr after the answer, which still lists what the other
databases hold; a damaged layer is returned to ``main`` like every command's.

The options name the kinds and formats from ``packages.kinds`` alone: the inventory, its
parsers and the package models load when a command asks for packages, not with ``--help``
or another command."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from layerpeek.cli.status import Outcome, UsageError
from layerpeek.core.packages.kinds import FORMATS, KINDS, Kind
from layerpeek.core.text import human_size, printable

if TYPE_CHECKING:
    from layerpeek.core.models import LayerProblem
    from layerpeek.core.packages.changes import PackageChanges
    from layerpeek.core.packages.model import PackageReport
    from layerpeek.core.service import Layerpeek

OUTPUTS = ("table", "json", *FORMATS)


def add_packages_command(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    packages = command("packages", "installed packages (deb, apk, rpm, pypi, npm, golang)")
    packages.add_argument("reference", metavar="REF", help="the image (a reference)")
    packages.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="platform of a multi-arch image (default linux/amd64)",
    )
    packages.add_argument(
        "--kind", metavar="KIND[,KIND…]", help=f"only these kinds ({','.join(KINDS)})"
    )
    packages.add_argument("--json", action="store_true", help="machine-readable output")
    packages.add_argument(
        "--format", choices=OUTPUTS, default="table", help="table (default), json or an SBOM"
    )


def parse_kinds(text: str | None) -> tuple[Kind, ...]:
    """``deb,pypi`` as kinds; every kind when not given."""
    if not text:
        return KINDS
    asked = [word.strip() for word in text.split(",") if word.strip()]
    unknown = [word for word in asked if word not in KINDS]
    if unknown or not asked:
        named = ", ".join(unknown) or repr(text)
        raise UsageError(f"unknown package kind {named}; kinds: {', '.join(KINDS)}")
    return tuple(k for k in KINDS if k in asked)


async def packages_command(peek: Layerpeek, args: argparse.Namespace) -> list[LayerProblem]:
    from layerpeek.core.packages.inventory import inventory

    kinds = parse_kinds(args.kind)
    image = await peek.resolve(args.reference, args.platform)
    report = await inventory(peek, image, kinds)
    output = "json" if args.json else args.format
    if output == "json":
        sys.stdout.write(json.dumps(report.model_dump(), ensure_ascii=True) + "\n")
    elif output == "table":
        render_packages(report)
    else:
        # The SBOM libraries (and their schemas) load only for an SBOM: ~14 MB at startup.
        from layerpeek.core.packages.sbom import sbom

        sys.stdout.write(
            sbom(report, "spdx-json" if output == "spdx-json" else "cyclonedx-json") + "\n"
        )
    for problem in report.databases:
        _note(f"warning: {problem.path} (layer {problem.layer}): {problem.message}")
    return report.problems


async def diff_packages(peek: Layerpeek, args: argparse.Namespace) -> Outcome:
    """``diff A B --packages``: the package changes from A to B (found: none, as diff says
    the images are the same)."""
    from layerpeek.core.packages.changes import package_changes
    from layerpeek.core.packages.inventory import inventory

    other = args.other or args.reference
    a = await peek.resolve(args.reference, args.platform)
    b = await peek.resolve(other, args.platform_b or args.platform)
    before, after = await inventory(peek, a), await inventory(peek, b)
    changes = package_changes(before, after)
    if args.json:
        sys.stdout.write(json.dumps(changes.model_dump(), ensure_ascii=True) + "\n")
    else:
        render_changes(changes)
    for report in (before, after):
        for problem in report.databases:
            _note(f"warning: {report.reference}: {problem.path}: {problem.message}")
    return Outcome(found=not changes.changes, problems=[*before.problems, *after.problems])


def render_changes(changes: PackageChanges) -> None:
    """One line a change, then the counts."""
    from layerpeek.core.packages.changes import change_line, summary

    _print(f"--- {changes.a}")
    _print(f"+++ {changes.b}")
    for change in changes.changes:
        _print(change_line(change))
    _print(summary(changes))


def render_packages(report: PackageReport) -> None:
    """One line a package, then a summary line a kind and what was read."""
    rows = [[p.kind, p.name, p.version, p.arch or "-", str(p.layer)] for p in report.packages]
    shown = [
        [printable(c) for c in row] for row in [["KIND", "NAME", "VERSION", "ARCH", "LAYER"], *rows]
    ]
    widths = [max(len(row[i]) for row in shown) for i in range(5)]
    for row in shown:
        _print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    counts = Counter(p.kind for p in report.packages)
    summary = ", ".join(f"{counts[k]} {k}" for k in KINDS if counts[k]) or "no packages"
    _print(f"{summary}; {human_size(report.bytes_read)} read from {report.files_read} files")
    if report.cut:
        _print("the inventory was cut at its package limit")


def _print(line: str) -> None:
    sys.stdout.write(printable(line) + "\n")


def _note(line: str) -> None:
    sys.stderr.write(f"layerpeek: {printable(line)}\n")
