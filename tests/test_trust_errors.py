"""Odd hosts, digests, URLs and bodies end as one typed line, never a library's exception:
the CLI and the core against the attacker's registry, and digests that cannot be verified
are refused, never reported as verified."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator

import pytest

from fixtures.commands import cli, one_line
from fixtures.hostile import OCI_MANIFEST, HostileRegistry
from layerpeek.core.errors import (
    InvalidReference,
    LayerpeekError,
    ManifestError,
    NotFound,
    RegistryError,
)
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.registry.reference import parse_reference
from layerpeek.core.service import Layerpeek

LAYER = gzip.compress(b"\0" * 1024)
DEEP_JSON = b"[" * 200_000  # deeper than any interpreter stack: RecursionError, not ValueError


@pytest.fixture
def hostile() -> Iterator[HostileRegistry]:
    with HostileRegistry() as registry:
        yield registry


# -- odd hosts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "problem"),
    [
        ("0177.0.0.1:5000/x", "0177.0.0.1 is not a dotted-quad IPv4 address"),
        ("300.1.1.1/x", "300.1.1.1 is not a dotted-quad IPv4 address"),
        ("2130706433:5000/x", "2130706433 is not a dotted-quad IPv4 address"),
        ("127.1:5000/x", "127.1 is not a dotted-quad IPv4 address"),
        ("0x7f.1/x", "0x7f.1 is not a dotted-quad IPv4 address"),
        ("[1:2]:5000/x", "[1:2] is not an IPv6 address"),
        ("127.0.0.1:99999/x", "port 99999 is not between 1 and 65535"),
    ],
)
def test_an_odd_registry_host_is_one_line_from_the_cli(layerpeek_env, reference, problem):
    host = reference.partition("/")[0]
    done = cli("inspect", reference)
    assert done.returncode == 3
    assert one_line(done.stderr) == (
        f"layerpeek: error: invalid registry host '{host}' in '{reference}': {problem}"
        + (" (four parts 0-255, no leading zeros)" if "dotted-quad" in problem else "")
    )


@pytest.mark.parametrize("reference", ["127.0.0.1:5000/x", "[::1]:5000/x", "ghcr.io/a/b:1"])
def test_canonical_hosts_still_parse(reference):
    assert str(parse_reference(reference)).startswith(reference.partition(":1")[0])


# -- digests that cannot be verified ------------------------------------------------------------


def test_pull_refuses_an_md5_layer_digest_instead_of_saying_verified(
    layerpeek_env, hostile, tmp_path
):
    md5 = "md5:" + hashlib.md5(LAYER).hexdigest()
    hostile.image("x", "md5", [(md5, LAYER)])
    out = tmp_path / "out"
    out.mkdir()
    done = cli("pull", f"{hostile.host}/x:md5", "--layer", "0", "-o", str(out / "layer.tar.gz"))
    assert done.returncode == 3
    assert "verified" not in done.stdout
    assert one_line(done.stderr).startswith("layerpeek: error: ")
    assert f"'{md5}'" in done.stderr
    assert list(out.iterdir()) == []  # neither the file nor its temporary


async def test_a_layer_digest_with_escape_codes_is_a_typed_error(layerpeek_env, hostile, tmp_path):
    digest = "sha256:\x1b]0;owned\x07\x1b[2J"
    hostile.image("x", "esc", [(digest, LAYER)])
    async with RegistryClient() as client:
        peek = Layerpeek(client)
        with pytest.raises(ManifestError) as caught:
            image = await peek.resolve(f"{hostile.host}/x:esc")
            await peek.pull_layer(image, 0, tmp_path / "layer")
    one_line(str(caught.value))
    assert not any(r.path.startswith("/v2/x/blobs/sha256:%1B") for r in hostile.requests)


async def test_an_index_child_with_an_unverifiable_digest_is_not_fetched(layerpeek_env, hostile):
    child = "md5:" + hashlib.md5(b"{}").hexdigest()
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": child,
                "size": 2,
                "platform": {"architecture": "amd64", "os": "linux"},
            }
        ],
    }
    hostile.manifest(
        "x", "idx", json.dumps(index).encode(), "application/vnd.oci.image.index.v1+json"
    )
    hostile.route("GET", f"/v2/x/manifests/{child}", body=b"{}")
    async with RegistryClient() as client:
        with pytest.raises(ManifestError) as caught:
            await Layerpeek(client).inspect(f"{hostile.host}/x:idx")
    assert f"'{child}'" in one_line(str(caught.value))
    assert not any(child in r.path for r in hostile.requests)  # never asked for by it


# -- what httpx raises for odd URLs and bodies, at the client's one choke point --------------------


async def test_a_next_page_link_to_an_odd_host_is_a_typed_error(layerpeek_env, hostile):
    page = json.dumps({"name": "x", "tags": ["a"]}).encode()
    link = '<http://0177.0.0.1/v2/x/tags/list?last=a>; rel="next"'
    hostile.route("GET", "/v2/x/tags/list", headers={"Link": link}, body=page)
    async with RegistryClient() as client:
        with pytest.raises(InvalidReference) as caught:
            await Layerpeek(client).tags(f"{hostile.host}/x")
    assert one_line(str(caught.value)) == (
        f"cannot request tags of {hostile.host}/x: Invalid IPv4 address: '0177.0.0.1'"
    )


async def test_a_redirect_loop_is_a_typed_error(layerpeek_env, hostile):
    loop = f"{hostile.url}/v2/x/manifests/loop"
    hostile.route("GET", "/v2/x/manifests/loop", status=302, headers={"Location": loop})
    async with RegistryClient() as client:
        with pytest.raises(RegistryError) as caught:
            await Layerpeek(client).inspect(f"{hostile.host}/x:loop")
    assert one_line(str(caught.value)) == (
        f"manifest {hostile.host}/x:loop: Exceeded maximum allowed redirects."
    )


async def test_an_error_body_that_does_not_decode_is_not_decoded(layerpeek_env, hostile):
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    hostile.route("GET", "/v2/x/manifests/gz", status=404, headers=headers, body=b"not gzip")
    async with RegistryClient() as client:
        with pytest.raises(NotFound) as caught:
            await Layerpeek(client).inspect(f"{hostile.host}/x:gz")
    # A compressed reason is never inflated (it could be a bomb): the status says it all.
    assert one_line(str(caught.value)) == (
        f"manifest {hostile.host}/x:gz not found (HTTP 404 Not Found)"
    )


async def test_json_nested_without_end_is_a_typed_error(layerpeek_env, hostile):
    hostile.route("GET", "/v2/x/manifests/deep", status=404, body=DEEP_JSON)
    hostile.route("GET", "/v2/x/tags/list", body=DEEP_JSON)
    async with RegistryClient() as client:
        peek = Layerpeek(client)
        with pytest.raises(NotFound) as missing:
            await peek.inspect(f"{hostile.host}/x:deep")
        with pytest.raises(LayerpeekError) as tags:
            await peek.tags(f"{hostile.host}/x")
    assert str(missing.value) == f"manifest {hostile.host}/x:deep not found (HTTP 404 Not Found)"
    assert str(tags.value) == f"tags of {hostile.host}/x: the registry sent a page that is not JSON"
