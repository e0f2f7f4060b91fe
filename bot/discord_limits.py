"""Discord's message limits, and a checker for message payloads.

Discord enforces these server-side and answers 400 when one is exceeded; discord.py checks
only a few of them (≤ 10 embeds, 5 rows, 25 children), so renderers clip text with
:func:`clip` and tests (and the preview command) run every payload through :func:`violations`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

CONTENT = 2000
EMBEDS = 10
EMBED_TITLE = 256
EMBED_DESCRIPTION = 4096
EMBED_FIELDS = 25
FIELD_NAME = 256
FIELD_VALUE = 1024
FOOTER = 2048
AUTHOR_NAME = 256
EMBED_TOTAL = 6000  # across every embed of one message
CUSTOM_ID = 100
BUTTON_LABEL = 80
LINK_URL = 512
SELECT_OPTIONS = 25
OPTION_LABEL = 100
OPTION_VALUE = 100
OPTION_DESCRIPTION = 100
PLACEHOLDER = 150
ROWS = 5
ROW_BUTTONS = 5
CHOICES = 25  # autocomplete answers
CHOICE_NAME = 100
COMMAND_DESCRIPTION = 100


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis, so the cut is visible."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _over(where: str, value: str | None, limit: int) -> Iterator[str]:
    if value is not None and len(value) > limit:
        yield f"{where}: {len(value)} characters > {limit}"


def _embed(i: int, embed: dict[str, Any]) -> Iterator[str]:
    where = f"embeds[{i}]"
    yield from _over(f"{where}.title", embed.get("title"), EMBED_TITLE)
    yield from _over(f"{where}.description", embed.get("description"), EMBED_DESCRIPTION)
    yield from _over(f"{where}.footer", embed.get("footer", {}).get("text"), FOOTER)
    yield from _over(f"{where}.author", embed.get("author", {}).get("name"), AUTHOR_NAME)
    fields = embed.get("fields", [])
    if len(fields) > EMBED_FIELDS:
        yield f"{where}: {len(fields)} fields > {EMBED_FIELDS}"
    for j, field in enumerate(fields):
        yield from _over(f"{where}.fields[{j}].name", field.get("name"), FIELD_NAME)
        yield from _over(f"{where}.fields[{j}].value", field.get("value"), FIELD_VALUE)
        if not field.get("name") or not field.get("value"):
            yield f"{where}.fields[{j}]: name and value must not be empty"
    for key in ("url", "image", "thumbnail"):
        url = embed.get(key) if key == "url" else embed.get(key, {}).get("url")
        yield from _over(f"{where}.{key}", url, LINK_URL)


def embed_length(embed: dict[str, Any]) -> int:
    """What Discord counts towards the 6000: title, description, fields, footer, author."""
    total = len(embed.get("title") or "") + len(embed.get("description") or "")
    total += len(embed.get("footer", {}).get("text") or "")
    total += len(embed.get("author", {}).get("name") or "")
    return total + sum(
        len(f.get("name", "")) + len(f.get("value", "")) for f in embed.get("fields", [])
    )


def _component(where: str, item: dict[str, Any]) -> Iterator[str]:
    yield from _over(f"{where}.custom_id", item.get("custom_id"), CUSTOM_ID)
    yield from _over(f"{where}.label", item.get("label"), BUTTON_LABEL)
    yield from _over(f"{where}.url", item.get("url"), LINK_URL)
    yield from _over(f"{where}.placeholder", item.get("placeholder"), PLACEHOLDER)
    options = item.get("options", [])
    if len(options) > SELECT_OPTIONS:
        yield f"{where}: {len(options)} options > {SELECT_OPTIONS}"
    for k, option in enumerate(options):
        yield from _over(f"{where}.options[{k}].label", option.get("label"), OPTION_LABEL)
        yield from _over(f"{where}.options[{k}].value", option.get("value"), OPTION_VALUE)
        yield from _over(
            f"{where}.options[{k}].description", option.get("description"), OPTION_DESCRIPTION
        )


def _components(rows: list[dict[str, Any]]) -> Iterator[str]:
    if len(rows) > ROWS:
        yield f"components: {len(rows)} rows > {ROWS}"
    ids = []
    for i, row in enumerate(rows):
        children = row.get("components", [])
        if len(children) > ROW_BUTTONS:
            yield f"components[{i}]: {len(children)} items > {ROW_BUTTONS}"
        for j, item in enumerate(children):
            yield from _component(f"components[{i}][{j}]", item)
            ids += [item["custom_id"]] if "custom_id" in item else []
    if len(ids) != len(set(ids)):
        yield "components: custom_ids are not unique"


def violations(payload: dict[str, Any]) -> list[str]:
    """Every limit a message payload (as discord.py would send it) breaks; empty if none."""
    found = list(_over("content", payload.get("content"), CONTENT))
    embeds = payload.get("embeds", [])
    if len(embeds) > EMBEDS:
        found.append(f"embeds: {len(embeds)} > {EMBEDS}")
    for i, embed in enumerate(embeds):
        found.extend(_embed(i, embed))
    total = sum(embed_length(e) for e in embeds)
    if total > EMBED_TOTAL:
        found.append(f"embeds: {total} characters in total > {EMBED_TOTAL}")
    found.extend(_components(payload.get("components", [])))
    return found
