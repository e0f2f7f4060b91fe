"""What every tool shares: the lifespan state, argument types, results, cursors and cuts,
and the limit on the tool calls one caller has running."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, Field

from layerpeek.core.service import Layerpeek
from layerpeek.core.work import Busy, WorkSlots
from layerpeek.links.settings import LinkSettings
from layerpeek.server.cursor import RESTART, CursorCodec
from layerpeek.server.render import text
from layerpeek.server.settings import DEFAULT_CONCURRENT_CALLS

M = TypeVar("M", bound=BaseModel)
STEP_FIELDS = frozenset({"created_by", "removed_by"})
DEFAULT_STEP_CHARS = 200


@dataclass(frozen=True)
class AppState:
    """What the lifespan owns and every tool shares: one core (client and cache) per process."""

    peek: Layerpeek
    cursors: CursorCodec
    links: LinkSettings | None = None
    """Set (and enabled) exactly when download_link is registered."""


AppContext = Context[AppState]
"""The context a tool is given: its lifespan's is the ``AppState`` the server's yields."""


def state(ctx: AppContext) -> AppState:
    return ctx.request_context.lifespan_context


# -- calls running at once -------------------------------------------------------------------


def caller(ctx: ServerRequestContext[Any, Any]) -> str | None:
    """Whom an HTTP request counts against: its bearer token (as a hash: the key outlives
    nothing but the calls, yet need not be the secret), else the client's address. None over
    stdio, where the one client is the person who started the server."""
    request = ctx.request
    if request is None:
        return None
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return "token " + hashlib.sha256(token.encode()).hexdigest()[:16]
    client = getattr(request, "client", None)
    return f"client {client.host}" if client else "client unknown"


class CallLimit:
    """Server middleware: at most ``limit`` tool calls running at once per caller over HTTP.

    One more is refused at once, as a tool error the model can read, rather than queued: a
    caller whose calls wait on slow registries cannot take the workers everyone shares.
    """

    def __init__(self, limit: int = DEFAULT_CONCURRENT_CALLS) -> None:
        self.slots = WorkSlots(limit)

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        key = caller(ctx)
        if ctx.method != "tools/call" or key is None:
            return await call_next(ctx)
        limit = self.slots.limit
        refusal = (
            f"too many calls at once: this {key.split()[0]} already has {limit} tool "
            f"call{'s' if limit > 1 else ''} running; wait for one to finish, then try again "
            "(LAYERPEEK_MCP_CONCURRENT_CALLS)"
        )
        with contextlib.ExitStack() as running:
            try:
                running.enter_context(self.slots.hold(key, refusal))
            except Busy as exc:
                refused = TextContent(type="text", text=text([str(exc)]))
                return CallToolResult(content=[refused], is_error=True)
            return await call_next(ctx)


def result(model: BaseModel, lines: Iterable[str]) -> CallToolResult:
    """Structured content (validated against the tool's output schema, data as it is) plus a
    short text made of ``lines``, escaped line by line (:func:`render.text`)."""
    return CallToolResult(
        content=[TextContent(type="text", text=text(lines))],
        structured_content=model.model_dump(mode="json"),
    )


Reference = Annotated[
    str,
    Field(description="e.g. alpine:3.20 or ghcr.io/org/app@sha256:…"),
]
PlatformArg = Annotated[
    str | None,
    Field(description="e.g. linux/arm64 (default linux/amd64)"),
]
CursorArg = Annotated[
    str | None,
    Field(description="the previous page's next_cursor"),
]


# -- paging ----------------------------------------------------------------------------------


def resume(
    codec: CursorCodec, cursor: str | None, kind: str, query: str, digest: str
) -> dict[str, Any] | None:
    """The position a cursor holds, checked against the image digest the listing has now."""
    if cursor is None:
        return None
    data = codec.decode(cursor, kind, query)
    if data.get("d") != digest:
        raise ToolError(
            f"stale cursor: it was issued for {data.get('d')}, but the reference now resolves "
            f"to {digest} (a tag moved); {RESTART}"
        )
    return data


def onward(codec: CursorCodec, kind: str, query: str, digest: str, start: int | None) -> str | None:
    """The cursor for a page starting at ``start`` (None: there is no next page)."""
    return None if start is None else codec.encode(kind, query, d=digest, s=start)


# -- long build steps ------------------------------------------------------------------------


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more chars]"


def cut_steps(model: M, limit: int) -> M:
    """``model`` with every build step (created_by, removed_by) cut to ``limit`` characters,
    in it and in the models and lists it holds.

    RUN lines can run to kilobytes and repeat in every event of a path's history; they are
    most of an answer's size, and the start of one says what it did.
    """
    updates: dict[str, Any] = {}
    for name in type(model).model_fields:
        field = getattr(model, name)
        if name in STEP_FIELDS and isinstance(field, str):
            updates[name] = _cut(field, limit)
        elif isinstance(field, BaseModel | list):
            updates[name] = _cut_within(field, limit)
    return model.model_copy(update=updates)


def _cut_within(value: object, limit: int) -> object:
    """``cut_steps`` for a field's value: a model, a list (of models, lists or others), or
    anything else, returned as it is."""
    if isinstance(value, BaseModel):
        return cut_steps(value, limit)
    if isinstance(value, list):
        return [_cut_within(item, limit) for item in value]
    return value


def count_long_steps(value: object, limit: int) -> int:
    """How many build steps in ``value`` are longer than ``limit``."""
    if isinstance(value, list):
        return sum(count_long_steps(item, limit) for item in value)
    if not isinstance(value, BaseModel):
        return 0
    total = 0
    for name in type(value).model_fields:
        field = getattr(value, name)
        if name in STEP_FIELDS and isinstance(field, str):
            total += len(field) > limit
        else:
            total += count_long_steps(field, limit)
    return total
