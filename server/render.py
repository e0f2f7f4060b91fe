"""The short text each tool returns beside its structured content.

The text is for a reader (a model or a person in a client UI): a few lines that say what was
found and how to go on; the structured content holds every field. Each function here returns
the lines; :func:`text` is the one way they become the text a client shows: every line passes
through ``printable``, so whatever field a string from an image or a registry sits in (a name,
a step, a digest, a platform, a file's contents), its control characters show as escapes and
its newlines cannot start lines of their own. The structured content stays data, unescaped.
"""

from __future__ import annotations

from collections.abc import Iterable

from layerpeek.core.models import EntryInfo, ImageReport, LayerProblem, PathTrace, PlatformsReport
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
from layerpeek.server.models import (
    DiffPage,
    FileContent,
    FilePage,
    FindPage,
    RemovedPage,
    TagPage,
    TriagePage,
)

MAX_TEXT_ROWS = 40
Lines = list[str]


def text(lines: Iterable[str]) -> str:
    """The tool's text: each line escaped for a reader's terminal or client, then joined."""
    return "\n".join(printable(line) for line in lines)


def incomplete(problems: list[LayerProblem]) -> Lines:
    """One line per layer the answer could not read to its end, first in the text: the
    answer below is built from what was read before the damage."""
    return [f"INCOMPLETE: {problem.describe()}" for problem in problems]


def _more(count: int, shown: int, what: str) -> list[str]:
    return [f"... {count - shown} more {what} in the structured content"] if count > shown else []


def image_text(report: ImageReport) -> Lines:
    config = report.config
    lines = [
        f"{report.reference}  {report.digest}",
        f"platform {report.platform} (of {', '.join(report.platforms)})",
        f"user {user_or_root(config.user)}; entrypoint {command_line(config.entrypoint)}; "
        f"cmd {command_line(config.cmd)}; workdir {config.working_dir or '/'}",
    ]
    if config.exposed_ports:
        lines.append(f"ports {', '.join(config.exposed_ports)}")
    total = sum(layer.size for layer in report.layers)
    lines.append(f"{counted(len(report.layers), 'layer')}, {human_size(total)}:")
    for layer in report.layers[:MAX_TEXT_ROWS]:
        size, digest = human_size(layer.size), short_digest(layer.digest)
        step = one_line(layer.created_by)
        lines.append(f"  {layer.index:>3}  {size:>10}  {digest}  {step}")
    return lines + _more(len(report.layers), MAX_TEXT_ROWS, "layers")


def platforms_text(report: PlatformsReport) -> Lines:
    lines = [f"{report.reference}  {report.digest}  {len(report.platforms)} platforms:"]
    for p in report.platforms:
        runs = one_line(command_line((p.entrypoint or []) + (p.cmd or [])))
        lines.append(
            f"  {printable(p.platform):<16} {p.layer_count:>3} layers  "
            f"{human_size(p.total_size):>10}  user {user_or_root(p.user)}  runs {runs}"
        )
    return lines


def entry_line(entry: EntryInfo) -> str:
    """``layer  size  path`` with ls -F type marks and link targets."""
    name = marked_name(entry.path, entry.type, entry.link, entry.cut)
    size = human_size(entry.size) if entry.type in ("file", "hardlink") else "-"
    return f"{entry.layer:>3}  {size:>10}  {name}"


def file_page_text(page: FilePage) -> Lines:
    where = "merged" if page.merged else "all layers"
    where = f"layer {page.layer}" if page.layer is not None else where
    shown = counted(len(page.entries), "entry", "entries")
    head = f"{shown} of {page.reference} ({page.platform}, {where})"
    tail = "more: call again with cursor=next_cursor" if page.next_cursor else "end of listing"
    rows = [entry_line(e) for e in page.entries[:MAX_TEXT_ROWS]]
    more = _more(len(page.entries), MAX_TEXT_ROWS, "entries")
    return [*incomplete(page.problems), head, *rows, *more, tail]


