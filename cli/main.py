"""The ``layerpeek`` command: a thin front end over :mod:`layerpeek.core.service`.

Readable tables by default, ``--json`` for scripts (the keys of ``core.models``). Errors are
one line on stderr and a non-zero exit, never a traceback.

A damaged layer does not stop an answer: ``ls`` prints every entry read before the damage
and the merged commands (``ls --merged``, ``find``, ``trace``, ``removed``, ``triage``,
``diff``) answer from the entries read, their JSON marked ``"complete": false``. The damage
is then named on stderr, one line per layer, and the exit status is 1, so a script never takes
an incomplete answer for a whole one.

Every readable line leaves through :func:`_print` (or :func:`_note`, :func:`_fail` on stderr),
which shows control characters as visible escapes (:func:`~layerpeek.core.text.printable`):
whatever field a string from an image or a registry lands in (a name, a build step, a digest,
a platform, a port), it cannot move the cursor, retitle the window or reset the terminal.
JSON output is data and is not escaped (JSON encodes control characters itself).

The parser is built from light modules alone; the core (settings, the registry client, the
façade, the answer models) is imported once the command line has parsed, and what only one
command needs (packages, export, the raw documents) by that command: ``--help`` and
``--version`` answer without the core, and ``ls`` does not load the analyses or packages.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import stat
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import aclosing, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn

from layerpeek.cli.packages import add_packages_command, diff_packages, packages_command
from layerpeek.cli.progress import ProgressLine, clear_progress
from layerpeek.cli.status import EPILOG, Exit, Outcome, UsageError
from layerpeek.core.fs.find import TYPES
from layerpeek.core.layers.progress import Progress
from layerpeek.core.text import (
    command_line,
    counted,
    human_size,
    marked_name,
    one_line,
    printable,
    short_digest,
    user_or_root,
)
from layerpeek.core.version import VERSION

if TYPE_CHECKING:
    from layerpeek.core.models import (
        DiffChange,
        EntryInfo,
        ImageReport,
        IrregularInfo,
        LayerProblem,
        PathEvent,
        PlatformsReport,
        RemovedFile,
        TriageReport,
    )
    from layerpeek.core.service import Layerpeek
    from layerpeek.core.settings import Settings

    Problems = list[LayerProblem]
    """What a command returns: the layers it could not read to their end (printed last)."""

    Command = Callable[[Layerpeek, argparse.Namespace], Awaitable[Outcome | Problems | None]]
    """A subcommand: what it answered (``Outcome``), or only the layers it could not read."""

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


_REF_HELP = "image reference: [REGISTRY/]REPO[:TAG][@DIGEST], e.g. alpine:3.20"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="layerpeek",
        description="Look inside container images straight from the registry, without pulling.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help,
            description=help,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    inspect = command("inspect", "platforms, layers, build history and config of an image")
    inspect.add_argument("reference", metavar="REF", help=_REF_HELP)
    inspect.add_argument(
        "--all-platforms",
        action="store_true",
        help="every platform of a multi-arch tag side by side",
    )

    ls = command("ls", "list the files of one layer or of every layer")
    ls.add_argument("reference", metavar="REF", help=_REF_HELP)
    ls.add_argument(
        "--layer", type=int, metavar="N", help="only layer N (negative counts from the top)"
    )
    ls.add_argument(
        "--limit", type=int, metavar="N", help="stop after N entries (reads no further)"
    )
    ls.add_argument(
        "--merged", action="store_true", help="the filesystem after whiteouts, sorted by path"
    )

    cat = command("cat", "write one file of the image to stdout")
    cat.add_argument("reference", metavar="REF", help=_REF_HELP)
    cat.add_argument("path", metavar="PATH", help="path in the image, e.g. etc/os-release")
    cat.add_argument("--layer", type=int, metavar="N", help="read the copy that layer N ships")
    cat.add_argument(
        "--no-follow",
        dest="follow",
        action="store_false",
        help="do not follow a symlink at PATH itself (links in its directories still are)",
    )
    cat.add_argument(
        "--binary",
        action="store_true",
        help="write a binary file to a terminal too (refused by default: it garbles the screen)",
    )

    pull = command("pull", "save one layer blob to a file, digest verified")
    pull.add_argument("reference", metavar="REF", help=_REF_HELP)
    pull.add_argument(
        "--layer",
        type=int,
        metavar="N",
        required=True,
        help="the layer to save (0 is the base; negative counts from the top)",
    )
    pull.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        required=True,
        help="where to write the compressed blob; - writes it to stdout",
    )

    tags = command("tags", "list the tags of a repository")
    tags.add_argument(
        "reference", metavar="REPO", help="repository, e.g. alpine (a :TAG or @DIGEST is ignored)"
    )

    _add_filesystem_commands(command)
    _add_raw_commands(command)
    add_packages_command(command)
    _add_export_command(command)

    for child in (inspect, ls, cat, pull):
        child.add_argument(
            "--platform",
            metavar="OS/ARCH[/VARIANT]",
            help="platform of a multi-arch image (default linux/amd64)",
        )
    for child in (inspect, ls, pull, tags):
        child.add_argument("--json", action="store_true", help="machine-readable output")
    for child in sub.choices.values():
        child.add_argument(
            "--insecure",
            action="store_true",
            help="reach this command's registries over plain HTTP, as LAYERPEEK_PLAIN_HTTP "
            "would (loopback registries need no flag)",
        )
    return parser


def _print(line: str = "") -> None:
    """One readable line on stdout, escaped for the terminal as a whole: a newline inside a
    field shows as ``\\n`` instead of starting a line of its own."""
    clear_progress()
    sys.stdout.write(printable(line) + "\n")


def _note(line: str) -> None:
    """One readable line on stderr, escaped as :func:`_print` escapes."""
    clear_progress()
    sys.stderr.write(f"layerpeek: {printable(line)}\n")


def _dump(data: Any) -> None:
    # ensure_ascii keeps undecodable names (surrogate escapes) representable in JSON.
    clear_progress()
    sys.stdout.write(json.dumps(data, ensure_ascii=True) + "\n")


# -- renderers ------------------------------------------------------------------------------


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)).rstrip()


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns as wide as their widest cell, measured once the cells are escaped."""
    shown = [[printable(cell) for cell in cells] for cells in [header, *rows]]
    widths = [max(len(r[i]) for r in shown) for i in range(len(header))]
    for cells in shown:
        _print(_row(cells, widths))


