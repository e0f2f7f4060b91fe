"""Core answers → discord.Embed objects: the page data, apart from the buttons that navigate it.

Pure functions, no I/O. Every string from an image or a registry (names, build steps, tags,
digests, platforms, error messages) goes through :func:`untrusted`, the one way such text enters
a message, and each embed is built against a character budget so the whole message stays
inside Discord's limits (discord_limits) however big or hostile the image is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

import discord

from layerpeek.bot import discord_limits as limits
from layerpeek.core.models import (
    DiffReport,
    EntryInfo,
    EntryPage,
    FindResult,
    ImageReport,
    LayerProblem,
    TriageReport,
)
from layerpeek.core.text import (
    CUT_MARK,
    STEP_WIDTH,
    counted,
    human_size,
    printable,
    short_digest,
    user_or_root,
)

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


# The characters Discord's markdown is made of: emphasis, code and spoilers (* _ ~ ` |),
# headings, subtext, lists and quotes (# - + >), masked links ([ ] ( )), mentions, channels,
# emoji and timestamps (< @), and the "scheme:" an autolink starts with (:). Discord takes a
# backslash before any of them as "this character is text"; the backslash itself is one too.
_MARKDOWN = re.compile(r"([\\*_~`|#+\->\[\]()<@:])")
LOOKALIKE_BACKTICK = "\u02cb"

Context = Literal["markdown", "code", "plain"]


def untrusted(text: str, limit: int, context: Context = "markdown") -> str:
    """A string from an image or a registry, made inert for where Discord shows it, in at most
    ``limit`` characters (a cut is marked with an ellipsis).

    Control, format and undecodable characters become visible escapes first
    (:func:`~layerpeek.core.text.printable`: no newline can start a heading or a quote). Then,
    by ``context``:

    - ``markdown`` (embed titles and descriptions, field values, message content): every
      character of markdown syntax is backslash-escaped, so no link, masked link, mention,
      heading or formatting survives, whatever the brackets (``[ [Claim](https://…)``
      included);
    - ``code`` (inside an inline code span or a code block, where Discord parses no markdown):
      a backtick, the one character that could end the span, becomes a look-alike;
    - ``plain`` (footers, select options, button labels, autocomplete names: shown literally).
    """
    shown = printable(text[: limit + 1])  # escaping only lengthens: the rest is never shown
    if context == "markdown":
        return _clip_escaped(_MARKDOWN.sub(r"\\\1", shown), limit)
    if context == "code":
        shown = shown.replace("`", LOOKALIKE_BACKTICK)
    return limits.clip(shown, limit)


def _clip_escaped(text: str, limit: int) -> str:
    """Clip backslash-escaped text without leaving a lone backslash to escape the ellipsis."""
    if len(text) <= limit:
        return text
    kept = text[: limit - 1]
    trailing = len(kept) - len(kept.rstrip("\\"))
    return (kept[:-1] if trailing % 2 else kept) + "…"


WARNINGS_SHOWN = 3
WARNING_CHARS = 400


def warnings(problems: list[LayerProblem]) -> str:
    """A warning line per layer that could not be read to its end (the first few), for the
    top of an answer built from what was read before the damage; empty when there is none."""
    lines = [
        f"⚠️ **Incomplete:** {untrusted(p.describe(), WARNING_CHARS)}"
        for p in problems[:WARNINGS_SHOWN]
    ]
    if len(problems) > WARNINGS_SHOWN:
        lines.append(f"… and {counted(len(problems) - WARNINGS_SHOWN, 'more damaged layer')}")
    return "".join(line + "\n" for line in lines)


def inline(text: str, limit: int) -> str:
    """An untrusted string as inline code."""
    return "`" + untrusted(text, limit, "code") + "`"


def _code(text: str, limit: int = limits.EMBED_DESCRIPTION) -> str:
    """Untrusted text for a ``` block."""
    return untrusted(text, limit, "code")


def code_lines(text: str, limit: int) -> str:
    """Untrusted multi-line text for a ``` block, its line breaks and tabs kept: the rest is
    made inert piece by piece (:func:`untrusted`, so a backtick cannot close the block and
    any other control character shows as an escape). A CRLF ending counts as a line break,
    and the last line's break ends the block rather than leaving an empty line in it."""
    shown = text[: limit + 1].removesuffix("\n")
    lines = [line.removesuffix("\r").split("\t") for line in shown.split("\n")]
    inert = ("\t".join(untrusted(part, limit, "code") for part in line) for line in lines)
    return limits.clip("\n".join(inert), limit)


def more_of(noun: str, plural: str = "", tail: str = "") -> Callable[[int], str]:
    """The note under lines cut short: ``… 1 more layer``, ``… 3 more layers on this page``."""
    return lambda count: (
        f"… {counted(count, 'more ' + noun, 'more ' + (plural or noun + 's'))}{tail}"
    )


def _lines_within(lines: list[str], budget: int, more: Callable[[int], str]) -> str:
    """As many lines as fit in ``budget``, then a note of how many were left out."""
    kept: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        note = more(len(lines) - i)
        if used + len(line) + 1 + len(note) + 1 > budget:
            return "\n".join([*kept, note])
        kept.append(line)
        used += len(line) + 1
    return "\n".join(kept)


def layer_label(index: int, created_by: str, size: int, limit: int = 100) -> str:
    """``#3 12.1 MiB RUN apt-get …``: how a layer is named in selects and lists."""
    step = created_by or "(no build step recorded)"
    return untrusted(f"#{index} {human_size(size)} {step}", limit, "plain")


def _step(created_by: str) -> str:
    """A layer's build step on one line of a summary (``core.text.STEP_WIDTH``)."""
    return untrusted(created_by or "-", STEP_WIDTH)


def _config_line(report: ImageReport) -> str:
    config = report.config
    command = [*(config.entrypoint or []), *(config.cmd or [])]
    parts = [f"user {inline(user_or_root(config.user), 60)}"]
    if command:
        parts.append(f"runs {inline(' '.join(command), 200)}")
    return " · ".join(parts)


def summary_embed(report: ImageReport, chart: bool) -> discord.Embed:
    """The image at a glance: digest, platform(s), config, and each layer with its step."""
    total = sum(layer.size for layer in report.layers)
    head = [
        f"**digest** {inline(report.digest, 140)}",
        f"**platform** {untrusted(report.platform, 100)} (of {len(report.platforms)}: "
        f"{untrusted(', '.join(report.platforms), 300)})",
        f"**{counted(len(report.layers), 'layer')}**, {human_size(total)} compressed · "
        + _config_line(report),
        "",
    ]
    layers = [
        f"`#{layer.index:<2}` {human_size(layer.size):>9} {inline(short_digest(layer.digest), 80)} "
        + _step(layer.created_by)
        for layer in report.layers
    ]
    budget = SUMMARY_BUDGET - 300 - sum(len(line) + 1 for line in head)
    description = "\n".join(head) + _lines_within(layers, budget, more_of("layer"))
    embed = discord.Embed(
        title=untrusted(report.reference, limits.EMBED_TITLE),
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
    cut = CUT_MARK if entry.cut else ""
    return limits.clip(f"{mark} {size:>9}  {_code(entry.path + link)}{cut}", LINE)


def listing_embed(
    page: EntryPage, where: str, number: int, last: int | None, per_layer: bool
) -> discord.Embed:
    """One page of a listing as a code block; ``last`` is the last page number once known.
    ``per_layer`` listings say which layer each entry is in."""
    lines = [_entry_line(e) for e in page.entries]
    if per_layer:
        lines = [f"[{e.layer}] {line}" for e, line in zip(page.entries, lines, strict=True)]
    warned = warnings(page.problems)
    budget = LISTING_BUDGET - 200 - len(warned)
    body = _lines_within(lines, budget, more_of("entry", "entries", " on this page"))
    of = f" of {last + 1}" if last is not None else ("" if page.complete else "+")
    embed = discord.Embed(
        title=limits.clip(f"Files in {where}: page {number + 1}{of}", 256),
        description=f"{warned}```\n{body or '(no entries)'}\n```",
        colour=COLOUR,
    )
    embed.set_footer(text="d dir · - file · l symlink · h hard link · w whiteout · o opaque dir")
    return embed


def history_embed(report: ImageReport) -> discord.Embed:
    """The build steps in order; the ones that made a layer say which."""
    lines = [
        f"`{'#' + str(step.layer) if step.layer is not None else 'empty':>5}` "
        f"{untrusted(step.created_by or '-', 300)}"
        for step in report.history
    ]
    body = _lines_within(lines, limits.EMBED_DESCRIPTION - 100, more_of("step"))
    return discord.Embed(
        title="History of " + untrusted(report.reference, limits.EMBED_TITLE - 11),
        description=body or "(this image records no history)",
        colour=COLOUR,
    ).set_footer(text=_footer(report.platform, report.manifest_digest))


def _footer(platform: str, digest: str) -> str:
    """``linux/amd64 · sha256:0123456789ab``: footers show text literally."""
    return untrusted(f"{platform} · {short_digest(digest)}", 200, "plain")


def tags_embed(repository: str, tags: list[str]) -> discord.Embed:
    lines = [inline(tag, 128) for tag in tags]
    body = _lines_within(lines, limits.EMBED_DESCRIPTION - 100, more_of("tag"))
    return discord.Embed(
        title=f"{counted(len(tags), 'tag')} of " + untrusted(repository, limits.EMBED_TITLE - 20),
        description=body or "(no tags)",
        colour=COLOUR,
    )


def _preview(data: bytes, limit: int) -> str:
    """A text preview if the bytes are text, else a hex dump of the first bytes."""
    if b"\0" not in data[:8192]:
        try:
            return code_lines(data.decode(), limit)
        except UnicodeDecodeError:
            pass
    return limits.clip(" ".join(f"{b:02x}" for b in data[:512]), limit)


def cat_embed(
    reference: str, path: str, layer: int | None, data: bytes, complete: bool
) -> discord.Embed:
    """The start of a file: what fits in one embed, and how much there is."""
    preview = _preview(data, limits.EMBED_DESCRIPTION - 200)
    size = human_size(len(data)) if complete else f"more than {human_size(len(data))}"
    seen = "as the image sees it" if layer is None else f"as layer {layer} ships it"
    return discord.Embed(
        title=untrusted(path, limits.EMBED_TITLE - 40) + f" ({size})",
        description=f"```\n{preview}\n```",
        colour=COLOUR,
    ).set_footer(text=untrusted(f"{reference} · {seen}", 300, "plain"))


# -- find, diff, triage -----------------------------------------------------------------------


def find_embed(result: FindResult, where: str, page: str = "") -> discord.Embed:
    """A page of matches and how many there are in all; ``where`` says what was searched
    (the merged filesystem, every layer, one layer), ``page`` which page this is."""
    lines = [
        f"[{m.layer}] {_entry_line(m)}{' (' + m.history[-1].action + ')' if m.history else ''}"
        for m in result.matches
    ]
    warned = warnings(result.problems)
    body = _lines_within(
        lines, LISTING_BUDGET - len(warned), more_of("match", "matches", " on this page")
    )
    title = f"{counted(result.total, 'match', 'matches')} for "
    return discord.Embed(
        title=title + untrusted(result.pattern, 200) + (f" · {page}" if page else ""),
        description=f"{warned}```\n{body or '(nothing matches)'}\n```",
        colour=COLOUR,
    ).set_footer(text=untrusted(f"{result.reference} · in {where}", 500, "plain"))


def _paths(entries: list[EntryInfo], mark: str) -> list[str]:
    return [f"{mark} {_code(e.path)}" for e in entries]


def diff_embed(report: DiffReport, start: int, size: int, page: str = "") -> discord.Embed:
    """Counts first (they fit whatever the size), then the page of ``size`` paths from
    ``start`` (added, then removed, then changed), as many of them as fit."""
    head = (
        f"**{len(report.added)}** added · **{len(report.removed)}** removed · "
        f"**{len(report.changed)}** changed · {report.unchanged} unchanged · "
        f"{counted(len(report.shared_layers), 'shared layer')}"
    )
    changed = [f"~ {_code(c.path)} ({', '.join(c.fields)})" for c in report.changed]
    digests = short_digest(report.a_digest), short_digest(report.b_digest)
    lines = [*_paths(report.added, "+"), *_paths(report.removed, "-"), *changed]
    lines = [limits.clip(line, LINE) for line in lines[start : start + size]]
    warned = warnings(report.problems)
    budget = limits.EMBED_DESCRIPTION - 400 - len(warned)
    body = _lines_within(lines, budget, more_of("path"))
    return discord.Embed(
        title=f"{untrusted(report.a, 110)} → {untrusted(report.b, 110)}"
        + (f" · {page}" if page else ""),
        description=f"{warned}{head}\n```diff\n{body or '(no differences)'}\n```",
        colour=COLOUR,
    ).set_footer(text=untrusted(f"{digests[0]} → {digests[1]}", 200, "plain"))


def triage_embed(report: TriageReport) -> discord.Embed:
    """Facts, then findings by severity, then the largest files, within the budget."""
    os_name = report.os.pretty_name if report.os else "unknown OS"
    user = user_or_root(report.user)
    facts = (
        f"**user** {inline(user, 60)}{' (runs as root)' if report.runs_as_root else ''} · "
        f"**OS** {untrusted(os_name, 100)} · **{human_size(report.removed_size)}** shipped in "
        "deleted or overwritten files"
    )
    findings = [
        f"**{f.severity}** {f.kind} {inline(f.path, 120)} (layer {f.layer}) "
        f"{untrusted(f.detail, 120)}"
        for f in report.findings
    ]
    largest = [f"{human_size(e.size):>9} {inline(e.path, 120)}" for e in report.largest]
    warned = warnings(report.problems)
    shown = _lines_within(findings, 3000 - len(warned), more_of("finding"))
    embed = discord.Embed(
        title="Triage of " + untrusted(report.reference, 240),
        description=warned + facts + "\n\n" + (shown or "no findings"),
        colour=COLOUR,
    )
    if largest:
        embed.add_field(
            name="Largest files", value=_lines_within(largest, limits.FIELD_VALUE, more_of("file"))
        )
    return embed.set_footer(text=_footer(report.platform, report.digest))
