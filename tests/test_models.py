"""EntryInfo.of builds entries without validating them again: the result must be the model
pydantic would have built from the same fields, in every way a caller can see."""

import pydantic
import pytest

from layerpeek.core import unvalidated
from layerpeek.core.fs.overlay import Node
from layerpeek.core.layers.entry import TarEntry
from layerpeek.core.models import EntryInfo, EntryPage

SOURCES = [
    TarEntry("../usr/bin/sh", "symlink", 0, 0o777, 1000, 1000, 1_700_000_000, "busybox"),
    TarEntry("etc/passwd", "file", 1234, 0o644, 0, 0, 1_600_000_000, "", 4096, False),
    Node("opt/app", "dir", 0, 0o755, 0, 0, 0, "", 3, implicit=True),
]


def validated(layer: int, source: TarEntry | Node) -> EntryInfo:
    fields = {name: getattr(source, name) for name in EntryInfo.model_fields if name != "layer"}
    return EntryInfo(layer=layer, **fields)


@pytest.mark.parametrize("source", SOURCES, ids=["tar-symlink", "tar-file", "node"])
def test_of_equals_the_validated_model(source: TarEntry | Node) -> None:
    built, expected = EntryInfo.of(2, source), validated(2, source)

    assert type(built) is EntryInfo
    assert built == expected
    assert built.model_dump() == expected.model_dump()
    assert built.model_dump_json() == expected.model_dump_json()
    assert built.model_fields_set == expected.model_fields_set
    assert built.__pydantic_extra__ == expected.__pydantic_extra__
    assert built.__pydantic_private__ == expected.__pydantic_private__
    page = EntryPage(entries=[built], next_start=None, complete=True)
    assert EntryPage.model_validate_json(page.model_dump_json()).entries == [expected]


def test_entries_built_by_of_do_not_share_state() -> None:
    first, second = EntryInfo.of(0, SOURCES[1]), EntryInfo.of(0, SOURCES[1])
    first.path = "etc/shadow"

    assert second.path == "etc/passwd"
    assert first.model_copy(update={"size": 1}).size == 1
    assert second.model_fields_set == validated(0, SOURCES[1]).model_fields_set


def test_pydantic_still_declares_the_slots_entry_models_are_built_in() -> None:
    assert unvalidated.slots_known(EntryInfo), (
        f"pydantic {pydantic.VERSION} gives BaseModel the slots "
        f"{sorted(pydantic.BaseModel.__slots__)}, not {sorted(unvalidated.INSTANCE_SLOTS)}: "
        "EntryInfo.of falls back to the slower model_construct; adapt core/unvalidated.py"
    )


@pytest.mark.parametrize("direct", [True, False], ids=["slots", "model_construct"])
def test_either_way_of_building_gives_the_validated_model(direct: bool) -> None:
    build = unvalidated.model_builder(EntryInfo, direct=direct)
    fields = {name: getattr(SOURCES[1], name) for name in EntryInfo.model_fields if name != "layer"}
    built, expected = build({"layer": 1, **fields}), validated(1, SOURCES[1])

    assert type(built) is EntryInfo
    assert built == expected
    assert built.model_dump_json() == expected.model_dump_json()
    assert built.model_fields_set == expected.model_fields_set
    assert built.__pydantic_extra__ == expected.__pydantic_extra__
    assert built.__pydantic_private__ == expected.__pydantic_private__