def render_report(report: ImageReport) -> None:
    """The human form of ``inspect``."""
    config = report.config
    others = f"  (of {', '.join(report.platforms)})" if len(report.platforms) > 1 else ""
    facts = [
        ("Reference", report.reference),
        ("Digest", report.digest),
        ("Platform", report.platform + others),
        ("Created", report.created or "-"),
        ("User", config.user or "root (default)"),
        ("Entrypoint", command_line(config.entrypoint)),
        ("Cmd", command_line(config.cmd)),
        ("WorkingDir", config.working_dir or "/"),
        ("Ports", ", ".join(config.exposed_ports) or "-"),
    ]
    facts += [("Env", e) for e in config.env]
    facts += [("Label", f"{k}={v}") for k, v in sorted(config.labels.items())]
    for name, value in facts:
        _print(f"{name:<11}{value}")
    _print()
    rows = [
        [
            str(layer.index),
            human_size(layer.size),
            layer.format,
            short_digest(layer.digest),
            one_line(layer.created_by),
        ]
        for layer in report.layers
    ]
    _table(["LAYER", "COMPRESSED", "FORMAT", "DIGEST", "CREATED BY"], rows)
    total = human_size(sum(x.size for x in report.layers))
    _print(
        f"{counted(len(report.layers), 'layer')}, {total} compressed (the registry's blob sizes)"
    )


