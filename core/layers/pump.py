"""Inflate a layer ahead of its tar scan, on a thread that never waits for the event loop.

Inflating is the longest single job of a full scan and the only one that runs outside the
interpreter lock, so a full listing is as fast as the inflater is kept busy. Handing it one
step at a time from the event loop left it idle for a quarter of a listing: each next step
waited for the scan of the previous one, for the entries to reach the consumer and for the
next network batch. ``InflatePump`` decouples the two:

- the event loop ``give``s it compressed batches as they arrive, up to ``INPUT`` bytes ahead;
- a job on the inflater executor inflates them into steps while it has input and fewer than
  ``AHEAD`` bytes of steps wait, then ends: the job never waits for anything, so no
  inflater thread is left waiting when a scan is abandoned or the process exits;
- the scan ``take``s steps in order.

The pump owns the decompressing half of a ``LayerReader`` (``feed``/``inflate``); the scan
keeps the other (``scan``), as ``LayerReader.inflate`` describes.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from layerpeek.core.layers.scan import Inflated, LayerReader

INPUT = 2 << 20
"""Compressed bytes queued for the inflater: enough work (a few MB of output) to carry
it through the gaps while the consumer handles entries and no one reads the network."""
AHEAD = 4 << 20
"""Inflated bytes waiting to be scanned before the inflater pauses: bounds a scan's memory
(they sit in the inflater's lent buffers, ``buffers.OutputPool``). Longer queues bought no
speed on the benchmark's layer."""
THREADS = 8
"""Inflater threads, shared by all scans (a process keeps at most ``index.LIVE_SCANS``)."""

SWITCH_INTERVAL = 0.0001
"""The interpreter's thread switch interval once a pump runs (Python's default: 5 ms).

The inflater gives the interpreter lock up for every ``inflate`` call and must win it back
from the scanner and the event loop, which hold it for the whole interval when busy. Beside
a thread that always holds the lock, inflating took more than twice as long at Python's
default as at this interval (which comes close to inflating alone), while the busy thread
kept its pace.
A front end opts into it for its run (``core.runtime.tuned_process``), which restores the
previous interval on exit."""

_EXECUTOR = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="layerpeek-inflate")


class InflatePump:
    """Compressed batches in (``give``), inflated steps out (``take``), inflated in between
    on the inflater executor."""

    def __init__(self, reader: LayerReader) -> None:
        self._reader = reader
        self._changed = threading.Condition()
        self._input: deque[bytes] = deque()
        self._queued = 0  # compressed bytes in _input
        self._ready: deque[Inflated] = deque()
        self._waiting = 0  # inflated bytes in _ready
        self._running = False
        self._closed = False
        self._error: BaseException | None = None
        self._ended = False  # a step carried the decompressor's error: nothing follows it

    @property
    def wants_input(self) -> bool:
        """True while fewer than ``INPUT`` compressed bytes wait to be inflated."""
        return self._queued < INPUT and not self._closed

    def give(self, batch: bytes) -> None:
        """Queue the next compressed batch and make sure the inflater works on it."""
        with self._changed:
            self._input.append(batch)
            self._queued += len(batch)
            self._start()

    @property
    def inflating(self) -> bool:
        """True while the inflater works on this pump's input."""
        return self._running

    def take(self) -> Inflated | None:
        """The next inflated step, waiting for it while the inflater works; None when the
        inflater has run out of input (give more, or the blob has ended). Blocks: call it from
        a worker thread."""
        with self._changed:
            while True:
                if self._error is not None:
                    raise self._error
                if self._ready:
                    step = self._ready.popleft()
                    self._waiting -= _size(step)
                    self._start()
                    return step
                self._start()  # queued input the last job did not see, if any
                if not self._running:
                    return None
                self._changed.wait()

    def close(self) -> None:
        """Stop inflating: the job in progress finishes its step and ends."""
        with self._changed:
            self._closed = True
            self._input.clear()
            self._ready.clear()

    def _start(self) -> None:
        """Submit the job unless it runs or has nothing to do (caller holds the lock)."""
        if not self._running and self._has_work():
            self._running = True
            _EXECUTOR.submit(self._job)

    def _has_work(self) -> bool:
        """Whether a job would inflate anything now: input to go on with, room for its
        output, and nothing that stopped the pump."""
        if self._closed or self._ended or self._error is not None or self._waiting >= AHEAD:
            return False
        return bool(self._input) or not self._reader.needs_input

    def _job(self) -> None:
        """Inflate steps while there is input and room; then end, waking ``take``."""
        try:
            while (step := self._next_step()) is not None:
                with self._changed:
                    if self._closed:
                        break
                    self._ready.append(step)
                    self._waiting += _size(step)
                    self._ended = step.error is not None
                    self._changed.notify_all()
        except BaseException as error:  # handed to the scan, which raises it as its own
            with self._changed:
                self._error = error
        finally:
            with self._changed:
                self._running = False
                self._start()  # input given after the job found none: go on with it
                self._changed.notify_all()

    def _next_step(self) -> Inflated | None:
        """Inflate one step, feeding the reader a queued batch first when it needs one;
        None when there is no input or no room left."""
        with self._changed:
            if not self._has_work():
                return None
            if self._reader.needs_input:  # then _has_work saw input queued
                batch = self._input.popleft()
                self._queued -= len(batch)
                self._reader.feed(batch)
        return self._reader.inflate()


def _size(step: Inflated) -> int:
    return sum(len(piece) for piece in step.pieces)
