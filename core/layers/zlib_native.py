"""The inflate half of a zlib's C API, loaded through ``ctypes``: zlib-ng's when it loads,
else the system zlib's.

Checkpoints need what Python's ``zlib`` module hides (``Z_BLOCK`` boundaries,
``inflatePrime``), so ``checkpoints`` calls a zlib's C API directly. zlib-ng's native API
(``zng_*``) inflates the same deflate streams faster; no Python package offers it as an API,
but the ``zlib-ng`` package's extension module links zlib-ng in and exports those symbols.
That is an accident of its build, not a promise: ``zlib_ng`` loads them only when every one
is there (``ZLIB_NG_FUNCTIONS``), and ``load`` falls back to the system zlib, which has the
same calls under their zlib names. tests/test_zlib_native.py fails, naming what is missing,
when the package stops exporting them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from dataclasses import dataclass

ZLIB_NG_FUNCTIONS = (
    "zng_inflateInit2",
    "zng_inflate",
    "zng_inflateEnd",
    "zng_inflatePrime",
    "zng_inflateSetDictionary",
)
"""What ``checkpoints`` calls, as the ``zlib-ng`` package's extension module exports it."""


class _ZStream(ctypes.Structure):
    """zlib's ``z_stream`` (zlib.h), the layout every zlib 1.x build shares."""

    _fields_ = [
        ("next_in", ctypes.c_void_p),
        ("avail_in", ctypes.c_uint),
        ("total_in", ctypes.c_ulong),
        ("next_out", ctypes.c_void_p),
        ("avail_out", ctypes.c_uint),
        ("total_out", ctypes.c_ulong),
        ("msg", ctypes.c_char_p),
        ("state", ctypes.c_void_p),
        ("zalloc", ctypes.c_void_p),
        ("zfree", ctypes.c_void_p),
        ("opaque", ctypes.c_void_p),
        ("data_type", ctypes.c_int),
        ("adler", ctypes.c_ulong),
        ("reserved", ctypes.c_ulong),
    ]


class _ZngStream(ctypes.Structure):
    """zlib-ng's native ``zng_stream`` (zlib-ng.h): ``z_stream`` with fixed-width counts."""

    _fields_ = [
        ("next_in", ctypes.c_void_p),
        ("avail_in", ctypes.c_uint32),
        ("total_in", ctypes.c_size_t),
        ("next_out", ctypes.c_void_p),
        ("avail_out", ctypes.c_uint32),
        ("total_out", ctypes.c_size_t),
        ("msg", ctypes.c_char_p),
        ("state", ctypes.c_void_p),
        ("zalloc", ctypes.c_void_p),
        ("zfree", ctypes.c_void_p),
        ("opaque", ctypes.c_void_p),
        ("data_type", ctypes.c_int),
        ("adler", ctypes.c_uint32),
        ("reserved", ctypes.c_ulong),
    ]


@dataclass(frozen=True)
class InflateApi:
    """The five inflate calls of one zlib build, each taking a pointer to a ``stream``."""

    name: str
    stream: type[ctypes.Structure]
    init: Callable[[object, int], int]
    inflate: Callable[[object, int], int]
    end: Callable[[object], int]
    prime: Callable[[object, int, int], int]
    set_dictionary: Callable[[object, bytes, int], int]


def load() -> InflateApi:
    """zlib-ng's API when the ``zlib-ng`` package exports it, else the system zlib's."""
    return zlib_ng() or system_zlib()


def zlib_ng() -> InflateApi | None:
    """zlib-ng's native API from the ``zlib-ng`` package's extension module; None unless it
    loads with every function of ``ZLIB_NG_FUNCTIONS``."""
    lib = zlib_ng_library()
    if lib is None or missing_functions(lib):
        return None
    init, inflate, end, prime, set_dictionary = (getattr(lib, f) for f in ZLIB_NG_FUNCTIONS)
    init.argtypes = [ctypes.c_void_p, ctypes.c_int]
    inflate.argtypes = [ctypes.c_void_p, ctypes.c_int]
    end.argtypes = [ctypes.c_void_p]
    prime.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    set_dictionary.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32]
    return InflateApi("zlib-ng", _ZngStream, init, inflate, end, prime, set_dictionary)


def system_zlib() -> InflateApi:
    """The system zlib's inflate calls (``libz``), the fallback every platform has."""
    lib = system_library()
    lib.zlibVersion.restype = ctypes.c_char_p
    lib.inflateInit2_.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.inflate.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.inflateEnd.argtypes = [ctypes.c_void_p]
    lib.inflatePrime.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    lib.inflateSetDictionary.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint]
    version, size = lib.zlibVersion(), ctypes.sizeof(_ZStream)

    def init(stream: object, wbits: int) -> int:
        code: int = lib.inflateInit2_(stream, wbits, version, size)  # restype c_int
        return code

    return InflateApi(
        "zlib",
        _ZStream,
        init,
        lib.inflate,
        lib.inflateEnd,
        lib.inflatePrime,
        lib.inflateSetDictionary,
    )


def system_library() -> ctypes.CDLL:
    """The system zlib as a loaded library."""
    return ctypes.CDLL(ctypes.util.find_library("z") or "libz.so.1")


def missing_functions(lib: ctypes.CDLL) -> list[str]:
    """The functions of ``ZLIB_NG_FUNCTIONS`` that ``lib`` does not export."""
    return [name for name in ZLIB_NG_FUNCTIONS if not hasattr(lib, name)]


def zlib_ng_library() -> ctypes.CDLL | None:
    """The ``zlib-ng`` package's extension module as a library; None when it does not load."""
    try:
        from zlib_ng import zlib_ng

        return ctypes.CDLL(zlib_ng.__file__)
    except (ImportError, OSError):
        return None