def file_text(content: FileContent) -> Lines:
    """The head line, then the file's own lines (the exact text is ``content`` in the
    structured content; here a tab or an escape sequence in it shows as an escape)."""
    where = f"layer {content.layer}" if content.layer is not None else "the image"
    read = f"{content.path} → {content.read_path}" if content.links_followed else content.path
    head = f"{read} in {where}: {human_size(content.size)}, sha256 {content.sha256}, {content.kind}"
    if content.truncated:
        head += f" (first {content.returned_bytes} bytes as {content.encoding})"
    return [head, *content.content.split("\n")]


def tags_text(page: TagPage) -> Lines:
    tail = "more: call again with cursor=next_cursor" if page.next_cursor else "end of tags"
    shown = ", ".join(page.tags)
    return [f"{page.repository}: {len(page.tags)} of {page.total} tags", shown, tail]


def _next(cursor: str | None) -> str:
    return "more: call again with cursor=next_cursor" if cursor else "end of results"


def find_text(result: FindPage) -> Lines:
    found = result.find
    where = "the merged filesystem" if found.merged else "every layer"
    matches = counted(found.total, "match", "matches")
    head = f"{matches} for {found.pattern} in {where} of {found.reference}"
    rows = []
    for match in found.matches[:MAX_TEXT_ROWS]:
        story = "; ".join(f"{e.action} in layer {e.layer}" for e in match.history)
        rows.append(f"{entry_line(match)}  [{story}]")
    return [
        *incomplete(found.problems),
        head,
        *rows,
        *_more(len(found.matches), MAX_TEXT_ROWS, "matches"),
        _next(result.next_cursor),
    ]


def trace_text(trace: PathTrace) -> Lines:
    state = "present" if trace.exists else "absent from the final filesystem"
    lines = [*incomplete(trace.problems), f"{trace.path} in {trace.reference}: {state}"]
    for event in trace.events:
        cause = f" by {event.cause}" if event.cause else ""
        lines.append(
            f"  layer {event.layer}: {event.action} {event.type} "
            f"({human_size(event.size)}){cause}  {one_line(event.created_by)}"
        )
    if trace.readable_layers:
        lines.append(f"readable with read_file layer={trace.readable_layers}")
    return lines


def removed_text(result: RemovedPage) -> Lines:
    report = result.removed
    head = (
        f"{result.total_files} removed files still shipped in {report.reference}, "
        f"{human_size(report.total_size)}"
    )
    rows = [
        f"  {human_size(f.size):>10}  {f.path}  layer {f.layer}, {f.action} in layer {f.removed_in}"
        for f in report.files[:MAX_TEXT_ROWS]
    ]
    return [*incomplete(report.problems), head, *rows, _next(result.next_cursor)]


def diff_text(result: DiffPage, platforms: tuple[str, str]) -> Lines:
    """The head names each side's platform: two platforms of one tag read ``app:1 -> app:1``
    otherwise."""
    diff = result.diff
    a, b = f"{diff.a} ({platforms[0]})", f"{diff.b} ({platforms[1]})"
    head = (
        f"{a} -> {b}: {result.total_added} added, {result.total_removed} removed, "
        f"{result.total_changed} changed, {diff.unchanged} unchanged, "
        f"{len(diff.shared_layers)} shared layers"
    )
    rows = [f"+ {e.path}" for e in diff.added]
    rows += [f"- {e.path}" for e in diff.removed]
    rows += [f"~ {c.path} ({', '.join(c.fields)})" for c in diff.changed]
    shown = rows[:MAX_TEXT_ROWS]
    more = _more(len(rows), len(shown), "paths")
    return [*incomplete(diff.problems), head, *shown, *more, _next(result.next_cursor)]


def triage_text(result: TriagePage) -> Lines:
    report = result.triage
    os_name = report.os.pretty_name if report.os else "unknown OS"
    user = user_or_root(report.user)
    lines = [
        *incomplete(report.problems),
        f"{report.reference} ({report.platform}): {os_name}; user {user}"
        + (" (runs as root)" if report.runs_as_root else ""),
        f"{result.total_findings} findings; {human_size(report.removed_size)} shipped for "
        "deleted or overwritten files",
    ]
    lines += [
        f"  {f.severity:<6} {f.kind:<15} {f.path} (layer {f.layer}) {one_line(f.detail)}"
        for f in report.findings[:MAX_TEXT_ROWS]
    ]
    return [*lines, _next(result.next_cursor)]
