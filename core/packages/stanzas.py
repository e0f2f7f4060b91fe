"""Paragraphs of ``Key: value`` fields separated by blank lines (deb822), as dpkg's status
file and distroless's ``status.d`` files hold them."""

from __future__ import annotations

from collections.abc import Iterator


def paragraphs(text: str, wanted: frozenset[str]) -> Iterator[dict[str, str]]:
    """Each paragraph's ``wanted`` fields (continuation lines, which start with a space or
    a tab, are skipped: no wanted field has them)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields = {}
            continue
        if line[0] in " \t":
            continue
        key, sep, value = line.partition(":")
        if sep and key in wanted:
            fields[key] = value.strip()
    if fields:
        yield fields
