"""What ``find`` looks for: a path pattern (glob or regex), entry types and a size range.

Parsed once from user input into a :class:`FindSpec`, so every front end validates the same
way and a bad pattern or size is one clear error before any layer is read.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from .errors import LayerpeekError

TYPES = frozenset(
    {"file", "dir", "symlink", "hardlink", "char", "block", "fifo", "whiteout", "opaque"}
)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)


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
        if regex:
            _compile(pattern)
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
        if self.regex:
            return _compile(self.pattern).search(path) is not None
        basename = path.rpartition("/")[2]
        return fnmatch.fnmatchcase(path, self.pattern) or fnmatch.fnmatchcase(
            basename, self.pattern
        )


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise LayerpeekError(f"invalid regular expression {pattern!r}: {exc}") from None
