"""What a /peek listing shows: one layer, every layer in order, or the merged filesystem.

Buttons carry it in their custom_id as one short code (``a``, ``m`` or a layer number).
"""

from __future__ import annotations

from dataclasses import dataclass

PATTERN = r"a|m|\d{1,4}"


@dataclass(frozen=True)
class Scope:
    layer: int | None = None
    merged: bool = False

    @property
    def code(self) -> str:
        if self.merged:
            return "m"
        return "a" if self.layer is None else str(self.layer)

    @classmethod
    def parse(cls, code: str) -> Scope:
        """The scope of a custom_id or select value; ValueError for anything else."""
        if code == "m":
            return cls(merged=True)
        if code == "a":
            return cls()
        if not code.isdigit():
            raise ValueError(f"not a listing scope: {code!r}")
        return cls(layer=int(code))

    def describe(self, layer_count: int) -> str:
        if self.merged:
            return "the merged filesystem"
        return "all layers" if self.layer is None else f"layer {self.layer} of {layer_count}"