def render_platforms(report: PlatformsReport) -> None:
    """The human form of ``inspect --all-platforms``."""
    _print(f"{report.reference}  {report.digest}")
    rows = [
        [
            p.platform,
            str(p.layer_count),
            human_size(p.total_size),
            user_or_root(p.user),
            one_line(command_line((p.entrypoint or []) + (p.cmd or []))),
            short_digest(p.manifest_digest),
        ]
        for p in report.platforms
    ]
    _table(["PLATFORM", "LAYERS", "SIZE", "USER", "RUNS", "MANIFEST"], rows)


def render_entry(entry: EntryInfo) -> str:
    """An ``ls -l``-like line: mode, owner, size, time, path (type-marked), link target."""
    mode = stat.filemode(_TYPE_BITS.get(entry.type, 0) | (entry.mode & 0o7777))
    when = _when(entry.mtime)
    name = marked_name(entry.path, entry.type, entry.link, entry.cut)
    size = human_size(entry.size) if entry.type in ("file", "hardlink") else "-"
    return f"{mode}  {entry.uid:>5}/{entry.gid:<5}  {size:>10}  {when}  {name}"


def _when(mtime: int | None) -> str:
    """``2024-05-01 12:00``, or ``-`` (padded to the same width) for an implicit directory."""
    if mtime is None:
        return "-".ljust(16)
    return datetime.fromtimestamp(max(mtime, 0), UTC).strftime("%Y-%m-%d %H:%M")


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


async def _ls(peek: Layerpeek, args: argparse.Namespace) -> Problems:
    image = await peek.resolve(args.reference, args.platform)
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    if args.merged:
        return await _ls_merged(peek, image, args)
    progress = ProgressLine("listing")
    current, count = None, 0
    problems: Problems = []
    try:
        if args.json:
            await _ls_json(peek, image, args, progress, problems)
            return problems
        listing = peek.entries(
            image,
            args.layer,
            on_progress=progress,
            whole=args.limit is None,
            problems=problems,
        )
        async for entry in listing:
            if entry.layer != current:
                current = entry.layer
                _layer_heading(image, entry.layer)
            _print(render_entry(entry))
            count += 1
            if args.limit is not None and count >= args.limit:
                break
    finally:
        progress.close()
    return problems


async def _ls_json(
    peek: Layerpeek,
    image: Any,
    args: argparse.Namespace,
    progress: ProgressLine,
    problems: Problems,
) -> None:
    """``ls --json``: one JSON object a line, written a batch of entries at a time
    (``jsonl``), the same lines ``_dump`` writes of each ``EntryInfo``."""
    from layerpeek.cli import jsonl

    left = args.limit
    listing = peek.entry_batches(
        image, args.layer, on_progress=progress, whole=left is None, problems=problems
    )
    async with aclosing(listing):
        async for layer, batch in listing:
            if left is not None:
                batch = batch[:left]
                left -= len(batch)
            clear_progress()
            sys.stdout.write(jsonl.lines(layer, batch))
            if left == 0:
                break


def _layer_heading(image: Any, index: int) -> None:
    layer = image.manifest.layers[index]
    step = one_line(image.config.step_for_layer(index))
    _print(f"# layer {index}  {short_digest(layer.digest)}  {human_size(layer.size)}  {step}")


async def _cat(peek: Layerpeek, args: argparse.Namespace) -> None:
    image = await peek.resolve(args.reference, args.platform)
    copy = await peek.locate(image, args.path, args.layer, follow=args.follow)
    if copy.links:  # on stderr, so what is piped on is the file alone
        _note(f"read {copy.shown}")
    terminal = sys.stdout.isatty()
    progress = ProgressLine("reading")
    progress.enabled &= not terminal  # on a terminal the bytes themselves show the progress
    out, written = sys.stdout.buffer, 0
    try:
        async with aclosing(peek.read(image, copy)) as chunks:
            async for chunk in chunks:
                if not written and terminal and not args.binary and _binary(chunk):
                    raise UsageError(
                        f"{copy.shown} is binary; not shown on a terminal "
                        "(use --binary, > FILE or | cat)"
                    )
                out.write(chunk)
                written += len(chunk)
                progress(Progress(written, copy.size, 0))
    finally:
        progress.close()
    out.flush()


