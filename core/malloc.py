"""glibc's allocator, told to keep large blocks out of its heaps.

glibc serves a block of at least ``M_MMAP_THRESHOLD`` (128 KiB) with a mapping of its own,
returned to the system when freed; but once such a block is freed it raises the threshold
to that block's size (up to 32 MiB), and from then on serves blocks below it from its
heaps. A scan frees megabyte-sized blocks all along (network batches, inflated steps,
encoded lines), so after the first few every later one lands in a heap: one per thread
that allocates, up to eight per core, whose freed space is kept for reuse and counts in
the process's RSS. Fixing the threshold at its default value stops the raising: a full
listing of the real bench layer peaked at 91-94 MB instead of 102-108 MB.
"""

from __future__ import annotations

import ctypes
import platform

M_MMAP_THRESHOLD = -3
"""``mallopt``'s parameter number (glibc's malloc.h)."""
THRESHOLD = 128 << 10
"""glibc's default threshold, kept where it starts."""


def fix_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold at ``THRESHOLD`` for the rest of the process; False
    where the C library is not glibc (nothing to fix) or refuses."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    return mallopt is not None and mallopt(M_MMAP_THRESHOLD, THRESHOLD) == 1
