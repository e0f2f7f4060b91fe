"""Python distributions: ``*.dist-info/METADATA`` (wheels, pip) and ``*.egg-info/PKG-INFO``
(setuptools; an ``.egg-info`` may also be that file itself). Both are the core metadata
format: RFC 822 headers, of which ``Name`` and ``Version`` are read, up to the first blank
line (the description follows it)."""

from __future__ import annotations

from layerpeek.core.errors import PackageDataError
from layerpeek.core.packages.model import Found, clip


def is_metadata(path: str) -> bool:
    """A distribution's metadata file, anywhere in the image."""
    parent = path.rpartition("/")[0]
    return (
        (parent.endswith(".dist-info") and path.endswith("/METADATA"))
        or (parent.endswith(".egg-info") and path.endswith("/PKG-INFO"))
        or path.endswith(".egg-info")
    )


def parse_metadata(data: bytes) -> list[Found]:
    """The one distribution a metadata file describes."""
    fields: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        if not line.strip():
            break
        key, sep, value = line.partition(":")
        if sep and key in ("Name", "Version") and key not in fields:
            fields[key] = clip(value)
    if not fields.get("Name"):
        raise PackageDataError("no Name field in its metadata")
    return [Found(fields["Name"], fields.get("Version", ""))]
