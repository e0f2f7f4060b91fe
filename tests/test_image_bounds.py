"""What an image may declare: well-formed digests, and a bounded number of layers and steps.

Descriptor digests become URL paths and cache keys, so one that is not ``sha256:`` or
``sha512:`` and lowercase hex of the full length is refused where the manifest is parsed, in
one line naming the field. Layers (1000) and history steps (10,000) are capped: every real
image is far below, and the work an image costs stays bounded however its author wrote it.
"""

from __future__ import annotations

import json
import re

import pytest

from fixtures.hostile import (
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    HostileRegistry,
    manifest_with_layer_digests,
    sha256,
)
from layerpeek.cli.main import main
from layerpeek.core.errors import ManifestError
from layerpeek.core.image.config import MAX_CONFIG_ENTRIES, MAX_HISTORY, parse_config
from layerpeek.core.image.manifest import MAX_INDEX_ENTRIES, MAX_LAYERS

NAME = "evil/app"
ZERO = "sha256:" + "0" * 64
ESC_TITLE = "\x1b]0;pwned\x07"
RESET = "\x1bc"
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


@pytest.fixture
def hostile(layerpeek_env):
    with HostileRegistry() as registry:
        yield registry


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


# -- descriptor digests ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:" + ESC_TITLE + "0" * 58,
        "md5:" + "0" * 32,
        "sha256:" + "A" * 64,
        "sha256:" + "0" * 63,
        "sha512:" + "0" * 64,
        "sha256" + "0" * 64,
    ],
)
def test_a_malformed_layer_digest_is_one_escaped_line_naming_the_field(capsys, hostile, digest):
    """Only sha256 and sha512 (lowercase hex, full length) pass; layers[0] is a sha512."""
    manifest_with_layer_digests(hostile, "bad", ["sha512:" + "f" * 128, digest])
    status, out, err = run(capsys, "inspect", f"{hostile.host}/{NAME}:bad")
    assert (status, out) == (3, "")
    assert err.startswith("layerpeek: error: manifest sha256:")
    assert ": layers[1].digest is not a sha256 or sha512 digest: " in err
    assert err.count("\n") == 1 and not CONTROL.search(err)


def test_a_malformed_index_entry_digest_is_refused(capsys, hostile):
    entry = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + RESET, "size": 1}
    hostile.index(NAME, "badindex", [entry])
    status, _, err = run(capsys, "inspect", f"{hostile.host}/{NAME}:badindex")
    assert status == 3 and ": manifests[0].digest is not a sha256 or sha512 digest: " in err
    assert not CONTROL.search(err)
    # The index is asked for by tag and read by its digest; no child is ever asked for.
    assert all(r.path.startswith(f"/v2/{NAME}/manifests/") for r in hostile.requests)
    assert not any(RESET in r.path or "%1B" in r.path for r in hostile.requests)


# -- how big an image may be -----------------------------------------------------------------


def _steps(count: int, made: int) -> list[dict]:
    """``count`` steps, the first ``made`` of them making a layer each."""
    return [{"created_by": f"RUN step {i}", "empty_layer": i >= made} for i in range(count)]


def _sized_image(registry: HostileRegistry, tag: str, layers: int, steps: int) -> str:
    config = json.dumps({"os": "linux", "architecture": "amd64", "history": _steps(steps, layers)})
    digests = [f"sha256:{i:064x}" for i in range(layers)]
    registry.blob(NAME, sha256(config.encode()), config.encode())
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"digest": sha256(config.encode()), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": d, "size": 1} for d in digests],
    }
    registry.manifest(NAME, tag, json.dumps(body).encode(), OCI_MANIFEST)
    return f"{registry.host}/{NAME}:{tag}"


async def test_an_image_at_the_caps_is_read_and_one_layer_more_is_one_clear_error(peek):
    with HostileRegistry() as registry:
        report = await peek.inspect(_sized_image(registry, "cap", MAX_LAYERS, MAX_HISTORY))
        ref = _sized_image(registry, "layers", MAX_LAYERS + 1, 10)
        with pytest.raises(ManifestError) as refused:
            await peek.inspect(ref)
    assert len(report.layers) == MAX_LAYERS and len(report.history) == MAX_HISTORY
    steps = [layer.created_by for layer in report.layers]
    assert steps == [f"RUN step {i}" for i in range(MAX_LAYERS)]
    assert re.fullmatch(
        rf"manifest sha256:[0-9a-f]{{64}}: layers has {MAX_LAYERS + 1} entries, "
        rf"more than the {MAX_LAYERS} allowed",
        str(refused.value),
    )


async def test_more_history_steps_than_the_cap_is_one_clear_error(peek):
    """The issue's image: 2,000 layers and 200,000 steps, refused at once."""
    with HostileRegistry() as registry:
        ref = _sized_image(registry, "steps", 1, MAX_HISTORY + 1)
        with pytest.raises(ManifestError) as refused:
            await peek.inspect(ref)
        assert re.fullmatch(
            rf"config sha256:[0-9a-f]{{64}}: history has {MAX_HISTORY + 1} entries, "
            rf"more than the {MAX_HISTORY} allowed",
            str(refused.value),
        )
        with pytest.raises(ManifestError, match="layers has 2000 entries"):
            await peek.inspect(_sized_image(registry, "both", 2000, 200_000))


async def test_an_index_of_more_entries_than_the_cap_is_one_clear_error(peek):
    with HostileRegistry() as registry:
        entries = [
            {"digest": ZERO, "size": 1, "platform": {"os": "linux", "architecture": f"a{i}"}}
            for i in range(MAX_INDEX_ENTRIES + 1)
        ]
        registry.index(NAME, "wide", entries)
        with pytest.raises(ManifestError) as refused:
            await peek.inspect(f"{registry.host}/{NAME}:wide")
    assert re.fullmatch(
        rf"manifest sha256:[0-9a-f]{{64}}: manifests has {MAX_INDEX_ENTRIES + 1} entries, "
        rf"more than the {MAX_INDEX_ENTRIES} allowed",
        str(refused.value),
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Env", [f"E{i}=1" for i in range(MAX_CONFIG_ENTRIES + 1)]),
        ("Labels", {f"l{i}": "" for i in range(MAX_CONFIG_ENTRIES + 1)}),
        ("ExposedPorts", {f"{i}/tcp": {} for i in range(MAX_CONFIG_ENTRIES + 1)}),
        ("Cmd", ["x"] * (MAX_CONFIG_ENTRIES + 1)),
    ],
)
def test_a_run_config_list_or_map_longer_than_the_cap_is_refused(key, value):
    at_cap = value[:-1] if isinstance(value, list) else dict(list(value.items())[:-1])
    assert parse_config(json.dumps({"config": {key: at_cap}}).encode(), ZERO)
    with pytest.raises(ManifestError) as refused:
        parse_config(json.dumps({"config": {key: value}}).encode(), ZERO)
    assert str(refused.value) == (
        f"config {ZERO}: config.{key} has {MAX_CONFIG_ENTRIES + 1} entries, "
        f"more than the {MAX_CONFIG_ENTRIES} allowed"
    )
