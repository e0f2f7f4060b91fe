"""Manifests, indexes and configs parse defensively; history lines up with layers."""

import json

import pytest

from layerpeek.core.errors import ManifestError
from layerpeek.core.image.config import parse_config
from layerpeek.core.image.manifest import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Index,
    Manifest,
    parse_manifest,
)
from layerpeek.core.text import human_size, printable, short_digest

D = "sha256:" + "0" * 64


def body(data: dict) -> bytes:
    return json.dumps(data).encode()


def test_manifest_media_type_comes_from_body_then_header_then_shape():
    layers = [{"mediaType": "x", "digest": D, "size": 3}]
    docker = parse_manifest(body({"config": {"digest": D}, "layers": layers}), DOCKER_MANIFEST, D)
    assert isinstance(docker, Manifest) and docker.media_type == DOCKER_MANIFEST
    assert docker.layers[0].size == 3
    bare = parse_manifest(body({"config": {"digest": D}, "layers": []}), "", D)
    assert bare.media_type == OCI_MANIFEST
    index = parse_manifest(body({"mediaType": DOCKER_LIST, "manifests": []}), OCI_INDEX, D)
    assert isinstance(index, Index) and index.media_type == DOCKER_LIST


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (body({"schemaVersion": 1, "fsLayers": []}), "schema 1"),
        (body({"layers": [], "mediaType": OCI_MANIFEST}), "no config"),
        (body({"config": {"size": 1}, "layers": []}), "malformed descriptor"),
        (body({"something": "else"}), "unknown manifest media type"),
    ],
)
def test_malformed_manifests_are_refused_with_a_reason(raw, message):
    with pytest.raises(ManifestError, match=message):
        parse_manifest(raw, "", D)


def test_history_is_aligned_to_layers_skipping_empty_steps():
    config = parse_config(
        body(
            {
                "architecture": "arm64",
                "os": "linux",
                "variant": "v8",
                "config": {
                    "Env": ["A=1"],
                    "Cmd": ["sh"],
                    "User": "nobody",
                    "ExposedPorts": {"80/tcp": {}},
                    "Labels": {"k": "v"},
                },
                "rootfs": {"type": "layers", "diff_ids": [D, D]},
                "history": [
                    {"created_by": "ADD rootfs"},
                    {"created_by": "ENV A=1", "empty_layer": True},
                    {"created_by": "RUN make"},
                    {"created_by": "CMD sh", "empty_layer": True},
                ],
            }
        ),
        D,
    )
    assert [(h.created_by, h.layer) for h in config.history] == [
        ("ADD rootfs", 0),
        ("ENV A=1", None),
        ("RUN make", 1),
        ("CMD sh", None),
    ]
    assert config.step_for_layer(1) == "RUN make"
    assert config.step_for_layer(7) == ""
    assert str(config.platform) == "linux/arm64/v8"
    assert config.exposed_ports == ("80/tcp",) and config.entrypoint is None


def test_untrusted_text_is_rendered_with_visible_escapes():
    assert printable("RUN echo \x1b[31mred\r") == "RUN echo \\x1b[31mred\\r"
    assert printable(b"bad\xffname".decode("utf-8", "surrogateescape")) == "bad\\xffname"
    assert printable("ünïcode ok") == "ünïcode ok"


def test_sizes_and_digests_are_shortened_for_people():
    assert human_size(0) == "0 B"
    assert human_size(3 * 1024 * 1024) == "3.0 MiB"
    assert short_digest(D) == "sha256:000000000000"
