"""The TOC JSON read as its bytes arrive, one entry at a time (never whole, nor as a tree)."""

from __future__ import annotations

import codecs
import hashlib
import json
import json.scanner
import re
from collections.abc import Iterable, Iterator
from typing import Any

from layerpeek.core.errors import CorruptLayer
from layerpeek.core.layers.entry import LAYER_LIMITS, Limits
from layerpeek.core.layers.toc.checks import digesting
from layerpeek.core.layers.toc.model import Toc, TocBuilder, TocFormat

_NOT_BLANK = re.compile(r"[^ \t\n\r]")  # anything but JSON's whitespace


def parse_toc(
    format: TocFormat, pieces: Iterable[bytes], data_end: int, limits: Limits = LAYER_LIMITS
) -> Toc:
    """Build a ``Toc`` from the TOC JSON of either format (they share the entry schema), read
    from ``pieces`` as they come: the document is never whole in memory, nor as a tree.

    Tens of thousands of entries are megabytes of JSON. Parsed in one call, that holds the
    interpreter lock for tens of milliseconds (the event loop stalls beside the worker
    thread) and keeps every entry's dict alive at once; here each entry is one short call
    and its dict is dropped once it is read. ``data_end`` is where the file data region
    ends (the TOC's own offset): the end of the last chunk when the TOC does not record
    chunk ends. Raises ``CorruptLayer`` for JSON that is not a version 1 TOC or whose chunks
    do not tile their files, and ``LayerTooLarge`` for a TOC that lists more than ``limits``
    allows a layer: a scan of the layer would meet the same entries, so there is nothing to
    fall back to.
    """
    digest = hashlib.sha256()
    builder = TocBuilder(limits._replace(what=f"layer's {format} TOC"))
    for raw in _raw_entries(_JsonText(digesting(pieces, digest), format), format):
        builder.add(raw)
    entries, files = builder.finish(data_end)
    return Toc(format, f"sha256:{digest.hexdigest()}", entries, files)


class _JsonText:
    """JSON text read from byte pieces, one value at a time, through the stdlib's C scanner.

    Only the text not yet parsed is kept. A value cut by the end of the text read so far
    (or a number that might go on) is parsed again once the text after its start has at
    least doubled, so values of any length cost linear time.
    """

    def __init__(self, pieces: Iterable[bytes], format: TocFormat) -> None:
        self._pieces = iter(pieces)
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        # typeshed types the scanner's context as a scanner; it is a decoder, whose hooks
        # (object_hook, parse_float, strict, ...) the C scanner reads.
        self._scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]
        self._format = format
        self._text = ""
        self._at = 0
        self._dropped = 0  # characters before ``_text``, for positions in error messages
        self._ended = False

    def peek(self) -> str:
        """The next character that is not blank, or "" at the end of the document."""
        while True:
            found = _NOT_BLANK.search(self._text, self._at)
            self._at = len(self._text) if found is None else found.start()
            if self._at < len(self._text):
                return self._text[self._at]
            if not self._more():
                return ""

    def take(self, allowed: str) -> str:
        """Consume the next non-blank character, which must be one of ``allowed``."""
        char = self.peek()
        if not char or char not in allowed:
            found = repr(char) if char else "the end"
            raise self.error(f"expected {' or '.join(map(repr, allowed))}, found {found}")
        self._at += 1
        return char

    def value(self) -> Any:
        """Parse the next value (an entry, a key, a number...)."""
        self.peek()
        while True:
            try:
                value, end = self._scan(self._text, self._at)
            except (StopIteration, ValueError, RecursionError):
                value, end = None, -1
            if 0 <= end < len(self._text) or self._ended:
                if end < 0:
                    raise self.error("not a valid value")
                self._at = end
                return value
            wanted = 2 * (len(self._text) - self._at)
            while self._more() and len(self._text) - self._at < wanted:
                pass

    def error(self, what: str) -> CorruptLayer:
        return CorruptLayer(
            f"{self._format} TOC is not JSON ({what} at character {self._dropped + self._at:,})"
        )

    def _more(self) -> bool:
        """Append the next decoded piece, dropping the text already parsed; False at the end."""
        if self._ended:
            return False
        for piece in self._pieces:
            try:
                text = self._utf8.decode(piece)
            except UnicodeDecodeError as error:
                raise self.error(f"not UTF-8: {error.reason}") from None
            if text:
                self._dropped += self._at
                self._text = self._text[self._at :] + text
                self._at = 0
                return True
        try:
            self._utf8.decode(b"", final=True)
        except UnicodeDecodeError as error:
            raise self.error(f"not UTF-8: {error.reason}") from None
        self._ended = True
        return False


def _raw_entries(document: _JsonText, format: TocFormat) -> Iterator[dict[str, Any]]:
    """Each object of the document's ``entries`` list, in order, as it is parsed."""
    not_a_toc = CorruptLayer(f"{format} TOC is not a version 1 TOC with an entries list")
    if document.peek() != "{":
        document.value()  # JSON that is not an object, or not JSON at all: say which
        raise not_a_toc
    document.take("{")
    version, listed = None, False
    more = document.peek() != "}"
    if not more:
        document.take("}")
    while more:
        if document.peek() != '"':
            raise document.error("expected a key")
        key = document.value()
        document.take(":")
        if key != "entries":
            value = document.value()
            version = value if key == "version" else version
        elif listed or version not in (None, 1):
            raise not_a_toc
        else:
            yield from _entry_list(document, format)
            listed = True
        more = document.take(",}") == ","
    if document.peek():
        raise document.error("more text after the TOC")
    if version != 1 or not listed:
        raise not_a_toc


def _entry_list(document: _JsonText, format: TocFormat) -> Iterator[dict[str, Any]]:
    document.take("[")
    if document.peek() == "]":
        document.take("]")
        return
    while True:
        raw = document.value()
        if not isinstance(raw, dict):
            raise CorruptLayer(f"{format} TOC has an entry that is not an object")
        yield raw
        if document.take(",]") == "]":
            return