_MAGIC = (b"\x7fELF", b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"PK\x03\x04", b"\x89PNG", b"MZ")
"""ELF, gzip, zstd, zip, PNG and PE starts: binaries whose first bytes may hold no NUL."""


def _binary(head: bytes) -> bool:
    """A NUL in the first 8 KiB (as grep and git decide) or a known binary start."""
    return b"\0" in head[:8192] or head.startswith(_MAGIC)


async def _pull(peek: Layerpeek, args: argparse.Namespace) -> None:
    image = await peek.resolve(args.reference, args.platform)
    if args.output == "-":
        await _pull_to_stdout(peek, image, args.layer)
        return
    progress = ProgressLine("pulling")
    try:
        result = await peek.pull_layer(image, args.layer, Path(args.output), on_progress=progress)
    finally:
        progress.close()
    if args.json:
        _dump(result.model_dump())
    else:
        _print(f"{result.path}  {human_size(result.size)}  {result.digest} (verified)")


async def _pull_to_stdout(peek: Layerpeek, image: Any, layer: int) -> None:
    """``-o -``: the blob on stdout for a pipe (``| tar tz``); the digest is checked after the
    last chunk, so a mismatch still ends in an error and a failing status."""
    _refuse_terminal("a layer blob", "-o FILE")
    out = sys.stdout.buffer
    async for chunk in peek.stream_layer(image, layer):
        out.write(chunk)
    out.flush()


def _refuse_terminal(what: str, instead: str) -> None:
    """Binary bytes would garble a terminal; a pipe or a file takes them as they are."""
    if sys.stdout.isatty():
        raise UsageError(f"{what} is binary; not shown on a terminal (use {instead} or | cat)")


async def _tags(peek: Layerpeek, args: argparse.Namespace) -> None:
    from layerpeek.core.registry.reference import parse_reference

    # `tags alpine:3.20` lists alpine's tags: the tag or digest names the repository too.
    ref = parse_reference(args.reference, default_tag=None)
    tags = await peek.tags(replace(ref, tag=None, digest=None))
    if args.json:
        _dump({"repository": args.reference, "tags": tags})
    else:
        for tag in tags:
            _print(tag)


# -- the documents as served: manifest, config, digest ----------------------------------------


def _add_raw_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    platforms = {
        "manifest": "that platform's manifest instead of the index",
        "config": "platform of a multi-arch image (default linux/amd64)",
        "digest": "that platform's manifest digest instead of the index's",
    }
    described = {
        "manifest": "the manifest or index exactly as the registry serves it",
        "config": "the config blob exactly as the registry serves it, digest verified",
        "digest": "the digest of the manifest or index, on one line",
    }
    for name, help in described.items():
        child = command(name, help)
        child.add_argument("reference", metavar="REF", help=_REF_HELP)
        child.add_argument("--platform", metavar="OS/ARCH[/VARIANT]", help=platforms[name])


async def _manifest(peek: Layerpeek, args: argparse.Namespace) -> None:
    from layerpeek.core import raw

    _write((await raw.manifest(peek, args.reference, args.platform)).body)


async def _config(peek: Layerpeek, args: argparse.Namespace) -> None:
    from layerpeek.core import raw

    _write(await raw.config(peek, args.reference, args.platform))


async def _digest(peek: Layerpeek, args: argparse.Namespace) -> None:
    from layerpeek.core import raw

    _print(await raw.digest(peek, args.reference, args.platform))


def _write(data: bytes) -> None:
    """Bytes on stdout as they are, for a script to hash or parse."""
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


