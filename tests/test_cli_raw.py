"""``layerpeek manifest``, ``config`` and ``digest``: the bytes and the digest the registry
serves, checked against skopeo reading the same registry and against what was pushed."""

from __future__ import annotations

import hashlib
import subprocess

import pytest

from fixtures.hostile import OCI_MANIFEST, HostileRegistry
from fixtures.tools import require_tool
from layerpeek.cli.main import main

ARM64 = "linux/arm64/v8"


def run(capsysbinary, *argv: str) -> tuple[int, bytes, bytes]:
    status = main(list(argv))
    out, err = capsysbinary.readouterr()
    return status, out, err


def skopeo(*argv: str, platform: str | None = None) -> bytes:
    """``skopeo inspect ARGV`` against the plain-HTTP registry; ``platform`` as its overrides."""
    overrides: list[str] = []
    if platform:
        os_name, arch, *variant = platform.split("/")
        overrides = ["--override-os", os_name, "--override-arch", arch]
        overrides += ["--override-variant", variant[0]] if variant else []
    command = [require_tool("skopeo"), *overrides, "inspect", "--tls-verify=false", *argv]
    return subprocess.run(command, capture_output=True, check=True).stdout


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("image", ["multi", "multi_docker", "gzip"])
def test_manifest_is_the_bytes_skopeo_reads_raw(
    capsysbinary, layerpeek_env, plain_registry, catalog, image
):
    pushed = getattr(catalog, image)
    reference = pushed.ref(plain_registry.host)
    status, out, err = run(capsysbinary, "manifest", reference)
    assert (status, err) == (0, b"")
    assert out == skopeo("--raw", f"docker://{reference}")
    assert sha256(out) == pushed.digest


def test_manifest_of_a_platform_is_its_child_manifest(
    capsysbinary, layerpeek_env, plain_registry, catalog
):
    child = catalog.multi.children[ARM64]
    reference = catalog.multi.ref(plain_registry.host)
    status, out, _ = run(capsysbinary, "manifest", reference, "--platform", ARM64)
    assert status == 0 and sha256(out) == child.digest
    assert out == skopeo("--raw", f"docker://{child.digest_ref(plain_registry.host)}")


@pytest.mark.parametrize("platform", [None, ARM64])
def test_config_is_the_blob_skopeo_reads_raw(
    capsysbinary, layerpeek_env, plain_registry, catalog, platform
):
    reference = catalog.multi.ref(plain_registry.host)
    child = catalog.multi.children[platform or "linux/amd64"]
    status, out, err = run(
        capsysbinary, "config", reference, *(["--platform", platform] if platform else [])
    )
    assert (status, err) == (0, b"")
    assert out == skopeo("--config", "--raw", f"docker://{reference}", platform=platform)
    assert sha256(out) == child.config_digest


def test_digest_is_one_line_as_skopeo_names_it(
    capsysbinary, layerpeek_env, plain_registry, catalog
):
    reference = catalog.multi.ref(plain_registry.host)
    status, out, err = run(capsysbinary, "digest", reference)
    assert (status, err) == (0, b"")
    assert out == skopeo("--format", "{{.Digest}}", f"docker://{reference}")
    assert out == f"{catalog.multi.digest}\n".encode()
    _, out, _ = run(capsysbinary, "digest", reference, "--platform", ARM64)
    assert out == f"{catalog.multi.children[ARM64].digest}\n".encode()


def test_a_missing_tag_is_one_line_for_each(capsysbinary, layerpeek_env, plain_registry):
    for command in ("manifest", "config", "digest"):
        status, out, err = run(capsysbinary, command, f"{plain_registry.host}/test/gzip:nope")
        assert (status, out) == (3, b"")
        assert err.count(b"\n") == 1 and b"not found" in err


def test_digest_hashes_the_manifest_when_the_registry_names_none(capsysbinary, layerpeek_env):
    body = b'{"schemaVersion": 2, "mediaType": "%s", "layers": []}' % OCI_MANIFEST.encode()
    with HostileRegistry() as hostile:
        hostile.route("HEAD", r"/v2/app/manifests/1", headers={"Content-Type": OCI_MANIFEST})
        hostile.route(
            "GET", r"/v2/app/manifests/1", headers={"Content-Type": OCI_MANIFEST}, body=body
        )
        status, out, err = run(capsysbinary, "digest", f"{hostile.host}/app:1")
        methods = [request.method for request in hostile.requests]
    assert (status, out, err) == (0, f"{sha256(body)}\n".encode(), b"")
    assert methods == ["HEAD", "GET"]
