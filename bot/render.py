"""Core answers → discord.Embed objects: the page data, apart from the buttons that navigate it.

Pure functions, no I/O. Every string from an image (names, build steps, tags) goes through
printable() and is clipped, and each embed is built against a character budget so the whole
message stays inside Discord's limits (discord_limits) however big or hostile the image is.
"""

from __future__ import annotations

import discord

from layerpeek.core.models import (
    DiffReport,
    EntryInfo,
    EntryPage,
    FindResult,
    ImageReport,
    TriageReport,
)
from layerpeek.core.text import human_size, printable, short_digest

from . import discord_limits as limits

COLOUR = discord.Colour.blurple()
CHART_NAME = "layers.png"
# Two embeds share one message's 6000 characters: the image summary and the listing page.
SUMMARY_BUDGET = 2600
LISTING_BUDGET = 3000
LINE = 110  # characters per listed line; longer names are clipped with an ellipsis
TYPE_MARK = {
    "file": "-",
    "dir": "d",
    "symlink": "l",
    "hardlink": "h",
    "char": "c",
    "block": "b",
    "fifo": "p",
    "whiteout": "w",
    "opaque": "o",
}


def safe(text: str, limit: int) -> str:
    """An untrusted string shown inline: escapes, no markdown, clipped."""
    return limits.clip(discord.utils.escape_markdown(printable(text)), limit)


def inline(text: str, limit: int) -> str:
    """An untrusted string as inline code: markdown is not parsed there, so only a backtick
    (which would end the span) is swapped for a look-alike."""
    return "`" + limits.clip(printable(text).replace("`", "\u02cb"), limit) + "`"


def _code(text: str) -> str:
    """Text for a ``` block; a name holding ``` must not close the block early."""
    return printable(text).replace("```", "`\u200b``")


def _lines_within(lines: list[str], budget: int, more: str) -> str:
    """As many lines as fit in ``budget``, then a note of how many were left out."""
    kept: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        note = more.format(len(lines) - i)
        if used + len(line) + 1 + len(note) + 1 > budget:
            return "\n".join([*kept, note])
        kept.append(line)
        used += len(line) + 1
    return "\n".join(kept)


def layer_label(index: int, created_by: str, size: int, limit: int = 100) -> str:
    """``#3 12.1 MiB RUN apt-get …``: how a layer is named in selects and lists."""
    step = printable(created_by) or "(no build step recorded)"
    return limits.clip(f"#{index} {human_size(size)} {step}", limit)


def _config_line(report: ImageReport) -> str:
    config = report.config
    command = [*(config.entrypoint or []), *(config.cmd or [])]
    parts = [f"user {inline(config.user or 'root', 60)}"]
    if command:
        parts.append(f"runs {inline(' '.join(command), 200)}")
    return " · ".join(parts)


def summary_embed(report: ImageReport, chart: bool) -> discord.Embed:
    """The image at a glance: digest, platform(s), config, and each layer with its step."""
    total = sum(layer.size for layer in report.layers)
    head = [
        f"**digest** `{report.digest}`",
        f"**platform** {report.platform} (of {len(report.platforms)}: "
        f"{limits.clip(', '.join(report.platforms), 300)})",
        f"**{len(report.layers)} layers**, {human_size(total)} compressed · {_config_line(report)}",
        "",
    ]
    layers = [
        f"`#{layer.index:<2}` {human_size(layer.size):>9} {safe(layer.created_by or '-', 90)}"
        for layer in report.layers
    ]
    budget = SUMMARY_BUDGET - 300 - sum(len(line) + 1 for line in head)
    description = "\n".join(head) + _lines_within(layers, budget, "… {} more layers")
    embed = discord.Embed(
        title=limits.clip(printable(report.reference), limits.EMBED_TITLE),
        description=description,
        colour=COLOUR,
    )
    if chart:
        embed.set_image(url=f"attachment://{CHART_NAME}")
    return embed


def _entry_line(entry: EntryInfo) -> str:
    mark = TYPE_MARK.get(entry.type, "?")
    link = f" -> {entry.link}" if entry.link else ""
    size = human_size(entry.size) if entry.type == "file" else ""
    return limits.clip(f"{mark} {size:>9}  {_code(entry.path + link)}", LINE)


def listing_embed(
    page: EntryPage, where: str, number: int, last: int | None, per_layer: bool
) -> discord.Embed:
    """One page of a listing as a code block; ``last`` is the last page number once known.
    ``per_layer`` listings say which layer each entry is in."""
    lines = [_entry_line(e) for e in page.entries]
    if per_layer:
        lines = [f"[{e.layer}] {line}" for e, line in zip(page.entries, lines, strict=True)]
    body = _lines_within(lines, LISTING_BUDGET - 200, "… {} more entries on this page")
    of = f" of {last + 1}" if last is not None else ("" if page.complete else "+")
    embed = discord.Embed(
        title=limits.clip(f"Files in {where}: page {number + 1}{of}", 256),
        description=f"```\n{body or '(no entries)'}\n```",
        colour=COLOUR,
    )
    embed.set_footer(text="d dir · - file · l symlink · h hard link · w whiteout · o opaque dir")
    return embed