# -- export: the merged filesystem as a tar ---------------------------------------------------


def _add_export_command(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    export = command("export", "the merged filesystem, or one directory of it, as a tar stream")
    export.add_argument("reference", metavar="REF", help=_REF_HELP)
    export.add_argument(
        "path", metavar="PATH", nargs="?", help="only this directory (default: everything)"
    )
    export.add_argument(
        "-o", "--output", metavar="FILE", help="write the tar to FILE (default: stdout, - too)"
    )
    export.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="platform of a multi-arch image (default linux/amd64)",
    )


async def _export(peek: Layerpeek, args: argparse.Namespace) -> None:
    image = await peek.resolve(args.reference, args.platform)
    if args.output in (None, "-"):
        _refuse_terminal("a tar stream", "-o FILE")
        await _export_to(peek, image, args.path, sys.stdout.buffer)
        return
    target = Path(args.output)
    try:
        with target.open("wb") as out:
            await _export_to(peek, image, args.path, out)
    except BaseException:
        target.unlink(missing_ok=True)  # half an archive would look whole to tar -t
        raise


async def _export_to(peek: Layerpeek, image: Any, path: str | None, out: BinaryIO) -> None:
    from layerpeek.core import export

    progress = ProgressLine("exporting")
    written = 0
    try:
        async with aclosing(export.tar_stream(peek, image, path)) as stream:
            async for chunk in stream:
                out.write(chunk)
                written += len(chunk)
                progress(Progress(written, 0, 0))
        out.flush()
    finally:
        progress.close()


# -- the merged filesystem: ls --merged, trace, removed, find, diff, triage --------------------


def _add_filesystem_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    trace = command("trace", "the story of one path across the layers, with each build step")
    trace.add_argument("reference", metavar="REF", help=_REF_HELP)
    trace.add_argument("path", metavar="PATH", help="path in the image, e.g. etc/passwd")

    removed = command("removed", "files a later layer deleted or overwrote but a lower one ships")
    removed.add_argument("reference", metavar="REF", help=_REF_HELP)
    removed.add_argument(
        "--limit", type=int, metavar="N", help="show the N largest files (the total counts all)"
    )

    find = command("find", "find paths by glob (full path or basename) or regex")
    find.add_argument("reference", metavar="REF", help=_REF_HELP)
    find.add_argument(
        "pattern", metavar="PATTERN", help="glob (*.pem, etc/**/*.conf) or, with --regex, a regex"
    )
    find.add_argument("--regex", action="store_true", help="PATTERN is a regular expression")
    find.add_argument(
        "--merged", action="store_true", help="search the merged filesystem, not every layer"
    )
    find.add_argument(
        "--type", action="append", choices=sorted(TYPES), help="only this type (repeatable)"
    )
    find.add_argument("--min-size", metavar="SIZE", help="at least SIZE (512, 10K, 1.5M, 2G)")
    find.add_argument("--max-size", metavar="SIZE", help="at most SIZE")
    find.add_argument("--limit", type=int, metavar="N", help="show the first N matches")

    diff = command("diff", "files added, removed and changed from image A to image B")
    diff.add_argument("reference", metavar="A", help="the image before (a reference)")
    diff.add_argument("other", metavar="B", nargs="?", help="default: A again (with --platform-b)")
    diff.add_argument("--platform-b", metavar="OS/ARCH[/VARIANT]", help="platform of B")
    diff.add_argument("--packages", action="store_true", help="installed packages, not files")

    triage = command("triage", "secrets, deleted secrets, setuid and writable paths, user, OS")
    triage.add_argument("reference", metavar="REF", help=_REF_HELP)
    triage.add_argument("--largest", type=int, default=10, metavar="N", help="N largest files")

    for child in (trace, removed, find, diff, triage):
        child.add_argument(
            "--platform",
            metavar="OS/ARCH[/VARIANT]",
            help="platform of a multi-arch image (default linux/amd64)",
        )
        child.add_argument("--json", action="store_true", help="machine-readable output")


