"""What ``tools/list`` advertises: compact schemas and clean descriptions.

A client puts the whole tool list before its model on every turn, so each byte of it is paid
for again and again. pydantic's schemas are written for people reading documentation: a title
on every field, each model's docstring beside the field's own description, `anyOf` for every
optional value. The arguments keep what a model acts on: types, bounds, defaults and one
description each. The results keep their shape: every field by name, the objects and lists
it nests. The server still validates each result against its full model before it is sent,
and what passes that passes the compact schema, which only leaves detail out.
"""

from __future__ import annotations

import inspect
from typing import Any

Schema = dict[str, Any]
NULL = {"type": "null"}
DROPPED_INPUT = frozenset({"title"})
DROPPED_OUTPUT = frozenset({"title", "description", "default", "required"})
FIELD_MAPS = frozenset({"properties", "$defs"})
IMPLIED = ("object", "array")
"""Types a nested schema leaves to its ``properties`` or ``items``."""


def description(text: str) -> str:
    """A docstring as one paragraph: no indentation, no hard line breaks."""
    return " ".join(inspect.cleandoc(text).split())


def _nullable(schema: Schema) -> Schema:
    """``anyOf: [{type: T}, {type: null}]`` as ``type: [T, null]``, the same in fewer bytes."""
    options = schema.get("anyOf")
    if not isinstance(options, list) or len(options) != 2 or NULL not in options:
        return schema
    (other,) = [o for o in options if o != NULL]
    if set(other) != {"type"} or not isinstance(other["type"], str):
        return schema
    rest = {k: v for k, v in schema.items() if k != "anyOf"}
    return {**rest, "type": [other["type"], "null"]}


def _strip(node: Any, dropped: frozenset[str]) -> Any:
    """``node`` without the ``dropped`` keywords, at every depth (field names are kept: a
    field called "title" is a property, not the keyword)."""
    if isinstance(node, list):
        return [_strip(item, dropped) for item in node]
    if not isinstance(node, dict):
        return node
    kept: Schema = {}
    for key, value in node.items():
        if key in FIELD_MAPS:
            kept[key] = {name: _strip(sub, dropped) for name, sub in value.items()}
        elif key not in dropped:
            kept[key] = _strip(value, dropped)
    return _nullable(kept)


def _refs(node: Any, counts: dict[str, int]) -> dict[str, int]:
    """How often each ``#/$defs/NAME`` is referred to under ``node``."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            counts[ref] = counts.get(ref, 0) + 1
        for value in node.values():
            _refs(value, counts)
    elif isinstance(node, list):
        for item in node:
            _refs(item, counts)
    return counts


def _inline(node: Any, once: dict[str, Schema]) -> Any:
    """``node`` with each reference to a definition used once replaced by the definition."""
    if isinstance(node, list):
        return [_inline(item, once) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref in once:
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return _inline({**once[ref], **rest}, once)
    return {key: _inline(value, once) for key, value in node.items()}


def _fold_defs(schema: Schema) -> Schema:
    """Definitions used once written in place; those used more stay in ``$defs``."""
    defs: dict[str, Schema] = schema.get("$defs", {})
    counts = _refs(schema, {})
    once = {f"#/$defs/{n}": d for n, d in defs.items() if counts.get(f"#/$defs/{n}", 0) == 1}
    body = _inline({k: v for k, v in schema.items() if k != "$defs"}, once)
    shared = {n: _inline(d, once) for n, d in defs.items() if f"#/$defs/{n}" not in once}
    return {**body, "$defs": shared} if shared else body


def _optional(schema: Schema) -> Schema:
    """An argument that defaults to null, as its type alone: leaving it out says null."""
    if schema.get("default", ...) is not None:
        return schema
    rest = {k: v for k, v in schema.items() if k != "default"}
    kind = rest.get("type")
    if isinstance(kind, list) and "null" in kind:
        others = [t for t in kind if t != "null"]
        rest["type"] = others[0] if len(others) == 1 else others
    options = rest.get("anyOf")
    if isinstance(options, list) and NULL in options:
        others = [o for o in options if o != NULL]
        rest.pop("anyOf")
        rest = {**rest, **others[0]} if len(others) == 1 else {**rest, "anyOf": others}
    return rest


def input_schema(schema: Schema) -> Schema:
    """The arguments' schema, compact; every description and bound kept."""
    compact = _fold_defs(_strip(schema, DROPPED_INPUT))
    properties = {name: _optional(sub) for name, sub in compact["properties"].items()}
    return {**compact, "properties": properties}


def _has_fields(node: Any) -> bool:
    """Whether ``node`` holds an object with named fields (else it is a value: a scalar,
    a list of strings, a map of labels)."""
    if isinstance(node, dict):
        return "properties" in node or "$ref" in node or any(map(_has_fields, node.values()))
    return isinstance(node, list) and any(map(_has_fields, node))


def _named(node: Any) -> Any:
    """Nested fields by name only: a value as ``{}``, objects and lists of them kept (their
    ``type`` left implied by ``properties`` and ``items``)."""
    if isinstance(node, list):
        return [_named(item) for item in node]
    if not isinstance(node, dict):
        return node
    named = {
        key: _named(value)
        for key, value in node.items()
        if key not in FIELD_MAPS and not (key == "type" and value in IMPLIED)
    }
    for key in FIELD_MAPS & set(node):
        fields = node[key].items()
        named[key] = {n: _named(s) if _has_fields(s) else {} for n, s in fields}
    return named


def output_schema(schema: Schema) -> Schema:
    """The result's schema, compact: every field named, with the objects and lists it
    nests; the values' types are left to the names and the text beside. Nothing is marked
    required: every field of every answer is always there."""
    compact = _named(_fold_defs(_strip(schema, DROPPED_OUTPUT)))
    # The top level keeps its type: MCP requires an object schema there.
    return {"type": "object", **compact}
