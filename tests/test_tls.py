"""HTTPS registries: a private CA is trusted through LAYERPEEK_CA_BUNDLE, and only then."""

import ipaddress

import pytest
from cryptography import x509

from fixtures.certs import write_server_certificate
from fixtures.registry import RegistryProcess
from layerpeek.core.errors import LayerpeekError, RegistryUnreachable
from layerpeek.core.layers.reader import BlobReader
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.registry.reference import parse_reference
from layerpeek.core.service import Layerpeek


@pytest.fixture(scope="module")
def tls_registry(docker_registry, registry_root, plain_registry, tmp_path_factory):
    cert, key = write_server_certificate(
        tmp_path_factory.mktemp("tls"), [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    extra = {"http": {"tls": {"certificate": str(cert), "key": str(key)}}}
    with RegistryProcess(registry_root, extra_config=extra, binary=docker_registry) as process:
        yield process, cert


async def test_private_ca_is_trusted_through_the_bundle_setting(
    monkeypatch, layerpeek_env, tls_registry, catalog
):
    process, cert = tls_registry
    monkeypatch.delenv("LAYERPEEK_PLAIN_HTTP")
    monkeypatch.setenv("LAYERPEEK_CA_BUNDLE", str(cert))
    async with RegistryClient() as client:
        report = await Layerpeek(client).inspect(catalog.zstd.ref(process.host))
    assert report.digest == catalog.zstd.digest


async def test_unknown_ca_is_refused(monkeypatch, layerpeek_env, tls_registry, catalog):
    process, _ = tls_registry
    monkeypatch.delenv("LAYERPEEK_PLAIN_HTTP")
    async with RegistryClient() as client:
        with pytest.raises(RegistryUnreachable, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
            await Layerpeek(client).inspect(catalog.zstd.ref(process.host))


async def test_a_missing_bundle_file_is_named(monkeypatch, layerpeek_env, tmp_path):
    monkeypatch.setenv("LAYERPEEK_CA_BUNDLE", str(tmp_path / "nope.pem"))
    with pytest.raises(LayerpeekError, match=r"nope\.pem"):
        RegistryClient()


async def test_bulk_windows_verify_the_registry_certificate_too(
    monkeypatch, layerpeek_env, tls_registry, catalog
):
    process, cert = tls_registry
    monkeypatch.delenv("LAYERPEEK_PLAIN_HTTP")
    monkeypatch.setenv("LAYERPEEK_CA_BUNDLE", str(cert))
    await _read_a_blob_in_bulk_windows(process, catalog)


async def test_ssl_cert_file_is_trusted_by_requests_and_bulk_windows_alike(
    monkeypatch, layerpeek_env, tls_registry, catalog
):
    """httpx trusts SSL_CERT_FILE when it is set; the bulk reader shares the client's one TLS
    context, so a blob's large ranges trust the same certificates as its first request."""
    process, cert = tls_registry
    monkeypatch.delenv("LAYERPEEK_PLAIN_HTTP")
    monkeypatch.delenv("LAYERPEEK_CA_BUNDLE", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    await _read_a_blob_in_bulk_windows(process, catalog)


async def _read_a_blob_in_bulk_windows(process, catalog) -> None:
    """Read a layer blob over HTTPS and check it came whole, through at least one bulk
    window (which opens its own TLS connections beside httpx's)."""
    layer = catalog.gzip.layers[1]
    async with RegistryClient() as client:
        ref = parse_reference(catalog.gzip.ref(process.host))
        reader = BlobReader(client, ref, layer.digest)
        data = b"".join([chunk async for chunk in reader.chunks()])
    assert data == layer.blob
    assert reader.bulk_requests >= 1