async def _ls_merged(peek: Layerpeek, image: Any, args: argparse.Namespace) -> Problems:
    if args.layer is not None:
        raise UsageError("--merged shows every layer combined; drop --layer")
    problems: Problems = []
    irregular: list[IrregularInfo] = []
    shown = 0
    with _progress(peek, "merging"):
        await peek.merged(image, [])  # built and kept: the listing below pages through it
    async with aclosing(peek.merged_entries(image, problems, irregular)) as entries:
        async for entry in entries:
            if shown == args.limit:
                break
            _dump(entry.model_dump()) if args.json else _print(_layered(entry))
            shown += 1
    for odd in irregular:
        _note(f"note: {odd.path} (layer {odd.layer}): {odd.reason}")
    return problems


async def _trace(peek: Layerpeek, args: argparse.Namespace) -> Outcome:
    trace = await peek.trace(await peek.resolve(args.reference, args.platform), args.path)
    outcome = Outcome(found=bool(trace.events), problems=trace.problems)
    if args.json:
        _dump(trace.model_dump())
        return outcome
    now = (
        f"present, {trace.entry.type} from layer {trace.entry.layer}"
        if trace.entry
        else "not in the merged filesystem"
    )
    _print(f"{trace.path}: {now}")
    rows = [_event_row(e) for e in trace.events]
    _table(["LAYER", "ACTION", "TYPE", "SIZE", "CAUSE", "CREATED BY"], rows)
    if not trace.events:
        _print("no layer has this path")
    current = trace.entry.layer if trace.entry else None
    older = {e.layer: e.layer_path for e in trace.events if e.layer in trace.readable_layers}
    for layer, name in older.items():
        if layer != current:
            _print(f"older copy: layerpeek cat {args.reference} {name} --layer {layer}")
    return outcome


def _event_row(event: PathEvent) -> list[str]:
    size = _size(event.type, event.size)
    step = one_line(event.created_by)
    return [str(event.layer), event.action, event.type, size, event.cause, step]


def _layered(entry: EntryInfo) -> str:
    """An ``ls -l`` line prefixed by the layer that provides the entry."""
    return f"{entry.layer:>3}  {render_entry(entry)}"


def _size(type: str, size: int) -> str:
    return human_size(size) if type in ("file", "hardlink") else "-"


async def _removed(peek: Layerpeek, args: argparse.Namespace) -> Problems:
    report = await peek.removed_files(await peek.resolve(args.reference, args.platform))
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    shown = report.files[: args.limit]
    if args.json:
        _dump(report.model_copy(update={"files": shown}).model_dump())
        return report.problems
    for removed_in, files in _by_removing_layer(shown).items():
        size = human_size(sum(f.size for f in files))
        _print(f"# removed in layer {removed_in}  {one_line(files[0].removed_by)}")
        _print(f"# {counted(len(files), 'file')}, {size}")
        rows = [[_size(f.type, f.size), str(f.layer), f.action, f.path] for f in files]
        _table(["SIZE", "SHIPPED IN", "ACTION", "PATH"], rows)
        _print()
    more = f" (showing {len(shown)}; --limit)" if len(shown) < len(report.files) else ""
    total = human_size(report.total_size)
    _print(f"{counted(len(report.files), 'file')}, {total} still shipped{more}")
    return report.problems


def _by_removing_layer(files: list[RemovedFile]) -> dict[int, list[RemovedFile]]:
    """The files by the layer (and so the build step) that removed them: the step is shown
    once for its group. Groups come in the order of their largest file, as the files do."""
    groups: dict[int, list[RemovedFile]] = {}
    for file in files:
        groups.setdefault(file.removed_in, []).append(file)
    return groups


