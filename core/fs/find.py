"""What ``find`` looks for: a path pattern (glob or regex), entry types and a size range.

Parsed once from user input into a :class:`FindSpec`, so every front end validates the same
way and a bad pattern or size is one clear error before any layer is read.

Patterns come from anyone who can call a front end and run against paths an image's author
chose, so they are capped (``MAX_PATTERN`` characters) and matched by RE2, whose time is
linear in the path whatever the pattern: a backtracking engine takes exponential time on
``^(.+)+\\x00`` and holds the event loop meanwhile. Globs are translated to RE2 too (the
stdlib's translation is a backtracking regex). RE2 has no backreferences or lookaround; a
pattern that uses them is refused by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, get_args

from layerpeek.core.errors import LayerpeekError
from layerpeek.core.layers.entry import EntryType

if TYPE_CHECKING:
    import re2

TYPES = frozenset(get_args(EntryType))
MAX_PATTERN = 1024
"""Longest pattern accepted, in characters: paths are at most 4 KiB (PATH_MAX), and a
pattern longer than a page of text is no query anyone types."""

_NOTHING = r"[^\x{0}-\x{10ffff}]"  # a class with no member: matches nothing
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)
# What RE2 refuses that Python's re knows, by the text that gives it away.
_UNSUPPORTED = (
    (re.compile(r"\(\?P="), "a named backreference (?P=name)"),
    (re.compile(r"\\[1-9]"), "a backreference (\\1 to \\9)"),
    (re.compile(r"\(\?<[=!]"), "lookbehind ((?<= or (?<!)"),
    (re.compile(r"\(\?[=!]"), "lookahead ((?= or (?!)"),
    (re.compile(r"\(\?>"), "an atomic group (?>...)"),
    (re.compile(r"[*+?}]\+"), "a possessive quantifier (*+, ++, ?+)"),
    (re.compile(r"\\Z"), "\\Z (write \\z or $)"),
)


def parse_size(text: str | int | None) -> int | None:
    """``"1.5M"``, ``"10KiB"``, ``"200"`` → bytes (binary units, like ``human_size``)."""
    if text is None or isinstance(text, int):
        return text
    match = _SIZE.fullmatch(text)
    if match is None:
        raise LayerpeekError(f"invalid size {text!r}: use bytes or a unit, e.g. 512, 10K, 1.5M")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


@dataclass(frozen=True)
class FindSpec:
    """A compiled query. Globs match the full path or the basename (``*.pem`` finds keys in
    any directory, ``etc/*.conf`` only there); a regex is searched in the full path."""

    pattern: str
    regex: bool = False
    types: frozenset[str] = frozenset()
    min_size: int | None = None
    max_size: int | None = None
    _matcher: re2._Regexp = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_matcher", _matcher(self.pattern, self.regex))

    @classmethod
    def parse(
        cls,
        pattern: str,
        regex: bool = False,
        types: list[str] | None = None,
        min_size: str | int | None = None,
        max_size: str | int | None = None,
    ) -> FindSpec:
        unknown = sorted(set(types or ()) - TYPES)
        if unknown:
            raise LayerpeekError(
                f"unknown type {', '.join(unknown)}: use one of {', '.join(sorted(TYPES))}"
            )
        _check_length(pattern)
        return cls(
            pattern.lstrip("/") if not regex else pattern,
            regex,
            frozenset(types or ()),
            parse_size(min_size),
            parse_size(max_size),
        )

    def matches(self, path: str, type: str, size: int) -> bool:
        if self.types and type not in self.types:
            return False
        if self.min_size is not None and size < self.min_size:
            return False
        if self.max_size is not None and size > self.max_size:
            return False
        return self.matches_path(path)

    def matches_path(self, path: str) -> bool:
        """Time linear in ``path`` for any pattern."""
        try:
            return self._matches(path)
        except UnicodeEncodeError:  # undecodable bytes, kept as surrogate escapes
            return self._matches(_utf8(path))

    def _matches(self, path: str) -> bool:
        if self.regex:
            return self._matcher.search(path) is not None
        return self._matcher.fullmatch(path) is not None


def _check_length(pattern: str) -> None:
    if len(pattern) > MAX_PATTERN:
        raise LayerpeekError(
            f"pattern is {len(pattern)} characters long; the limit is {MAX_PATTERN}"
        )


def _utf8(text: str) -> str:
    """``text`` with each surrogate escape as U+FFFD: what RE2 (UTF-8 only) can read."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _matcher(pattern: str, regex: bool) -> re2._Regexp:
    """The RE2 program for a regex or a glob; a clear error for what RE2 cannot run.

    RE2 loads with the first pattern: a command line offers ``find``'s options without it."""
    import re2

    _check_length(pattern)
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern on stderr
    options.never_capture = True  # only "does it match": the DFA alone answers, far faster
    source = _utf8(pattern) if regex else _path_or_basename(_utf8(pattern))
    try:
        return re2.compile(source, options=options)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args else "not accepted"
        if not regex:
            raise LayerpeekError(f"invalid glob {pattern!r}: {reason}") from None
        for sign, feature in _UNSUPPORTED:
            if sign.search(pattern):
                raise LayerpeekError(
                    f"regular expression {pattern!r} uses {feature}, which the linear-time "
                    "matcher does not support"
                ) from None
        raise LayerpeekError(f"invalid regular expression {pattern!r}: {reason}") from None


def _path_or_basename(glob: str) -> str:
    """One regex for "the glob matches the full path or the basename", so each path costs
    one match: the basename branch is the glob with no wildcard crossing ``/``, after the
    last ``/`` (or the whole path when it has none)."""
    return f"{glob_regex(glob)}|(?:(?s:.*)/)?{glob_regex(glob, segment=True)}"


def glob_regex(glob: str, segment: bool = False) -> str:
    """An RE2 regex that fully matches what ``fnmatch.fnmatchcase`` matches: ``*`` any run of
    characters (``/`` included), ``?`` one, ``[...]``/``[!...]`` a class with ranges, an
    unclosed ``[`` itself; everything else literally. ``segment``: no wildcard or class
    matches ``/`` (the glob applied to one path segment)."""
    star, one = (r"[^/]*", r"[^/]") if segment else (".*", ".")
    out, i, n = ["(?s:"], 0, len(glob)
    while i < n:
        char, i = glob[i], i + 1
        if char == "*":
            if out[-1] != star:
                out.append(star)
        elif char == "?":
            out.append(one)
        elif char == "[" and (end := _class_end(glob, i)) >= 0:
            out.append(_class(glob[i:end], segment))
            i = end + 1
        elif char == "/" and segment:
            out.append(_NOTHING)  # a segment holds no "/": this branch cannot match
        else:
            out.append(_literal(char))
    out.append(")")
    return "".join(out)


def _class_end(glob: str, start: int) -> int:
    """Index of the ``]`` closing a class opened before ``start``; -1 when none does (a ``]``
    right after ``[`` or ``[!`` is a member, not the end)."""
    j = start
    if j < len(glob) and glob[j] == "!":
        j += 1
    if j < len(glob) and glob[j] == "]":
        j += 1
    end = glob.find("]", j)
    return end


def _class(body: str, segment: bool) -> str:
    """A glob class body (without brackets) as an RE2 class; reversed ranges match nothing,
    as in fnmatch. ``segment``: ``/`` is never a member."""
    negate = body.startswith("!")
    if negate:
        body = body[1:]
    ranges, k = [], 0
    while k < len(body):
        if k + 2 < len(body) and body[k + 1] == "-":
            ranges.append((body[k], body[k + 2]))
            k += 3
        else:
            ranges.append((body[k], body[k]))
            k += 1
    if segment and negate:
        ranges.append(("/", "/"))
    elif segment:
        ranges = [part for low, high in ranges for part in _without_slash(low, high)]
    items = [_range(low, high) for low, high in ranges if low <= high]
    if not items:
        return "." if negate else _NOTHING
    return f"[{'^' if negate else ''}{''.join(items)}]"


def _without_slash(low: str, high: str) -> list[tuple[str, str]]:
    """The range ``low``-``high`` less ``/`` (one or two ranges, maybe empty ones)."""
    if not low <= "/" <= high:
        return [(low, high)]
    return [(low, "."), ("0", high)]


def _range(low: str, high: str) -> str:
    return _literal(low) if low == high else f"{_literal(low)}-{_literal(high)}"


def _literal(char: str) -> str:
    """One character as RE2 reads it literally, in or out of a class."""
    return char if char.isascii() and char.isalnum() else f"\\x{{{ord(char):x}}}"
