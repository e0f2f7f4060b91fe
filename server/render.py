"""The short text each tool returns beside its structured content.

The text is for a reader (a model or a person in a client UI): a few lines that say what was
found and how to go on; the structured content holds every field. Strings from the image are
untrusted and pass through ``printable`` so control characters show as escapes.
"""

from __future__ import annotations

from layerpeek.core.models import EntryInfo, ImageReport, PathTrace, PlatformsReport
from layerpeek.core.text import human_size, marked_name, printable, short_digest

from .models import (
    DiffPage,
    FileContent,
    FilePage,
    FindPage,
    RemovedPage,
    TagPage,
    TriagePage,
)

MAX_TEXT_ROWS = 40


def _more(count: int, shown: int, what: str) -> list[str]:
    return [f"... {count - shown} more {what} in the structured content"] if count > shown else []


def _command(words: list[str] | None) -> str:
    return printable(" ".join(words)) if words else "-"


def image_text(report: ImageReport) -> str:
    config = report.config
    lines = [
        f"{report.reference}  {report.digest}",
        f"platform {report.platform} (of {', '.join(report.platforms)})",
        f"user {printable(config.user) or 'root'}; entrypoint {_command(config.entrypoint)}; "
        f"cmd {_command(config.cmd)}; workdir {printable(config.working_dir) or '/'}",
    ]
    total = sum(layer.size for layer in report.layers)
    lines.append(f"{len(report.layers)} layers, {human_size(total)}:")
    for layer in report.layers[:MAX_TEXT_ROWS]:
        size, digest = human_size(layer.size), short_digest(layer.digest)
        step = printable(layer.created_by)[:100]
        lines.append(f"  {layer.index:>3}  {size:>10}  {digest}  {step}")
    return "\n".join(lines + _more(len(report.layers), MAX_TEXT_ROWS, "layers"))


def platforms_text(report: PlatformsReport) -> str:
    lines = [f"{report.reference}  {report.digest}  {len(report.platforms)} platforms:"]
    for p in report.platforms:
        runs = _command((p.entrypoint or []) + (p.cmd or []))[:60]
        lines.append(
            f"  {p.platform:<16} {p.layer_count:>3} layers  {human_size(p.total_size):>10}  "
            f"user {printable(p.user) or 'root'}  runs {runs}"
        )
    return "\n".join(lines)


def entry_line(entry: EntryInfo) -> str:
    """``layer  size  path`` with ls -F type marks and link targets."""
    name = marked_name(entry.path, entry.type, entry.link)
    size = human_size(entry.size) if entry.type in ("file", "hardlink") else "-"
    return f"{entry.layer:>3}  {size:>10}  {name}"


def file_page_text(page: FilePage) -> str:
    where = f"layer {page.layer}" if page.layer is not None else "all layers"
    head = f"{len(page.entries)} entries of {page.reference} ({page.platform}, {where})"
    tail = "more: call again with cursor=next_cursor" if page.next_cursor else "end of listing"
    rows = [entry_line(e) for e in page.entries[:MAX_TEXT_ROWS]]
    return "\n".join([head, *rows, *_more(len(page.entries), MAX_TEXT_ROWS, "entries"), tail])


def file_text(content: FileContent) -> str:
    where = f"layer {content.layer}" if content.layer is not None else "the image"
    head = (
        f"{printable(content.path)} in {where}: {human_size(content.size)}, "
        f"sha256 {content.sha256}, {content.kind}"
    )
    if content.truncated:
        head += f" (first {content.returned_bytes} bytes as {content.encoding})"
    return f"{head}\n{content.content}"


def tags_text(page: TagPage) -> str:
    tail = "more: call again with cursor=next_cursor" if page.next_cursor else "end of tags"
    shown = ", ".join(printable(t) for t in page.tags)
    return f"{page.repository}: {len(page.tags)} of {page.total} tags\n{shown}\n{tail}"


def _next(cursor: str | None) -> str:
    return "more: call again with cursor=next_cursor" if cursor else "end of results"


def _step(text: str) -> str:
    return printable(text)[:80] or "-"


def find_text(result: FindPage) -> str:
    found = result.find
    where = "the merged filesystem" if found.merged else "every layer"
    head = f"{found.total} matches for {printable(found.pattern)} in {where} of {found.reference}"
    rows = []
    for match in found.matches[:MAX_TEXT_ROWS]:
        story = "; ".join(f"{e.action} in layer {e.layer}" for e in match.history)
        rows.append(f"{entry_line(match)}  [{story}]")
    return "\n".join(
        [
            head,
            *rows,
            *_more(len(found.matches), MAX_TEXT_ROWS, "matches"),
            _next(result.next_cursor),
        ]
    )


def trace_text(trace: PathTrace) -> str:
    state = "present" if trace.exists else "absent from the final filesystem"
    lines = [f"{printable(trace.path)} in {trace.reference}: {state}"]
    for event in trace.events:
        cause = f" by {printable(event.cause)}" if event.cause else ""
        lines.append(
            f"  layer {event.layer}: {event.action} {event.type} "
            f"({human_size(event.size)}){cause}  {_step(event.created_by)}"
        )
    if trace.readable_layers:
        lines.append(f"readable with read_file layer={trace.readable_layers}")
    return "\n".join(lines)


def removed_text(result: RemovedPage) -> str:
    report = result.removed
    head = (
        f"{result.total_files} removed files still shipped in {report.reference}, "
        f"{human_size(report.total_size)}"
    )
    rows = [
        f"  {human_size(f.size):>10}  {printable(f.path)}  layer {f.layer}, "
        f"{f.action} in layer {f.removed_in}"
        for f in report.files[:MAX_TEXT_ROWS]
    ]
    return "\n".join([head, *rows, _next(result.next_cursor)])


def diff_text(result: DiffPage) -> str:
    diff = result.diff
    head = (
        f"{diff.a} -> {diff.b}: {result.total_added} added, {result.total_removed} removed, "
        f"{result.total_changed} changed, {diff.unchanged} unchanged, "
        f"{len(diff.shared_layers)} shared layers"
    )
    rows = [f"+ {printable(e.path)}" for e in diff.added]
    rows += [f"- {printable(e.path)}" for e in diff.removed]
    rows += [f"~ {printable(c.path)} ({', '.join(c.fields)})" for c in diff.changed]
    shown = rows[:MAX_TEXT_ROWS]
    return "\n".join(
        [head, *shown, *_more(len(rows), len(shown), "paths"), _next(result.next_cursor)]
    )


def triage_text(result: TriagePage) -> str:
    report = result.triage
    os_name = printable(report.os.pretty_name) if report.os else "unknown OS"
    user = printable(report.user) or "root"
    lines = [
        f"{report.reference} ({report.platform}): {os_name}; user {user}"
        + (" (runs as root)" if report.runs_as_root else ""),
        f"{result.total_findings} findings; {human_size(report.removed_size)} shipped for "
        "deleted or overwritten files",
    ]
    lines += [
        f"  {f.severity:<6} {f.kind:<15} {printable(f.path)} (layer {f.layer}) "
        f"{printable(f.detail)[:80]}"
        for f in report.findings[:MAX_TEXT_ROWS]
    ]
    return "\n".join([*lines, _next(result.next_cursor)])
