"""The zlib C API that checkpoints call: zlib-ng's from the ``zlib-ng`` package (exported by
accident of its build, so checked here), and the system zlib it falls back to."""

import zlib

from layerpeek.core.layers import checkpoints, zlib_native
from layerpeek.core.layers.checkpoints import CheckpointInflater

ADAPTER = "core/layers/zlib_native.py"


def test_the_zlib_ng_package_still_exports_the_native_inflate_api() -> None:
    lib = zlib_native.zlib_ng_library()
    assert lib is not None, (
        f"the zlib_ng package's extension module no longer loads as a library: gzip layers "
        f"inflate through the system zlib; adapt {ADAPTER}"
    )
    missing = zlib_native.missing_functions(lib)
    assert not missing, (
        f"the zlib_ng package's extension module no longer exports {', '.join(missing)}: "
        f"gzip layers inflate through the system zlib; adapt {ADAPTER}"
    )


def test_checkpoints_use_zlib_ng_when_it_loads() -> None:
    assert checkpoints._ZLIB.name == "zlib-ng", (
        f"checkpoints fell back to the system zlib ({ADAPTER})"
    )


def test_the_fallback_is_the_system_zlib_which_lacks_the_native_names() -> None:
    assert zlib_native.missing_functions(zlib_native.system_library()) == list(
        zlib_native.ZLIB_NG_FUNCTIONS
    )
    assert zlib_native.system_zlib().name == "zlib"


def test_each_api_inflates_a_gzip_stream_with_checkpoints(monkeypatch) -> None:
    text = b" ".join(b"w%d" % (i * 7919 % 10007) for i in range(200_000))
    compressed = zlib.compress(text, 6, wbits=31)
    apis = [zlib_native.zlib_ng(), zlib_native.system_zlib()]
    found = []
    for api in apis:
        monkeypatch.setattr(checkpoints, "_ZLIB", api)
        inflater = CheckpointInflater(spacing=1 << 18)
        out = b"".join(bytes(piece) for piece in inflater.feed(compressed))
        inflater.finish()
        assert out == text, f"{api.name} inflated the stream wrongly ({ADAPTER})"
        found.append([(p.compressed, p.uncompressed, p.bits) for p in inflater.checkpoints])
    assert len(found[0]) >= 3 and found[0] == found[1]
