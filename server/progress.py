"""Progress notifications for long scans, from the core's synchronous ``on_progress`` callbacks.

The core calls back from inside its scan, where nothing can be awaited; the relay keeps the
latest figure and the tool sends it between entries. So the scan never waits on the client,
at most one notification goes out per scanner step, and the values only grow, as the MCP
spec asks: across layers they count the bytes of the layers already done plus the current one.
"""

from __future__ import annotations

from collections.abc import Sequence

from layerpeek.core.layers.progress import Progress, ProgressCallback
from layerpeek.core.text import human_size
from layerpeek.server.common import AppContext


class ProgressRelay:
    """One tool call's progress over a sequence of layers (compressed bytes read of all)."""

    def __init__(self, ctx: AppContext, sizes: Sequence[int]) -> None:
        self._ctx = ctx
        self._total = sum(sizes)
        self._sizes = list(sizes)
        self._pending: tuple[int, str] | None = None
        self._sent = -1

    def layer(self, position: int, index: int) -> ProgressCallback:
        """The callback for the ``position``-th scanned layer, layer ``index`` of the image."""
        before = sum(self._sizes[:position])

        def update(progress: Progress) -> None:
            done = before + progress.bytes_read
            message = (
                f"layer {index}: {human_size(progress.bytes_read)} of "
                f"{human_size(self._sizes[position])}, {progress.entries:,} entries"
            )
            self._pending = (done, message)

        return update

    async def flush(self) -> None:
        """Send the latest figure if it moved on since the last one sent."""
        if self._pending is None or self._pending[0] <= self._sent:
            return
        done, message = self._pending
        self._sent = done
        await self._ctx.report_progress(done, self._total or None, message)
