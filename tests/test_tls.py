"""HTTPS registries: a private CA is trusted through LAYERPEEK_CA_BUNDLE, and only then."""

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fixtures.registry import RegistryProcess
from layerpeek.core.client import RegistryClient
from layerpeek.core.errors import LayerpeekError, RegistryUnreachable
from layerpeek.core.service import Layerpeek

pytestmark = pytest.mark.anyio


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for IP 127.0.0.1 that is its own CA (RESEARCH §1)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "layerpeek test registry")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "registry.crt", directory / "registry.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_registry(docker_registry, registry_root, plain_registry, tmp_path_factory):
    cert, key = self_signed(tmp_path_factory.mktemp("tls"))
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