def history_embed(report: ImageReport) -> discord.Embed:
    """The build steps in order; the ones that made a layer say which."""
    lines = [
        f"`{'#' + str(step.layer) if step.layer is not None else 'empty':>5}` "
        f"{safe(step.created_by or '-', 300)}"
        for step in report.history
    ]
    body = _lines_within(lines, limits.EMBED_DESCRIPTION - 100, "… {} more steps")
    return discord.Embed(
        title=limits.clip(f"History of {printable(report.reference)}", limits.EMBED_TITLE),
        description=body or "(this image records no history)",
        colour=COLOUR,
    ).set_footer(text=f"{report.platform} · {short_digest(report.manifest_digest)}")


def tags_embed(repository: str, tags: list[str]) -> discord.Embed:
    lines = [inline(tag, 128) for tag in tags]
    body = _lines_within(lines, limits.EMBED_DESCRIPTION - 100, "… and {} more")
    return discord.Embed(
        title=limits.clip(f"{len(tags)} tags of {printable(repository)}", limits.EMBED_TITLE),
        description=body or "(no tags)",
        colour=COLOUR,
    )


def _preview(data: bytes) -> str:
    """A text preview if the bytes are text, else a hex dump of the first bytes."""
    if b"\0" not in data[:8192]:
        try:
            return _code(data.decode())
        except UnicodeDecodeError:
            pass
    return " ".join(f"{b:02x}" for b in data[:512])


def cat_embed(
    reference: str, path: str, layer: int | None, data: bytes, complete: bool
) -> discord.Embed:
    """The start of a file: what fits in one embed, and how much there is."""
    preview = limits.clip(_preview(data), limits.EMBED_DESCRIPTION - 200)
    size = human_size(len(data)) if complete else f"more than {human_size(len(data))}"
    seen = "as the image sees it" if layer is None else f"as layer {layer} ships it"
    return discord.Embed(
        title=limits.clip(f"{printable(path)} ({size})", limits.EMBED_TITLE),
        description=f"```\n{preview}\n```",
        colour=COLOUR,
    ).set_footer(text=limits.clip(f"{printable(reference)} · {seen}", 300))


# -- find, diff, triage -----------------------------------------------------------------------


def find_embed(result: FindResult) -> discord.Embed:
    """The first matches (merged view or per layer) and how many there are in all."""
    lines = [
        f"[{m.layer}] {_entry_line(m)}{' (' + m.history[-1].action + ')' if m.history else ''}"
        for m in result.matches
    ]
    body = _lines_within(lines, LISTING_BUDGET, "… {} more matches on this page")
    shown = len(result.matches)
    more = (
        f"; showing the first {shown}, narrow the pattern for the rest" if result.next_start else ""
    )
    view = "the merged filesystem" if result.merged else "every layer"
    return discord.Embed(
        title=limits.clip(f"{result.total} matches for {printable(result.pattern)}", 256),
        description=f"```\n{body or '(nothing matches)'}\n```",
        colour=COLOUR,
    ).set_footer(text=limits.clip(f"{printable(result.reference)} · in {view}{more}", 500))


def _paths(entries: list[EntryInfo], mark: str) -> list[str]:
    return [f"{mark} {_code(e.path)}" for e in entries]


def diff_embed(report: DiffReport) -> discord.Embed:
    """Counts first (they fit whatever the size), then as many paths as fit."""
    head = (
        f"**{len(report.added)}** added · **{len(report.removed)}** removed · "
        f"**{len(report.changed)}** changed · {report.unchanged} unchanged · "
        f"{len(report.shared_layers)} shared layers"
    )
    changed = [f"~ {_code(c.path)} ({', '.join(c.fields)})" for c in report.changed]
    lines = [*_paths(report.added, "+"), *_paths(report.removed, "-"), *changed]
    lines = [limits.clip(line, LINE) for line in lines]
    body = _lines_within(lines, limits.EMBED_DESCRIPTION - 400, "… {} more paths")
    return discord.Embed(
        title=limits.clip(f"{printable(report.a)} → {printable(report.b)}", 256),
        description=f"{head}\n```diff\n{body or '(no differences)'}\n```",
        colour=COLOUR,
    ).set_footer(text=f"{short_digest(report.a_digest)} → {short_digest(report.b_digest)}")


def triage_embed(report: TriageReport) -> discord.Embed:
    """Facts, then findings by severity, then the largest files, within the budget."""
    os_name = report.os.pretty_name if report.os else "unknown OS"
    user = report.user or "root"
    facts = (
        f"**user** {inline(user, 60)}{' (runs as root)' if report.runs_as_root else ''} · "
        f"**OS** {safe(os_name, 100)} · **{human_size(report.removed_size)}** shipped in "
        "deleted or overwritten files"
    )
    findings = [
        f"**{f.severity}** {f.kind} {inline(f.path, 120)} (layer {f.layer}) {safe(f.detail, 120)}"
        for f in report.findings
    ]
    largest = [f"{human_size(e.size):>9} {inline(e.path, 120)}" for e in report.largest]
    embed = discord.Embed(
        title=limits.clip(f"Triage of {printable(report.reference)}", 256),
        description=facts
        + "\n\n"
        + (_lines_within(findings, 3000, "… {} more findings") or "no findings"),
        colour=COLOUR,
    )
    if largest:
        embed.add_field(
            name="Largest files", value=_lines_within(largest, limits.FIELD_VALUE, "… {} more")
        )
    return embed.set_footer(text=f"{report.platform} · {short_digest(report.digest)}")
