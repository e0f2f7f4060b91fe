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


@contextmanager
def tuned_process() -> Iterator[None]:
    """Run the body with the startup objects frozen and a short thread switch interval.

    ``gc.freeze``: after the imports, hundreds of thousands of objects (modules, classes, the
    SDKs' schemas) live as long as the process, yet each full collection walks them all, in
    whichever thread happens to allocate, holding the interpreter lock throughout: during a
    24,000-file listing one such collection stood the event loop still for tens of
    milliseconds. Frozen, they are skipped.

    ``sys.setswitchinterval``: the inflater threads win the interpreter lock back sooner
    (``pump.SWITCH_INTERVAL`` says what it buys). Both are undone on exit.

    ``malloc.one_arena``: the threads share glibc's one heap, so space one of them freed
    is not kept for it alone. glibc cannot hand existing threads their own heaps again, so
    this one stays for the rest of the process.
    """
    interval, frozen_before = sys.getswitchinterval(), gc.get_freeze_count()
    gc.freeze()
    one_arena()
    sys.setswitchinterval(min(interval, SWITCH_INTERVAL))
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
        if not frozen_before:  # unfreeze() thaws all: leave what someone else froze
            gc.unfreeze()
