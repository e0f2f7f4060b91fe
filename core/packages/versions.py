"""Version order, kind by kind, to tell an upgrade from a downgrade.

- deb: dpkg's order (``epoch:upstream-revision``; letters sort before non-letters and ``~``
  before everything, even the end of the string; digits compare as numbers).
- rpm and apk: rpm's ``rpmvercmp`` on version and release (runs of digits compare as
  numbers, digits beat letters, ``~`` sorts first, ``^`` only after the end); apk's order
  agrees on the versions its packages use (``1.2.5-r0`` < ``1.2.5-r1`` < ``1.2.10-r0``).
- pypi: PEP 440 (``packaging``), pre-releases and post-releases included.
- npm and golang: semantic versioning (a pre-release sorts before its release; build
  metadata is ignored).
None when a version cannot be read in its kind's syntax: the change is then only "changed".
"""

from __future__ import annotations

import re

from packaging.version import InvalidVersion, Version

_DIGITS = re.compile(r"\d+|\D+")
_RPM_PART = re.compile(r"(\d+|[a-zA-Z]+|~|\^)")
_SEMVER = re.compile(r"v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?\Z")


def compare(kind: str, a: str, b: str) -> int | None:
    """-1, 0 or 1 as ``a`` sorts before, with or after ``b``; None when unknown."""
    if a == b:
        return 0
    if kind == "deb":
        return _sign(_dpkg(a, b))
    if kind in ("rpm", "apk"):
        return _rpm_evr(a, b)
    if kind == "pypi":
        try:
            return _sign((Version(a) > Version(b)) - (Version(a) < Version(b)))
        except InvalidVersion:
            return None
    return _semver(a, b)


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


# -- dpkg -------------------------------------------------------------------------------------


def _dpkg_split(version: str) -> tuple[int, str, str]:
    epoch, colon, rest = version.partition(":")
    if not colon:
        epoch, rest = "0", version
    upstream, dash, revision = rest.rpartition("-")
    if not dash:
        upstream, revision = rest, ""
    return int(epoch) if epoch.isdigit() else 0, upstream, revision


def _dpkg(a: str, b: str) -> int:
    ea, ua, ra = _dpkg_split(a)
    eb, ub, rb = _dpkg_split(b)
    if ea != eb:
        return ea - eb
    return _verrevcmp(ua, ub) or _verrevcmp(ra, rb)


def _order(char: str) -> int:
    """dpkg's weight of a non-digit: ``~`` lowest, then the end, letters, other symbols."""
    if char == "~":
        return -1
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _verrevcmp(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            bc = _order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ac != bc:
                return ac - bc
            i, j = i + 1, j + 1
        start_i, start_j = i, j
        while i < len(a) and a[i].isdigit():
            i += 1
        while j < len(b) and b[j].isdigit():
            j += 1
        na, nb = int(a[start_i:i] or 0), int(b[start_j:j] or 0)
        if na != nb:
            return na - nb
    return 0


# -- rpm ---------------------------------------------------------------------------------------


def _rpm_evr(a: str, b: str) -> int:
    va, _, ra = a.rpartition("-") if "-" in a else (a, "", "")
    vb, _, rb = b.rpartition("-") if "-" in b else (b, "", "")
    return _rpmvercmp(va, vb) or _rpmvercmp(ra, rb)


def _rpmvercmp(a: str, b: str) -> int:
    """rpm's comparison of one version (or release) string."""
    pa, pb = _RPM_PART.findall(a), _RPM_PART.findall(b)
    for x, y in zip(pa, pb, strict=False):
        if x == y:
            continue
        if "~" in (x, y):
            return -1 if x == "~" else 1
        if "^" in (x, y):  # a caret sorts before anything but the end
            return -1 if x == "^" else 1
        if x.isdigit() != y.isdigit():
            return 1 if x.isdigit() else -1
        if x.isdigit():
            return _sign(int(x) - int(y))
        return -1 if x < y else 1
    rest_a, rest_b = pa[len(pb) :], pb[len(pa) :]
    if rest_a:
        return -1 if rest_a[0] == "~" else 1
    if rest_b:
        return 1 if rest_b[0] == "~" else -1
    return 0


# -- semantic versions ------------------------------------------------------------------------


def _semver(a: str, b: str) -> int | None:
    ma, mb = _SEMVER.match(a), _SEMVER.match(b)
    if ma is None or mb is None:
        return None
    core_a = tuple(int(x) for x in ma.group(1, 2, 3))
    core_b = tuple(int(x) for x in mb.group(1, 2, 3))
    if core_a != core_b:
        return -1 if core_a < core_b else 1
    pre_a, pre_b = ma.group(4), mb.group(4)
    if pre_a == pre_b:
        return 0
    if pre_a is None or pre_b is None:
        return 1 if pre_a is None else -1
    return _prerelease(pre_a.split("."), pre_b.split("."))


def _prerelease(a: list[str], b: list[str]) -> int:
    for x, y in zip(a, b, strict=False):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return _sign(int(x) - int(y))
        if x.isdigit() != y.isdigit():
            return -1 if x.isdigit() else 1
        return -1 if x < y else 1
    return _sign(len(a) - len(b))