async def _find(peek: Layerpeek, args: argparse.Namespace) -> Outcome:
    from layerpeek.core.errors import LayerpeekError
    from layerpeek.core.fs.find import FindSpec

    try:
        spec = FindSpec.parse(args.pattern, args.regex, args.type, args.min_size, args.max_size)
    except LayerpeekError as exc:  # a pattern or size on the command line: usage
        raise UsageError(str(exc)) from None
    image = await peek.resolve(args.reference, args.platform)
    with _progress(peek, "searching"):
        result = await peek.find(image, spec, merged=args.merged, limit=args.limit)
    outcome = Outcome(found=result.total > 0, problems=result.problems)
    if args.json:
        _dump(result.model_dump())
        return outcome
    for match in result.matches:
        _print(_layered(match))
    shown = len(result.matches)
    more = f" (showing {shown}; --limit)" if shown < result.total else ""
    _print(f"{counted(result.total, 'match', 'matches')}{more}")
    return outcome


async def _diff(peek: Layerpeek, args: argparse.Namespace) -> Outcome:
    other = args.other or args.reference
    if other == args.reference and args.platform_b is None:
        raise UsageError("diff needs two images: A B, or A --platform P --platform-b Q")
    if args.packages:
        return await diff_packages(peek, args)
    a = await peek.resolve(args.reference, args.platform)
    b = await peek.resolve(other, args.platform_b or args.platform)
    report = await peek.diff(a, b)
    same = not (report.added or report.removed or report.changed)
    outcome = Outcome(found=same, problems=report.problems)
    if args.json:
        _dump(report.model_dump())
        return outcome
    _print(f"--- {report.a}  {short_digest(report.a_digest)}")
    _print(f"+++ {report.b}  {short_digest(report.b_digest)}")
    _print(f"shared layers: {', '.join(map(short_digest, report.shared_layers)) or 'none'}")
    for entry in report.added:
        _print(f"+ {entry.path}  {_size(entry.type, entry.size)}")
    for entry in report.removed:
        _print(f"- {entry.path}  {_size(entry.type, entry.size)}")
    for change in report.changed:
        fields = ", ".join(_change(change, f) for f in change.fields)
        _print(f"~ {change.path}  {fields}")
    _print(
        f"{len(report.added)} added, {len(report.removed)} removed, {len(report.changed)} changed,"
        f" {report.unchanged} unchanged, {report.unverified} same metadata in other layer blobs"
    )
    return outcome


def _change(change: DiffChange, field: str) -> str:
    before, after = getattr(change.before, field), getattr(change.after, field)
    if field == "mode":
        return f"mode {before & 0o7777:04o}->{after & 0o7777:04o}"
    return f"{field} {before}->{after}"


async def _triage(peek: Layerpeek, args: argparse.Namespace) -> Problems:
    image = await peek.resolve(args.reference, args.platform)
    with _progress(peek, "triaging"):
        report = await peek.triage(image, largest=args.largest)
    if args.json:
        _dump(report.model_dump())
    else:
        render_triage(report)
    return report.problems


def render_triage(report: TriageReport) -> None:
    """The readable triage report: facts first, then findings by severity, then sizes."""
    user = report.user or "(unset)"
    os_name = (report.os.pretty_name or report.os.id) if report.os else "unknown"
    _print(f"Reference  {report.reference}  ({report.platform})")
    _print(f"User       {user}{'  -- runs as root' if report.runs_as_root else ''}")
    _print(f"OS         {os_name}")
    _print(f"Removed    {human_size(report.removed_size)} of deleted or overwritten files shipped")
    _print()
    rows = [
        [f.severity, f.kind, f.path, str(f.layer), printable(f.detail)[:70]]
        for f in report.findings
    ]
    if rows:
        _table(["SEVERITY", "KIND", "PATH", "LAYER", "DETAIL"], rows)
    else:
        _print("no findings")
    _print()
    _print("Largest files")
    for entry in report.largest:
        _print(f"  {human_size(entry.size):>10}  {entry.path}  (layer {entry.layer})")


