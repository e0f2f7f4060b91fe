"""`inspect` against the real registry: every manifest kind, platforms, history, config."""

import pytest

from layerpeek.core.errors import InvalidReference, NotFound, PlatformNotFound


async def test_docker_schema2_image_reports_layers_and_steps(peek, plain_registry, catalog):
    image = catalog.gzip
    report = await peek.inspect(image.ref(plain_registry.host))
    assert report.digest == image.digest == report.manifest_digest
    assert report.platform == "linux/amd64" and report.platforms == ["linux/amd64"]
    assert [(x.digest, x.size, x.media_type) for x in report.layers] == [
        (layer.digest, layer.size, layer.media_type) for layer in image.layers
    ]
    steps = [h["created_by"] for h in image.config["history"] if not h.get("empty_layer")]
    assert [x.created_by for x in report.layers] == steps


@pytest.mark.parametrize("name", ["zstd", "plain", "history"])
async def test_oci_images_report_their_layers(peek, plain_registry, catalog, name):
    image = getattr(catalog, name)
    report = await peek.inspect(image.ref(plain_registry.host))
    assert [x.digest for x in report.layers] == [layer.digest for layer in image.layers]


async def test_history_aligns_empty_layers_and_config_is_reported(peek, plain_registry, catalog):
    image = catalog.history
    report = await peek.inspect(image.ref(plain_registry.host))
    raw = image.config["history"]
    assert [h.empty_layer for h in report.history] == [bool(h.get("empty_layer")) for h in raw]
    assert [h.layer for h in report.history if not h.empty_layer] == [0, 1]
    assert all(h.layer is None for h in report.history if h.empty_layer)
    config = image.config["config"]
    assert report.config.user == config["User"]
    assert report.config.env == config["Env"]
    assert report.config.labels == config["Labels"]
    assert report.config.exposed_ports == sorted(config["ExposedPorts"])
    assert report.config.entrypoint == config["Entrypoint"]


@pytest.mark.parametrize("index_name", ["multi", "multi_docker"])
async def test_index_resolves_default_platform_and_lists_all(
    peek, plain_registry, catalog, index_name
):
    index = getattr(catalog, index_name)
    report = await peek.inspect(index.ref(plain_registry.host))
    assert report.digest == index.digest
    assert report.platforms == index.platforms
    assert report.platform == "linux/amd64"
    assert report.manifest_digest == index.children["linux/amd64"].digest


async def test_arm64_means_v8(peek, plain_registry, catalog):
    report = await peek.inspect(catalog.multi.ref(plain_registry.host), "linux/arm64")
    assert report.platform == "linux/arm64/v8"
    assert report.manifest_digest == catalog.multi.children["linux/arm64/v8"].digest


async def test_missing_platform_lists_the_available_ones(peek, plain_registry, catalog):
    with pytest.raises(PlatformNotFound) as caught:
        await peek.inspect(catalog.multi.ref(plain_registry.host), "linux/s390x")
    assert caught.value.available == tuple(catalog.multi.platforms)
    assert "linux/arm/v7" in str(caught.value) and "unknown" not in str(caught.value)


async def test_all_platforms_side_by_side(peek, plain_registry, catalog):
    report = await peek.inspect_platforms(catalog.multi.ref(plain_registry.host))
    assert [p.platform for p in report.platforms] == catalog.multi.platforms
    for summary in report.platforms:
        child = catalog.multi.children[summary.platform]
        assert summary.manifest_digest == child.digest
        assert summary.layer_count == len(child.layers)
        assert summary.total_size == sum(layer.size for layer in child.layers)


async def test_digest_reference_is_verified_and_accepted(peek, plain_registry, catalog):
    report = await peek.inspect(catalog.zstd.digest_ref(plain_registry.host))
    assert report.digest == catalog.zstd.digest


async def test_unknown_tag_and_repository_carry_the_registry_code(peek, plain_registry):
    with pytest.raises(NotFound, match="MANIFEST_UNKNOWN"):
        await peek.inspect(f"{plain_registry.host}/test/gzip:no-such-tag")
    with pytest.raises(NotFound, match="not found"):
        await peek.inspect(f"{plain_registry.host}/no/such-repo:latest")
    with pytest.raises(NotFound, match="NAME_UNKNOWN"):
        await peek.tags(f"{plain_registry.host}/no/such-repo")


async def test_invalid_reference_is_refused_before_any_request(peek):
    with pytest.raises(InvalidReference, match="lowercase"):
        await peek.inspect("127.0.0.1:1/Upper/Case")
