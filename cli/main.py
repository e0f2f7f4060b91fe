"""The ``layerpeek`` command: a thin front end over :mod:`layerpeek.core.service`.

Readable tables by default, ``--json`` for scripts (keys of DESIGN §3). Errors are one line on
stderr and a non-zero exit, never a traceback.

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
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from collections.abc import Callable, Sequence
from contextlib import aclosing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from layerpeek.cli import jsonl
from layerpeek.cli.progress import ProgressLine
from layerpeek.core import raw
from layerpeek.core.errors import LayerpeekError
from layerpeek.core.fs.find import TYPES, FindSpec
from layerpeek.core.hints import with_hint
from layerpeek.core.models import (
    DiffChange,
    EntryInfo,
    ImageReport,
    IrregularInfo,
    LayerProblem,
    PathEvent,
    PlatformsReport,
    TriageReport,
)
from layerpeek.core.registry.reference import parse_reference
from layerpeek.core.runtime import tuned_process
from layerpeek.core.service import Layerpeek
from layerpeek.core.settings import Settings, load_settings
from layerpeek.core.startup import open_service
from layerpeek.core.text import (
    command_line,
    human_size,
    marked_name,
    one_line,
    printable,
    short_digest,
    user_or_root,
)

Problems = list[LayerProblem]
"""What a command returns: the layers it could not read to their end (printed last)."""

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
    ls.add_argument(
        "--merged", action="store_true", help="the filesystem after whiteouts, sorted by path"
    )

    cat = command("cat", "write one file of the image to stdout")
    cat.add_argument("reference", metavar="REF")
    cat.add_argument("path", metavar="PATH")
    cat.add_argument("--layer", type=int, metavar="N", help="read the copy that layer N ships")
    cat.add_argument(
        "--no-follow",
        dest="follow",
        action="store_false",
        help="do not follow a symlink at PATH itself (links in its directories still are)",
    )

    pull = command("pull", "save one layer blob to a file, digest verified")
    pull.add_argument("reference", metavar="REF")
    pull.add_argument("--layer", type=int, metavar="N", required=True)
    pull.add_argument("-o", "--output", type=Path, metavar="FILE", required=True)

    tags = command("tags", "list the tags of a repository")
    tags.add_argument("reference", metavar="REPO")

    _add_filesystem_commands(command)
    _add_raw_commands(command)

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
    sys.stdout.write(printable(line) + "\n")


def _note(line: str) -> None:
    """One readable line on stderr, escaped as :func:`_print` escapes."""
    sys.stderr.write(f"layerpeek: {printable(line)}\n")


def _dump(data: Any) -> None:
    # ensure_ascii keeps undecodable names (surrogate escapes) representable in JSON.
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
            short_digest(layer.digest),
            one_line(layer.created_by),
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
    when = datetime.fromtimestamp(max(entry.mtime, 0), UTC).strftime("%Y-%m-%d %H:%M")
    name = marked_name(entry.path, entry.type, entry.link, entry.cut)
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


async def _ls(peek: Layerpeek, args: argparse.Namespace) -> Problems:
    image = await peek.resolve(args.reference, args.platform)
    if args.limit is not None and args.limit < 1:
        raise LayerpeekError("--limit must be at least 1")
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
    left = args.limit
    listing = peek.entry_batches(
        image, args.layer, on_progress=progress, whole=left is None, problems=problems
    )
    async with aclosing(listing):
        async for layer, batch in listing:
            if left is not None:
                batch = batch[:left]
                left -= len(batch)
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
    out = sys.stdout.buffer
    async for chunk in peek.read(image, copy):
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
        child.add_argument("reference", metavar="REF")
        child.add_argument("--platform", metavar="OS/ARCH[/VARIANT]", help=platforms[name])


async def _manifest(peek: Layerpeek, args: argparse.Namespace) -> None:
    _write((await raw.manifest(peek, args.reference, args.platform)).body)


async def _config(peek: Layerpeek, args: argparse.Namespace) -> None:
    _write(await raw.config(peek, args.reference, args.platform))


async def _digest(peek: Layerpeek, args: argparse.Namespace) -> None:
    _print(await raw.digest(peek, args.reference, args.platform))


def _write(data: bytes) -> None:
    """Bytes on stdout as they are, for a script to hash or parse."""
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


# -- the merged filesystem: ls --merged, trace, removed, find, diff, triage --------------------


def _add_filesystem_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    trace = command("trace", "the story of one path across the layers, with each build step")
    trace.add_argument("reference", metavar="REF")
    trace.add_argument("path", metavar="PATH")

    removed = command("removed", "files a later layer deleted or overwrote but a lower one ships")
    removed.add_argument("reference", metavar="REF")

    find = command("find", "find paths by glob (full path or basename) or regex")
    find.add_argument("reference", metavar="REF")
    find.add_argument("pattern", metavar="PATTERN")
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
    diff.add_argument("reference", metavar="A")
    diff.add_argument("other", metavar="B", nargs="?", help="default: A again (with --platform-b)")
    diff.add_argument("--platform-b", metavar="OS/ARCH[/VARIANT]", help="platform of B")

    triage = command("triage", "secrets, deleted secrets, setuid and writable paths, user, OS")
    triage.add_argument("reference", metavar="REF")
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
        raise LayerpeekError("--merged shows every layer combined; drop --layer")
    problems: Problems = []
    irregular: list[IrregularInfo] = []
    shown = 0
    async with aclosing(peek.merged_entries(image, problems, irregular)) as entries:
        async for entry in entries:
            if shown == args.limit:
                break
            _dump(entry.model_dump()) if args.json else _print(_layered(entry))
            shown += 1
    for odd in irregular:
        _note(f"note: {odd.path} (layer {odd.layer}): {odd.reason}")
    return problems


async def _trace(peek: Layerpeek, args: argparse.Namespace) -> Problems:
    trace = await peek.trace(await peek.resolve(args.reference, args.platform), args.path)
    if args.json:
        _dump(trace.model_dump())
        return trace.problems
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
    return trace.problems


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
    if args.json:
        _dump(report.model_dump())
        return report.problems
    rows = [
        [
            _size(f.type, f.size),
            str(f.layer),
            f"{f.action} in {f.removed_in}",
            one_line(f.removed_by, 40),
            f.path,
        ]
        for f in report.files
    ]
    _table(["SIZE", "SHIPPED IN", "REMOVED", "BY", "PATH"], rows)
    _print(f"{len(report.files)} files, {human_size(report.total_size)} still shipped")
    return report.problems


async def _find(peek: Layerpeek, args: argparse.Namespace) -> Problems:
    spec = FindSpec.parse(args.pattern, args.regex, args.type, args.min_size, args.max_size)
    image = await peek.resolve(args.reference, args.platform)
    result = await peek.find(image, spec, merged=args.merged, limit=args.limit)
    if args.json:
        _dump(result.model_dump())
        return result.problems
    for match in result.matches:
        _print(_layered(match))
    shown = len(result.matches)
    more = f" (showing {shown}; --limit)" if shown < result.total else ""
    _print(f"{result.total} matches{more}")
    return result.problems


async def _diff(peek: Layerpeek, args: argparse.Namespace) -> Problems:
    other = args.other or args.reference
    if other == args.reference and args.platform_b is None:
        raise LayerpeekError("diff needs two images: A B, or A --platform P --platform-b Q")
    a = await peek.resolve(args.reference, args.platform)
    b = await peek.resolve(other, args.platform_b or args.platform)
    report = await peek.diff(a, b)
    if args.json:
        _dump(report.model_dump())
        return report.problems
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
    return report.problems


def _change(change: DiffChange, field: str) -> str:
    before, after = getattr(change.before, field), getattr(change.after, field)
    if field == "mode":
        return f"mode {before & 0o7777:04o}->{after & 0o7777:04o}"
    return f"{field} {before}->{after}"


async def _triage(peek: Layerpeek, args: argparse.Namespace) -> Problems:
    image = await peek.resolve(args.reference, args.platform)
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


_COMMANDS = {"inspect": _inspect, "ls": _ls, "cat": _cat, "pull": _pull, "tags": _tags}
_COMMANDS |= {"manifest": _manifest, "config": _config, "digest": _digest}
_COMMANDS |= {
    "trace": _trace,
    "removed": _removed,
    "find": _find,
    "diff": _diff,
    "triage": _triage,
}


async def run(args: argparse.Namespace) -> Problems:
    """Run one command with a client that lives as long as the command; returns the layers
    its answer could not read to their end. Settings come from the environment alone, not
    from a ``.env`` in whatever directory the command runs in (``core.settings``)."""
    settings = _insecure(load_settings(Settings, dotenv=False), args)
    async with open_service(settings, guarded=False) as peek:
        return await _COMMANDS[args.command](peek, args) or []


def _insecure(settings: Settings, args: argparse.Namespace) -> Settings:
    """With ``--insecure``, the registries of the command's references join
    ``LAYERPEEK_PLAIN_HTTP`` for this run."""
    if not getattr(args, "insecure", False):
        return settings
    named = (getattr(args, name, None) for name in ("reference", "other"))
    hosts = tuple(parse_reference(text).api_host for text in named if text)
    return settings.model_copy(update={"plain_http": (*settings.plain_http, *hosts)})


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``layerpeek`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        with tuned_process():
            problems = anyio.run(run, args)
    except LayerpeekError as exc:
        return _fail(with_hint(exc, _option))
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
    for problem in problems:
        _note(f"error: {problem.describe()}")
    return 1 if problems else 0


def _option(name: str, value: str | None = None) -> str:
    """How a hint names this command's options: ``--layer 0``."""
    return f"--{name}" if value is None else f"--{name} {value}"


def _fail(message: str) -> int:
    _note(f"error: {message}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
