"""``/packages`` through ``layerpeek-bot preview``: the exact payload, within Discord's
limits, with the packages the tools list and the layer that installed each."""

from __future__ import annotations

import json

import pytest
from test_bot_support import allow_local_registry, assert_within_limits
from test_packages import dpkg_installed

from layerpeek.bot.cli import main


@pytest.fixture
def env(layerpeek_env, monkeypatch):
    allow_local_registry(monkeypatch, layerpeek_env)


def preview(capsys, line: str) -> dict:
    status = main(["preview", line])
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    return json.loads(out)


def test_packages_lists_a_line_a_package_with_its_layer(
    env, capsys, plain_registry, package_images
):
    ref = package_images.dpkg_layers.ref(plain_registry.host)
    message = preview(capsys, f"/packages image:{ref} filter:TINY")
    assert_within_limits(message)
    truth = dpkg_installed(package_images.trees.dpkg_root / "var/lib/dpkg")
    named = sorted(t for t in truth if "tiny" in t[0])
    description = message["embeds"][0]["description"]
    assert description.startswith(f"names containing TINY:\n**deb** {len(named)} packages\n")
    assert "deb    tiny 2.0 all (layer 2)" in description.splitlines()


def test_packages_summarises_by_kind_and_cuts_within_limits(
    env, capsys, plain_registry, package_images
):
    message = preview(capsys, f"/packages image:{package_images.debian.ref(plain_registry.host)}")
    assert_within_limits(message)
    description = message["embeds"][0]["description"]
    deb = len(dpkg_installed(package_images.trees.dpkg_admin))
    assert description.startswith(
        f"**deb** {deb} packages\n**pypi** 3 packages\n**npm** 3 packages\n**golang** 4 packages"
    )
    assert "more packages: narrow with filter" in description


def test_packages_names_what_it_did_not_read(env, capsys, plain_registry, package_images):
    message = preview(capsys, f"/packages image:{package_images.broken.ref(plain_registry.host)}")
    description = message["embeds"][0]["description"]
    lines = description.splitlines()
    assert lines[0].startswith("⚠️ not read: usr/local/bin/liar (layer 0): a build information")
    assert lines[3] == "… and 2 more not read"
    assert "npm    good 1.0.0 (layer 0)" in description
