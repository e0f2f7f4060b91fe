"""The cache saves bytes, never a check.

Every answer starts with an authenticated request to the registry for the manifest, through
the guard, so a guarded front end never answers from what an unguarded process cached, and a
tag always means what the registry says now. What is shared by digest is shared only once
verified against that digest: a registry that serves other bytes under a digest it claims (or
an eStargz TOC it wrote itself) cannot change what the real image lists afterwards.
"""

from __future__ import annotations

import json

import anyio
import httpx
import pytest
from mcp import Client

from fixtures.catalog import Catalog
from fixtures.hostile import HostileRegistry, sha256
from fixtures.images import (
    Member,
    Pusher,
    config_blob,
    image_config,
    make_layer,
    seeded_bytes,
)
from fixtures.toc_images import make_estargz
from layerpeek.cli.main import main as cli_main
from layerpeek.core.errors import DigestMismatch, LayerpeekError, NetworkRefused
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.service import Layerpeek
from layerpeek.server.app import create_server

ATTACKER_FILE = "etc/attacker-was-here"


def attacker_layer(padding: int = 0) -> bytes:
    """One planted file, then ``padding`` bytes of incompressible files after it (so that a
    first page ends long before the blob does)."""
    members = [Member(ATTACKER_FILE, data=b"not the real layer\n")]
    members += [Member(f"pad/{i}", data=seeded_bytes(i, 64 << 10)) for i in range(padding >> 16)]
    return make_layer(members).blob


async def paths(peek: Layerpeek, reference: str, layer: int = 0) -> list[str]:
    image = await peek.resolve(reference)
    return [entry.path async for entry in peek.entries(image, layer, whole=True)]


@pytest.fixture
def hostile() -> HostileRegistry:
    with HostileRegistry() as registry:
        yield registry


# -- authorization before cache ------------------------------------------------------------------


async def test_a_guarded_client_refuses_what_an_unguarded_one_cached(
    layerpeek_env, plain_registry, catalog: Catalog
):
    reference = catalog.gzip.ref(plain_registry.host)
    async with RegistryClient() as client, Layerpeek(client) as peek:
        await paths(peek, reference)  # the CLI, unguarded, fills the shared cache
    async with RegistryClient(guarded=True) as client, Layerpeek(client) as peek:
        for asked in (reference, catalog.gzip.digest_ref(plain_registry.host)):
            with pytest.raises(NetworkRefused):
                await peek.inspect(asked)


async def test_a_cached_digest_is_not_answered_for_a_registry_that_cannot_be_reached(
    layerpeek_env, plain_registry, catalog: Catalog
):
    async with RegistryClient() as client, Layerpeek(client) as peek:
        await paths(peek, catalog.gzip.ref(plain_registry.host))
        with pytest.raises(LayerpeekError, match=r"127\.0\.0\.1:1"):
            await peek.inspect(f"127.0.0.1:1/somebody/else@{catalog.gzip.digest}")


async def test_a_cached_digest_is_not_answered_for_a_registry_that_does_not_have_it(
    layerpeek_env, plain_registry, catalog: Catalog, hostile: HostileRegistry
):
    async with RegistryClient() as client, Layerpeek(client) as peek:
        await paths(peek, catalog.gzip.ref(plain_registry.host))
        with pytest.raises(LayerpeekError, match=r"not here|unknown|404"):
            await peek.inspect(f"{hostile.host}/x@{catalog.gzip.digest}")
    asked = [(r.method, r.path) for r in hostile.requests]
    path = f"/v2/x/manifests/{catalog.gzip.digest}"
    assert asked == [("HEAD", path), ("GET", path)]  # the GET for the registry's own words


async def test_a_tag_means_what_the_registry_says_now(layerpeek_env, plain_registry):
    first = make_layer([Member("first.txt", data=b"1")])
    second = make_layer([Member("second.txt", data=b"2")])
    reference = f"{plain_registry.host}/trust/moving:v1"
    async with RegistryClient() as client, Layerpeek(client) as peek:
        with Pusher(plain_registry.url) as pusher:
            for layer, expected in ((first, "first.txt"), (second, "second.txt")):
                config = image_config([layer])
                pusher.image("trust/moving", ["v1"], [(layer.blob, layer.media_type)], config)
                assert await paths(peek, reference) == [expected]


# -- verify before you share ---------------------------------------------------------------------


