"""Process-wide settings a front end opts into when it starts, restored when it ends.

They change the interpreter for every thread and library in the process, so no core module
makes them on its own: a front end's entry point wraps its run in :func:`tuned_process`, and
a test or an embedding application that never does keeps the interpreter as it was.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from layerpeek.core.layers.pump import SWITCH_INTERVAL
from layerpeek.core.malloc import one_arena

YOUNG_THRESHOLD = 10_000
"""Allocations between two collections of the youngest generation (Python's default: 700).

A full listing makes a few objects per entry (its name, its row, its JSON line) and keeps
most of them: at 700, a 50,000-entry listing ran ~220 young and ~20 middle collections,
~45 ms holding the interpreter lock beside the inflater; at 10,000, ~13 collections and
~15 ms. The cyclic garbage that waits longer for a collection is small (a few MB at most)."""


@contextmanager
def tuned_process() -> Iterator[None]:
    """Run the body with the startup objects frozen, fewer young collections and a short
    thread switch interval.

    ``gc.freeze``: after the imports, hundreds of thousands of objects (modules, classes, the
    SDKs' schemas) live as long as the process, yet each full collection walks them all, in
    whichever thread happens to allocate, holding the interpreter lock throughout: during a
    24,000-file listing one such collection stood the event loop still for tens of
    milliseconds. Frozen, they are skipped.

    ``gc.set_threshold``: young collections every ``YOUNG_THRESHOLD`` allocations.

    ``sys.setswitchinterval``: the inflater threads win the interpreter lock back sooner
    (``pump.SWITCH_INTERVAL`` says what it buys). These three are undone on exit.

    ``malloc.one_arena``: the threads share glibc's one heap, so space one of them freed
    is not kept for it alone. glibc cannot hand existing threads their own heaps again, so
    this one stays for the rest of the process.
    """
    interval, frozen_before = sys.getswitchinterval(), gc.get_freeze_count()
    thresholds = gc.get_threshold()
    gc.freeze()
    one_arena()
    gc.set_threshold(max(thresholds[0], YOUNG_THRESHOLD), *thresholds[1:])
    sys.setswitchinterval(min(interval, SWITCH_INTERVAL))
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
        gc.set_threshold(*thresholds)
        if not frozen_before:  # unfreeze() thaws all: leave what someone else froze
            gc.unfreeze()
