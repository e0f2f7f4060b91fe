"""glibc's allocator, told to keep one heap for every thread.

glibc gives each thread that allocates while another holds the heap's lock a heap (an
arena) of its own, up to eight per core, and each heap keeps the space its thread freed
for that thread's next blocks. A scan allocates megabyte blocks on several threads
(network batches on the event loop, inflated steps on the inflater, events on the
scanner), and once glibc has raised its mmap threshold (it does, to the size of each large
block freed) these come from the heaps: every heap then holds its own few megabytes of
freed space, counted in the process's RSS. With one heap, what one thread frees the next
block of another reuses. The threads allocate little and seldom, so they rarely wait for
the one lock.
"""

from __future__ import annotations

import ctypes
import platform

M_ARENA_MAX = -8
"""``mallopt``'s parameter number (glibc's malloc.h)."""


def one_arena() -> bool:
    """Keep glibc to one heap (arena) for the rest of the process; False where the C
    library is not glibc (nothing to set) or refuses. Call it before threads allocate."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    return mallopt is not None and mallopt(M_ARENA_MAX, 1) == 1
