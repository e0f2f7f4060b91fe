"""Node packages: the ``package.json`` at the root of each package under a ``node_modules``
directory (``node_modules/NAME/`` or, scoped, ``node_modules/@SCOPE/NAME/``)."""

from __future__ import annotations

import re

import orjson

from layerpeek.core.errors import JSON_ERRORS, PackageDataError
from layerpeek.core.packages.model import Found, clip

_ROOT = re.compile(r"(?:^|/)node_modules/(?:@[^/]+/)?[^/@.][^/]*/package\.json\Z")


def is_manifest(path: str) -> bool:
    """A package's own ``package.json`` (not one of the files deeper inside a package)."""
    return _ROOT.search(path) is not None


def parse_manifest(data: bytes) -> list[Found]:
    """The package a ``package.json`` describes: its ``name`` (``@scope/name`` splits into
    the purl's namespace and name) and ``version``."""
    try:
        document = orjson.loads(data)
    except JSON_ERRORS as exc:
        raise PackageDataError(f"not JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(document, dict):
        raise PackageDataError("not a JSON object")
    name, version = document.get("name"), document.get("version")
    if not isinstance(name, str) or not name:
        raise PackageDataError("no name")
    version = version if isinstance(version, str) else ""
    scope = name.partition("/")[0] if name.startswith("@") and "/" in name else ""
    return [Found(clip(name), clip(version), namespace=clip(scope))]
