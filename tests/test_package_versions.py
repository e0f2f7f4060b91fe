"""Version order by kind, against the tools that own it: dpkg --compare-versions, rpm's
rpm.vercmp, npm's own semver module (the order npm and Go's module versions follow)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from fixtures.tools import require_tool
from layerpeek.core.packages.versions import compare

DEB_PAIRS = [
    ("1.0", "1.0"), ("1.0", "1.1"), ("1.0~rc1", "1.0"), ("1.0~rc1", "1.0~rc2"),
    ("1:0.9", "2.0"), ("2.0-1", "2.0-1+b1"), ("2.0-1", "2.0-10"), ("5.2.15-2+b2", "5.2.15-2+b8"),
    ("1.0a", "1.0"), ("1.0", "1.0+dfsg"), ("1.0-1~bpo1", "1.0-1"), ("0:1.0", "1.0"),
    ("3.0.11-1~deb12u2", "3.0.13-1~deb12u1"), ("2.36-9+deb12u4", "2.36-9+deb12u10"),
    ("1.2.3", "1.2.3.0"), ("7.88.1-10+deb12u5", "7.88.1-10"), ("1.0.0", "1.0.0~"),
    ("abc", "abd"), ("1.0-a", "1.0-b"), ("9", "10"), ("1.0+", "1.0."),
]  # fmt: skip
RPM_PAIRS = [
    ("1.0-1", "1.0-2"), ("1.0-1", "1.0-1"), ("1.0a-1", "1.0-1"), ("1.0~rc1-1", "1.0-1"),
    ("1.0^git1-1", "1.0-1"), ("1.0^git1-1", "1.0.1-1"), ("2.36-9.fc39", "2.36-10.fc39"),
    ("1.10-1", "1.9-1"), ("1.0-1.el9", "1.0-1.el9_2"), ("3.0.7-24.el9", "3.0.7-25.el9"),
    ("a-1", "b-1"), ("1.a-1", "1.1-1"), ("1.0.0-1", "1.0-1"), ("1.2.5-r0", "1.2.5-r1"),
    ("1.2.10-r0", "1.2.5-r0"), ("20240705-r0", "20240226-r0"),
]  # fmt: skip
SEMVER_PAIRS = [
    ("1.0.0", "1.0.1"), ("1.0.0-rc.1", "1.0.0"), ("1.0.0-alpha", "1.0.0-alpha.1"),
    ("1.0.0-alpha.1", "1.0.0-alpha.beta"), ("1.0.0-beta.2", "1.0.0-beta.11"),
    ("1.0.0-rc.1", "1.0.0-beta.11"), ("2.0.0", "10.0.0"), ("1.0.0+build.1", "1.0.0+build.2"),
    ("0.0.0-20230101000000-abcdef123456", "0.1.0"), ("1.2.3", "1.2.3"),
]  # fmt: skip


def _dpkg_order(a: str, b: str) -> int:
    dpkg = require_tool("dpkg")
    for relation, value in (("lt", -1), ("eq", 0), ("gt", 1)):
        if subprocess.run([dpkg, "--compare-versions", a, relation, b]).returncode == 0:
            return value
    raise AssertionError(f"dpkg orders neither way: {a} {b}")


def test_deb_order_is_dpkgs():
    ours = [compare("deb", a, b) for a, b in DEB_PAIRS]
    assert ours == [_dpkg_order(a, b) for a, b in DEB_PAIRS]
    assert {-1, 0, 1} <= set(ours)


def test_rpm_and_apk_order_is_rpms():
    calls = ", ".join(
        f"rpm.vercmp({json.dumps(a.rsplit('-', 1)[0])}, {json.dumps(b.rsplit('-', 1)[0])}) "
        f".. ',' .. rpm.vercmp({json.dumps(a.rsplit('-', 1)[1])}, "
        f"{json.dumps(b.rsplit('-', 1)[1])})"
        for a, b in RPM_PAIRS
    )
    script = f"%{{lua: for _, v in ipairs({{{calls}}}) do print(v .. ' ') end}}"
    out = subprocess.run(
        [require_tool("rpm"), "--eval", script], capture_output=True, text=True, check=True
    ).stdout
    truth = []
    for pair in out.split():
        version, release = (int(x) for x in pair.split(","))
        truth.append(version or release)
    assert [compare("rpm", a, b) for a, b in RPM_PAIRS] == truth
    assert [compare("apk", a, b) for a, b in RPM_PAIRS] == truth


def test_npm_and_go_order_is_npm_semvers():
    root = subprocess.run(
        [require_tool("npm"), "root", "-g"], capture_output=True, text=True, check=True
    ).stdout.strip()
    semver = Path(root) / "npm/node_modules/semver"
    script = (
        f"const s = require({json.dumps(str(semver))});"
        f"console.log(JSON.stringify({json.dumps(SEMVER_PAIRS)}.map(([a, b]) => s.compare(a, b))))"
    )
    out = subprocess.run(
        [require_tool("node"), "-e", script], capture_output=True, text=True, check=True
    ).stdout
    truth = json.loads(out)
    assert [compare("npm", a, b) for a, b in SEMVER_PAIRS] == truth
    assert [compare("golang", "v" + a, "v" + b) for a, b in SEMVER_PAIRS] == truth


@pytest.mark.parametrize(("a", "b", "order"), [("1.0", "1.0.post1", -1), ("2.0rc1", "2.0", -1)])
def test_pypi_order_is_pep_440(a, b, order):
    assert compare("pypi", a, b) == order


def test_unreadable_versions_have_no_order():
    assert compare("npm", "latest", "1.0.0") is None
    assert compare("pypi", "not a version", "1.0") is None
