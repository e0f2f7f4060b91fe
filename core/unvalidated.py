"""Pydantic models built from fields already known to be valid, without validating them again.

A listing builds one model per entry, from fields that come typed from the tar scanner or the
merged view; validating them again costs more than the listing around them. Pydantic's public
``model_construct`` skips validation too, but being general (defaults, aliases, extras) it
builds each model markedly slower. So ``model_builder`` does what it does for a model whose
every field is given: it fills the four instance slots pydantic's ``BaseModel`` declares
(``INSTANCE_SLOTS``), which are pydantic internals. When pydantic declares other slots, or
the model has private attributes or extra fields, it falls back to ``model_construct``;
tests/test_models.py fails, saying so, when that happens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

INSTANCE_SLOTS = frozenset(
    {"__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__"}
)
"""What a pydantic 2 ``BaseModel`` instance holds, as ``model_construct`` fills it."""

_new_object = object.__new__
_set_attribute = object.__setattr__


def slots_known(model: type[BaseModel]) -> bool:
    """Whether ``model``'s instances are what this module writes: ``INSTANCE_SLOTS``, no
    private attributes, no extra fields."""
    return (
        frozenset(BaseModel.__slots__) == INSTANCE_SLOTS
        and not model.__private_attributes__
        and model.model_config.get("extra") != "allow"
    )


def model_builder(model: type[M], *, direct: bool | None = None) -> Callable[[dict[str, Any]], M]:
    """A function building a ``model`` from a dict of all its fields, none validated.

    The dict becomes the model's own: pass a new one each time. ``direct`` chooses the way
    (filling the slots, or ``model_construct``); by default the slots when ``slots_known``.
    """
    fields = frozenset(model.model_fields)
    if direct is None:
        direct = slots_known(model)
    if not direct:
        return lambda values: model.model_construct(set(fields), **values)

    def build(values: dict[str, Any]) -> M:
        built = _new_object(model)
        _set_attribute(built, "__dict__", values)
        _set_attribute(built, "__pydantic_fields_set__", set(fields))
        _set_attribute(built, "__pydantic_extra__", None)
        _set_attribute(built, "__pydantic_private__", None)
        return built

    return build
