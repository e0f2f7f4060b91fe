"""Rendering untrusted strings (file names, build steps, labels) safely for a terminal or chat.

Image contents are written by whoever built the image: a name can hold a newline, an ANSI
escape that repaints the terminal, or bytes that are not UTF-8. We show such characters as
visible escapes instead of dropping them, so the reader sees that something odd is there.
:func:`printable` is the one escaping function for terminals (the CLI) and MCP text; Discord's
markdown needs more, and ``bot.render.untrusted`` builds on it.
"""

from __future__ import annotations

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    # Beyond the BMP (tag characters can spell hidden text): Python's eight-digit form.
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with control, format and undecodable characters shown as escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


STEP_WIDTH = 80
"""Characters of a build step (or a command line) that a one-line summary shows: a table row,
a listing's header, a text answer. The whole step stays in JSON and structured output."""


def clip(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, a cut marked with an ellipsis."""
    return text if len(text) <= width else text[: width - 1] + "…"


def one_line(text: str, width: int = STEP_WIDTH) -> str:
    """An untrusted build step or command line for one line of terminal or MCP text: escaped
    (:func:`printable`, so it stays one line), cut to ``width``; "-" when there is none."""
    return clip(printable(text), width) or "-"


def command_line(words: list[str] | None) -> str:
    """An entrypoint or cmd as one would type it; "-" when the config sets none."""
    return " ".join(words) if words else "-"


def user_or_root(user: str | None) -> str:
    """The user a config runs as: an unset or empty User means root, as for every runtime."""
    return user or "root"


def counted(count: int, noun: str, plural: str = "") -> str:
    """``1 layer``, ``2 layers``: a count with its noun, singular for one (every front end)."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def human_size(size: int) -> str:
    """1536 → '1.5 KiB': binary units, as `ls -h` and registries' UIs show them."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def short_digest(digest: str) -> str:
    """``sha256:0123456789ab…`` → ``sha256:0123456789ab``: 12 hex digits, as docker shows."""
    algorithm, _, hexdigits = digest.partition(":")
    return f"{algorithm}:{hexdigits[:12]}" if hexdigits else digest


_TYPE_MARKS = {"dir": "/", "symlink": "@", "fifo": "|", "char": "%", "block": "#"}


CUT_MARK = "  (name cut at 4096 bytes)"


def marked_name(path: str, type: str, link: str = "", cut: bool = False) -> str:
    """A listing's name column: ``ls -F`` type marks, ``-> target`` for links, whiteouts
    labelled, a name the scanner cut said to be; untrusted characters escaped."""
    name = printable(path) + _TYPE_MARKS.get(type, "")
    if type in ("symlink", "hardlink"):
        name = f"{name} -> {printable(link)}"
    elif type in ("whiteout", "opaque"):
        name = f"{name}  ({type})"
    return name + CUT_MARK if cut else name
