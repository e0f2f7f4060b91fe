"""The ``layerpeek`` command: a thin front end over :mod:`layerpeek.core.service`.

Readable tables by default, ``--json`` for scripts (keys of DESIGN §3). Errors are one line on
stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from pydantic import ValidationError

from .client import RegistryClient
from .errors import LayerpeekError
from .models import EntryInfo, ImageReport, PlatformsReport
from .progress import ProgressLine
from .service import Layerpeek
from .settings import Settings
from .text import human_size, printable, short_digest

_TYPE_BITS = {
    "file": stat.S_IFREG,
    "dir": stat.S_IFDIR,
    "symlink": stat.S_IFLNK,
    "hardlink": stat.S_IFREG,
    "char": stat.S_IFCHR,
    "block": stat.S_IFBLK,
    "fifo": stat.S_IFIFO,
    "whiteout": stat.S_IFREG,
    "opaque": stat.S_IFREG,
}
_MARKS = {"dir": "/", "symlink": "@", "fifo": "|", "char": "%", "block": "#"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="layerpeek",
        description="Look inside container images straight from the registry, without pulling.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help)

    inspect = command("inspect", "platforms, layers, build history and config of an image")
    inspect.add_argument("reference", metavar="REF")
    inspect.add_argument(
        "--all-platforms",
        action="store_true",
        help="every platform of a multi-arch tag side by side",
    )

    ls = command("ls", "list the files of one layer or of every layer")
    ls.add_argument("reference", metavar="REF")
    ls.add_argument(
        "--layer", type=int, metavar="N", help="only layer N (negative counts from the top)"
    )
    ls.add_argument(
        "--limit", type=int, metavar="N", help="stop after N entries (reads no further)"
    )

    cat = command("cat", "write one file of the image to stdout")
    cat.add_argument("reference", metavar="REF")
    cat.add_argument("path", metavar="PATH")
    cat.add_argument("--layer", type=int, metavar="N", help="read the copy that layer N ships")

    pull = command("pull", "save one layer blob to a file, digest verified")
    pull.add_argument("reference", metavar="REF")
    pull.add_argument("--layer", type=int, metavar="N", required=True)
    pull.add_argument("-o", "--output", type=Path, metavar="FILE", required=True)

    tags = command("tags", "list the tags of a repository")
    tags.add_argument("reference", metavar="REPO")

    for child in (inspect, ls, cat, pull):
        child.add_argument(
            "--platform",
            metavar="OS/ARCH[/VARIANT]",
            help="platform of a multi-arch image (default linux/amd64)",
        )
    for child in (inspect, ls, pull, tags):
        child.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _print(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def _dump(data: Any) -> None:
    # ensure_ascii keeps undecodable names (surrogate escapes) representable in JSON.
    _print(json.dumps(data, ensure_ascii=True))


# -- renderers ------------------------------------------------------------------------------


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)).rstrip()


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for cells in [header, *rows]:
        _print(_row(cells, widths))


def _command_line(words: list[str] | None) -> str:
    return printable(" ".join(words)) if words else "-"


def render_report(report: ImageReport) -> None:
    """The human form of ``inspect``."""
    config = report.config
    others = f"  (of {', '.join(report.platforms)})" if len(report.platforms) > 1 else ""
    facts = [
        ("Reference", report.reference),
        ("Digest", report.digest),
        ("Platform", report.platform + others),
        ("User", printable(config.user) or "root (default)"),
        ("Entrypoint", _command_line(config.entrypoint)),
        ("Cmd", _command_line(config.cmd)),
        ("WorkingDir", printable(config.working_dir) or "/"),
        ("Ports", ", ".join(config.exposed_ports) or "-"),
    ]
    facts += [("Env", printable(e)) for e in config.env]
    facts += [("Label", f"{printable(k)}={printable(v)}") for k, v in sorted(config.labels.items())]
    for name, value in facts:
        _print(f"{name:<11}{value}")
    _print()
    rows = [
        [
            str(layer.index),
            human_size(layer.size),
            short_digest(layer.digest),
            printable(layer.created_by)[:100],
        ]
        for layer in report.layers
    ]
    _table(["LAYER", "SIZE", "DIGEST", "CREATED BY"], rows)
    _print(f"{len(report.layers)} layers, {human_size(sum(x.size for x in report.layers))}")


def render_platforms(report: PlatformsReport) -> None:
    """The human form of ``inspect --all-platforms``."""
    _print(f"{report.reference}  {report.digest}")
    rows = [
        [
            p.platform,
            str(p.layer_count),
            human_size(p.total_size),
            printable(p.user) or "root",
            _command_line((p.entrypoint or []) + (p.cmd or []))[:60],
            short_digest(p.manifest_digest),
        ]
        for p in report.platforms
    ]
    _table(["PLATFORM", "LAYERS", "SIZE", "USER", "RUNS", "MANIFEST"], rows)


def render_entry(entry: EntryInfo) -> str:
    """An ``ls -l``-like line: mode, owner, size, time, path (type-marked), link target."""
    mode = stat.filemode(_TYPE_BITS.get(entry.type, 0) | (entry.mode & 0o7777))
    when = datetime.fromtimestamp(max(entry.mtime, 0), UTC).strftime("%Y-%m-%d %H:%M")
    name = printable(entry.path) + _MARKS.get(entry.type, "")
    if entry.type in ("symlink", "hardlink"):
        name += f" -> {printable(entry.link)}"
    elif entry.type in ("whiteout", "opaque"):
        name += f"  ({entry.type})"
    size = human_size(entry.size) if entry.type in ("file", "hardlink") else "-"
    return f"{mode}  {entry.uid:>5}/{entry.gid:<5}  {size:>10}  {when}  {name}"


# -- commands -------------------------------------------------------------------------------


async def _inspect(peek: Layerpeek, args: argparse.Namespace) -> None:
    if args.all_platforms:
        platforms = await peek.inspect_platforms(args.reference)
        _dump(platforms.model_dump()) if args.json else render_platforms(platforms)
        return
    report = await peek.inspect(args.reference, args.platform)
    if args.json:
        _dump(report.model_dump())
    else:
        render_report(report)


async def _ls(peek: Layerpeek, args: argparse.Namespace) -> None:
    image = await peek.resolve(args.reference, args.platform)
    if args.limit is not None and args.limit < 1:
        raise LayerpeekError("--limit must be at least 1")
    progress = ProgressLine("listing")
    current, count = None, 0
    try:
        async for entry in peek.entries(image, args.layer, on_progress=progress):
            if not args.json and entry.layer != current:
                current = entry.layer
                _layer_heading(image, entry.layer)
            _dump(entry.model_dump()) if args.json else _print(render_entry(entry))
            count += 1
            if args.limit is not None and count >= args.limit:
                break
    finally:
        progress.close()


def _layer_heading(image: Any, index: int) -> None:
    layer = image.manifest.layers[index]
    step = printable(image.config.step_for_layer(index))[:80]
    _print(f"# layer {index}  {short_digest(layer.digest)}  {human_size(layer.size)}  {step}")


async def _cat(peek: Layerpeek, args: argparse.Namespace) -> None:
    image = await peek.resolve(args.reference, args.platform)
    out = sys.stdout.buffer
    async for chunk in peek.read_file(image, args.path, args.layer):
        out.write(chunk)
    out.flush()


async def _pull(peek: Layerpeek, args: argparse.Namespace) -> None:
    image = await peek.resolve(args.reference, args.platform)
    progress = ProgressLine("pulling")
    try:
        result = await peek.pull_layer(image, args.layer, args.output, on_progress=progress)
    finally:
        progress.close()
    if args.json:
        _dump(result.model_dump())
    else:
        _print(f"{result.path}  {human_size(result.size)}  {result.digest} (verified)")


async def _tags(peek: Layerpeek, args: argparse.Namespace) -> None:
    tags = await peek.tags(args.reference)
    if args.json:
        _dump({"repository": args.reference, "tags": tags})
    else:
        for tag in tags:
            _print(printable(tag))


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "LAYERPEEK_" + str(first["loc"][0]).upper() if first["loc"] else "a setting"
        raise LayerpeekError(f"invalid {name}: {first['msg']}") from None


_COMMANDS = {"inspect": _inspect, "ls": _ls, "cat": _cat, "pull": _pull, "tags": _tags}


async def run(args: argparse.Namespace) -> None:
    """Run one command with a client that lives as long as the command."""
    async with RegistryClient(_settings()) as client:
        await _COMMANDS[args.command](Layerpeek(client), args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``layerpeek`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        anyio.run(run, args)
    except LayerpeekError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `layerpeek ls … | head`: the reader left; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # the promise: one line, never a traceback
        if os.environ.get("LAYERPEEK_DEBUG"):
            raise
        return _fail(f"internal error: {type(exc).__name__}: {exc} (LAYERPEEK_DEBUG=1 shows more)")
    return 0


def _fail(message: str) -> int:
    sys.stderr.write(f"layerpeek: error: {printable(message)}\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