async def test_other_bytes_under_a_claimed_digest_never_reach_the_real_image(
    layerpeek_env, plain_registry, catalog: Catalog, hostile: HostileRegistry
):
    real_layer = catalog.gzip.layers[0]
    real_paths = [entry.path for entry in real_layer.entries]
    hostile.image("evil/app", "v1", [(real_layer.digest, attacker_layer())])
    async with RegistryClient() as client, Layerpeek(client) as peek:
        evil = await peek.resolve(f"{hostile.host}/evil/app:v1")
        shown = []
        with pytest.raises(DigestMismatch, match=real_layer.digest):
            async for entry in peek.entries(evil, 0, whole=True):
                shown.append(entry.path)
        assert shown == [ATTACKER_FILE]  # what was read is still shown, then the error
        assert await paths(peek, catalog.gzip.ref(plain_registry.host)) == real_paths
    async with RegistryClient() as client, Layerpeek(client) as peek:  # another process
        assert await paths(peek, catalog.gzip.ref(plain_registry.host)) == real_paths


async def test_a_page_read_from_a_lying_registry_is_not_shared_with_the_real_image(
    layerpeek_env, plain_registry, catalog: Catalog, hostile: HostileRegistry
):
    real_layer = catalog.gzip.layers[0]
    hostile.image("evil/app", "v1", [(real_layer.digest, attacker_layer(padding=4 << 20))])
    async with RegistryClient() as client, Layerpeek(client) as peek:
        evil = await peek.resolve(f"{hostile.host}/evil/app:v1")
        page = await peek.list_page(evil, 0, limit=1)
        assert not page.complete  # the attacker's scan stays open under the claimed digest
        assert [e.path for e in page.entries] == [ATTACKER_FILE]
        real = await peek.resolve(catalog.gzip.ref(plain_registry.host))
        page = await peek.list_page(real, 0, limit=1)
        assert page.entries[0].path == real_layer.entries[0].path


async def test_a_toc_a_registry_wrote_itself_is_used_for_that_repository_only(
    layerpeek_env, plain_registry, hostile: HostileRegistry
):
    real = make_estargz([Member("srv/real.txt", data=b"the real file\n")])
    fake = make_estargz([Member(ATTACKER_FILE, data=b"planted\n")])
    digest = sha256(real.blob)
    with Pusher(plain_registry.url) as pusher:
        pusher.blob("trust/stargz", real.blob)
        config = config_blob(image_config([real.layer]))
        pusher.blob("trust/stargz", config)
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": real.layer.media_type,
                    "digest": digest,
                    "size": len(real.blob),
                    "annotations": dict(real.annotations),
                }
            ],
        }
        body = json.dumps(manifest).encode()
        pusher.manifest("trust/stargz", "v1", body, "application/vnd.oci.image.manifest.v1+json")
    hostile.image("evil/app", "v1", [(digest, fake.blob)], annotations=[dict(fake.annotations)])
    real_paths = [entry.path for entry in real.layer.entries]
    honest = f"{plain_registry.host}/trust/stargz:v1"
    async with RegistryClient() as client, Layerpeek(client) as peek:
        assert ATTACKER_FILE in await paths(peek, f"{hostile.host}/evil/app:v1")
        assert await paths(peek, honest) == real_paths
    async with RegistryClient() as client, Layerpeek(client) as peek:  # another process
        assert await paths(peek, honest) == real_paths


async def test_a_registry_that_names_another_registrys_digests_learns_nothing_from_the_cache(
    layerpeek_env, plain_registry, catalog: Catalog, hostile: HostileRegistry
):
    real = catalog.gzip
    async with RegistryClient() as client, Layerpeek(client) as peek:
        await paths(peek, real.ref(plain_registry.host))  # someone read the real image
        url = f"{plain_registry.url}/v2/{real.repo}/manifests/{real.digest}"
        body = httpx.get(url, headers={"Accept": real.media_type}).content
        hostile.manifest("evil/copy", "v1", body, real.media_type)  # its blobs it cannot serve
        with pytest.raises(LayerpeekError, match=r"not here|404"):
            await peek.inspect(f"{hostile.host}/evil/copy:v1")
    config_reads = [r.path for r in hostile.requests if real.config_digest in r.path]
    assert config_reads, "the config was answered from another registry's read"


def test_the_mcp_server_refuses_what_the_cli_cached(
    capsys, layerpeek_env, plain_registry, catalog: Catalog, tmp_path, monkeypatch
):
    reference = catalog.gzip.ref(plain_registry.host)
    assert cli_main(["ls", reference, "--json"]) == 0  # the CLI (unguarded) fills the cache
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)  # no .env; LAYERPEEK_ALLOW_PRIVATE is not set

    async def ask_the_server() -> list[str]:
        refusals = []
        async with Client(create_server()) as client:
            for asked in (reference, catalog.gzip.digest_ref(plain_registry.host)):
                for tool in ("inspect_image", "list_files"):
                    result = await client.call_tool(tool, {"reference": asked})
                    assert result.is_error
                    refusals.append(result.content[0].text)
        return refusals

    refusals = anyio.run(ask_the_server)
    assert len(refusals) == 4
    assert all("LAYERPEEK_ALLOW_PRIVATE" in text for text in refusals)
