"""list_files' filters: a path prefix and a glob, as a model writes them.

The pages themselves come from ``core.paging``.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Callable

from layerpeek.core.paging import Match


def normal_prefix(prefix: str) -> str:
    """Strip what the layer paths never have (a leading ``/`` or ``./``); keep a trailing ``/``
    so "etc/" means "inside etc" while "etc" also matches "etcetera"."""
    clean = prefix.strip()
    if not clean:
        return ""
    trailing = "/" if clean.endswith("/") else ""
    normal = posixpath.normpath("/" + clean).lstrip("/")
    return normal + trailing if normal else ""


def path_matcher(prefix: str, glob: str | None) -> Callable[[str], bool] | None:
    """The filter of list_files on a path: a prefix and an fnmatch pattern on the whole
    path; None when it lets every path through."""
    if not prefix and glob is None:
        return None

    def match(path: str) -> bool:
        if not path.startswith(prefix):
            return False
        return glob is None or fnmatch.fnmatchcase(path, glob)

    return match


def matcher(prefix: str, glob: str | None) -> Match:
    """The filter of list_files on a layer's entries (``path_matcher``)."""
    on_path = path_matcher(prefix, glob)
    return (lambda entry: True) if on_path is None else (lambda entry: on_path(entry.path))
