"""Go build information as an attacker may write it: bounded however many modules it names."""

from __future__ import annotations

import pytest

from layerpeek.core.packages.golang import MAX_MODULES, parse_modules
from layerpeek.core.packages.model import Partly


def test_modules_past_the_bound_are_named_not_made():
    lines = ["path\texample.com/app", "mod\texample.com/app\t(devel)\t"]
    lines += [f"dep\texample.com/m{i}\tv1.0.{i}\th1:x" for i in range(MAX_MODULES + 500)]
    with pytest.raises(Partly, match=f"more than {MAX_MODULES:,} modules") as caught:
        parse_modules("\n".join(lines))
    assert len(caught.value.found) == MAX_MODULES
    assert caught.value.found[0].name == "example.com/app"


def test_a_binary_within_the_bound_lists_every_module_with_its_arch():
    info = "mod\texample.com/app\tv1.2.3\t\n" + "dep\tgolang.org/x/sys\tv0.1.0\th1:y\n"
    info += "build\tGOARCH=arm64"
    found = parse_modules(info)
    assert [(f.name, f.version, f.arch) for f in found] == [
        ("example.com/app", "v1.2.3", "arm64"),
        ("golang.org/x/sys", "v0.1.0", "arm64"),
    ]