@contextmanager
def _progress(peek: Layerpeek, label: str) -> Iterator[None]:
    """Progress on stderr while the command's layers are read for its merged view."""
    progress = ProgressLine(label)
    peek.on_progress = progress
    try:
        yield
    finally:
        peek.on_progress = None
        progress.close()


_COMMANDS: dict[str, Command] = {
    "inspect": _inspect,
    "ls": _ls,
    "cat": _cat,
    "pull": _pull,
    "tags": _tags,
}
_COMMANDS |= {"manifest": _manifest, "config": _config, "digest": _digest, "export": _export}
_COMMANDS |= {
    "trace": _trace,
    "removed": _removed,
    "find": _find,
    "diff": _diff,
    "triage": _triage,
}
_COMMANDS["packages"] = packages_command


async def run(args: argparse.Namespace) -> Outcome:
    """Run one command with a client that lives as long as the command; returns whether it
    found anything and the layers its answer could not read to their end. Settings come from
    the environment alone, not from a ``.env`` in whatever directory the command runs in
    (``core.settings``)."""
    from layerpeek.core.settings import Settings, load_settings
    from layerpeek.core.startup import open_service

    settings = _insecure(load_settings(Settings, dotenv=False), args)
    async with open_service(settings, guarded=False) as peek:
        answer = await _COMMANDS[args.command](peek, args)
    return answer if isinstance(answer, Outcome) else Outcome(problems=answer or [])


def _insecure(settings: Settings, args: argparse.Namespace) -> Settings:
    """With ``--insecure``, the registries of the command's references join
    ``LAYERPEEK_PLAIN_HTTP`` for this run."""
    if not getattr(args, "insecure", False):
        return settings
    from layerpeek.core.registry.reference import parse_reference

    named = (getattr(args, name, None) for name in ("reference", "other"))
    hosts = tuple(parse_reference(text).api_host for text in named if text)
    return settings.model_copy(update={"plain_http": (*settings.plain_http, *hosts)})


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``layerpeek`` console script; returns the exit status."""
    args = _parser().parse_args(argv)  # --help and --version end here, the core unloaded
    import anyio

    from layerpeek.core.errors import LayerpeekError
    from layerpeek.core.hints import with_hint
    from layerpeek.core.runtime import tuned_process

    try:
        with tuned_process():
            outcome = anyio.run(run, args)
    except UsageError as exc:
        return _fail(str(exc), Exit.USAGE)
    except LayerpeekError as exc:
        return _fail(with_hint(exc, _option))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `layerpeek ls … | head`: the reader left; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return Exit.FOUND
    except Exception as exc:  # the promise: one line, never a traceback
        if os.environ.get("LAYERPEEK_DEBUG"):
            raise
        return _fail(f"internal error: {type(exc).__name__}: {exc} (LAYERPEEK_DEBUG=1 shows more)")
    for problem in outcome.problems:
        _note(f"error: {problem.describe()}")
    return outcome.status


def entry() -> NoReturn:
    """The ``layerpeek`` command as a process (its console script, ``python -m
    layerpeek.cli``): ``main``, then ``end_process``."""
    end_process(main())


def end_process(status: int) -> NoReturn:
    """End the process with ``status``, freezing the objects still alive first.

    ``main`` has closed what it opened, and the process ends now; the interpreter's last
    collection on the way out would otherwise walk every object alive, which after a
    50,000-entry listing took ~55 ms of a ~1.3 s command (~10 ms frozen). Objects are
    still freed as their references go; only that last walk for cycles skips them."""
    gc.freeze()
    sys.exit(status)


def _option(name: str, value: str | None = None) -> str:
    """How a hint names this command's options: ``--layer 0``."""
    return f"--{name}" if value is None else f"--{name} {value}"


def _fail(message: str, status: Exit = Exit.ERROR) -> int:
    _note(f"error: {message}")
    return status


if __name__ == "__main__":
    entry()
