"""The fixtures are real: registries answer like registries, the token server's tokens open
exactly what they grant, the proxy's faults and byte counts are what they claim, and the
pushed images hold the headers they were built to hold."""

from __future__ import annotations

import gzip
import hashlib
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import zstandard

from fixtures.catalog import BOMB_SIZE, LATE_TXT
from fixtures.images import (
    MANIFEST_ACCEPT,
    Member,
    Pusher,
    image_config,
    make_layer,
    push_blob,
    push_image,
    seeded_bytes,
    sha256_digest,
)
from fixtures.registry import RegistryProcess
from fixtures.token_server import TokenServer

ACCEPT = {"Accept": MANIFEST_ACCEPT}


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One client for the module: building an httpx.Client costs ~80 ms (its TLS context)."""
    with httpx.Client() as client:
        yield client


def _anonymous_token(http: httpx.Client, server: TokenServer, scope: str) -> str:
    response = http.get(server.realm, params={"service": server.service, "scope": scope})
    response.raise_for_status()
    return response.json()["token"]


def _blob_url(base: str, repo: str, digest: str) -> str:
    return f"{base}/v2/{repo}/blobs/{digest}"


def _tar_typeflags(tar: bytes) -> set[bytes]:
    """Typeflags of every ustar/GNU header block (magic at 257) in a tar stream."""
    return {
        tar[i + 156 : i + 157]
        for i in range(0, len(tar), 512)
        if tar[i + 257 : i + 262] == b"ustar"
    }


# -- registries ----------------------------------------------------------------------------


def test_plain_registry_serves_v2_without_credentials(http, plain_registry):
    assert http.get(f"{plain_registry.url}/v2/").status_code == 200


def test_plain_registry_serves_the_pushed_index(http, plain_registry, catalog):
    response = http.get(f"{plain_registry.url}/v2/test/multi/manifests/latest", headers=ACCEPT)
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == catalog.multi.digest
    assert catalog.multi.platforms == ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"]


def test_basic_registry_challenges_then_accepts_alice(http, basic_registry):
    anonymous = http.get(f"{basic_registry.url}/v2/")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert http.get(f"{basic_registry.url}/v2/", auth=("alice", "wonderland")).status_code == 200
    assert http.get(f"{basic_registry.url}/v2/", auth=("alice", "wrong")).status_code == 401


def test_token_registry_challenges_with_realm_and_service(http, token_registry, token_server):
    response = http.get(f"{token_registry.url}/v2/")
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith(f'Bearer realm="{token_server.realm}"')
    assert f'service="{token_server.service}"' in challenge


def test_anonymous_token_for_the_repository_opens_its_manifest(http, token_registry, token_server):
    gzip_image = token_registry.catalog.gzip
    token = _anonymous_token(http, token_server, "repository:test/gzip:pull")
    response = http.get(
        f"{token_registry.url}/v2/test/gzip/manifests/latest",
        headers={**ACCEPT, "Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == gzip_image.digest


def test_token_for_another_repository_is_insufficient_scope(http, token_registry, token_server):
    token = _anonymous_token(http, token_server, "repository:test/zstd:pull")
    response = http.get(
        f"{token_registry.url}/v2/test/gzip/manifests/latest",
        headers={**ACCEPT, "Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 401
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


def test_anonymous_cannot_pull_private_but_alice_can(http, token_registry, token_server):
    url = f"{token_registry.url}/v2/private/secret/manifests/latest"
    scope = {"service": token_server.service, "scope": "repository:private/secret:pull"}
    anonymous = _anonymous_token(http, token_server, scope["scope"])
    refused = http.get(url, headers={**ACCEPT, "Authorization": f"Bearer {anonymous}"})
    assert refused.status_code == 401
    alice = http.get(token_server.realm, params=scope, auth=("alice", "wonderland")).json()
    allowed = http.get(url, headers={**ACCEPT, "Authorization": f"Bearer {alice['token']}"})
    assert allowed.status_code == 200


def test_token_server_speaks_containerd_forms_and_logs_requests(http, token_server):
    token_server.reset()
    form = {"service": token_server.service, "scope": "repository:test/gzip:pull"}
    wrong = http.post(
        token_server.realm,
        data={**form, "grant_type": "password", "username": "alice", "password": "nope"},
    )
    assert wrong.status_code == 401
    assert wrong.json()["details"] == "incorrect username or password"
    offline = {"grant_type": "password", "username": "alice", "password": "wonderland"}
    granted = http.post(token_server.realm, data={**form, **offline, "access_type": "offline"})
    refresh = granted.json()["refresh_token"]
    renewed = http.post(
        token_server.realm, data={**form, "grant_type": "refresh_token", "refresh_token": refresh}
    )
    assert renewed.status_code == 200
    assert {"token", "access_token", "expires_in", "issued_at"} <= renewed.json().keys()
    log = token_server.requests
    assert [(r.grant_type, r.user, r.status) for r in log] == [
        ("password", None, 401),
        ("password", "alice", 200),
        ("refresh_token", "alice", 200),
    ]


def test_registry_extra_config_adds_the_redirect_middleware(http, registry_root, catalog):
    redirect = {"storage": [{"name": "redirect", "options": {"baseurl": "http://cdn.invalid/"}}]}
    layer = catalog.gzip.layers[0]
    with RegistryProcess(registry_root, extra_config={"middleware": redirect}) as registry:
        response = http.get(_blob_url(registry.url, "test/gzip", layer.digest))
    assert response.status_code == 307
    assert response.headers["Location"].startswith("http://cdn.invalid/")


def test_registry_that_cannot_start_reports_its_stderr(docker_registry, registry_root):
    bad_address = {"http": {"addr": "127.0.0.1:notaport"}}
    with pytest.raises(RuntimeError, match="did not start") as failure:
        RegistryProcess(registry_root, extra_config=bad_address, binary=docker_registry)
    assert "notaport" in str(failure.value)


# -- the proxy -------------------------------------------------------------------------------


def test_proxy_injects_a_response_without_forwarding(http, fault_proxy, catalog):
    layer = catalog.gzip.layers[0]
    url = _blob_url(fault_proxy.url, "test/gzip", layer.digest)
    fault_proxy.inject(r"/blobs/", 429, headers={"Retry-After": "1"}, body=b"slow down")
    limited, ok = http.get(url), http.get(url)
    assert (limited.status_code, limited.headers["Retry-After"], limited.content) == (
        429,
        "1",
        b"slow down",
    )
    assert ok.status_code == 200
    assert sha256_digest(ok.content) == layer.digest
    assert [r.fault for r in fault_proxy.requests] == ["inject", None]


def test_proxy_cut_drops_the_connection_and_counts_what_it_sent(http, fault_proxy, catalog):
    layer = catalog.gzip.layers[1]
    url = _blob_url(fault_proxy.url, "test/gzip", layer.digest)
    fault_proxy.cut_after(r"/blobs/sha256:", 1000)
    with pytest.raises(httpx.RemoteProtocolError), http.stream("GET", url) as response:
        assert response.headers["Content-Length"] == str(layer.size)
        response.read()
    assert http.get(url).content == layer.blob
    assert fault_proxy.body_bytes(r"/blobs/") == 1000 + layer.size
    assert [r.body_bytes for r in fault_proxy.requests] == [1000, layer.size]


def test_proxy_passes_ranges_through_and_counts_only_the_range(http, fault_proxy, catalog):
    layer = catalog.gzip.layers[1]
    url = _blob_url(fault_proxy.url, "test/gzip", layer.digest)
    response = http.get(url, headers={"Range": "bytes=100-199"})
    assert response.status_code == 206
    assert response.content == layer.blob[100:200]
    (record,) = fault_proxy.requests
    assert (record.range, record.status, record.body_bytes) == ("bytes=100-199", 206, 100)


def test_proxy_serves_concurrent_keep_alive_requests(http, fault_proxy, catalog):
    layer = catalog.gzip.layers[1]
    url = _blob_url(fault_proxy.url, "test/gzip", layer.digest)
    starts = [i * 4096 for i in range(16)]
    with ThreadPoolExecutor(4) as pool:

        def fetch(start: int) -> bytes:
            return http.get(url, headers={"Range": f"bytes={start}-{start + 4095}"}).content

        bodies = list(pool.map(fetch, starts))
    assert bodies == [layer.blob[start : start + 4096] for start in starts]
    assert fault_proxy.body_bytes("/blobs/") == 16 * 4096


def test_blob_pushed_through_the_proxy_reads_back_intact(http, fault_proxy, plain_registry):
    data = seeded_bytes(7, 300_000)
    digest = push_blob(fault_proxy.url, "test/roundtrip", data)
    assert "PUT" in [r.method for r in fault_proxy.requests]  # Location came back via the proxy
    body = http.get(_blob_url(plain_registry.url, "test/roundtrip", digest)).content
    assert hashlib.sha256(body).hexdigest() == digest.removeprefix("sha256:")


def test_push_image_reaches_the_basic_registry_with_credentials(http, basic_registry):
    layer = make_layer([Member("pushed.txt", data=b"pushed with a password\n")])
    alice = ("alice", "wonderland")
    blobs = [(layer.blob, layer.media_type)]
    digest = push_image(
        basic_registry.url, "test/pushed", "basic", blobs, image_config([layer]), auth=alice
    )
    url = f"{basic_registry.url}/v2/test/pushed/manifests/basic"
    assert http.get(url, headers=ACCEPT, auth=alice).headers["Docker-Content-Digest"] == digest


def test_pusher_reaches_the_token_registry_with_a_minted_token(http, token_registry, token_server):
    layer = make_layer([Member("pushed.txt", data=b"pushed with a token\n")])
    bearer = {"Authorization": f"Bearer {token_server.push_token('test/pushed')}"}
    with Pusher(token_registry.url, headers=bearer) as pusher:
        child = pusher.image(
            "test/pushed", [], [(layer.blob, layer.media_type)], image_config([layer])
        )
        platform = {"os": "linux", "architecture": "amd64"}
        index = pusher.index(
            "test/pushed", ["index"], [(child.digest, child.size, child.media_type, platform)]
        )
    url = f"{token_registry.url}/v2/test/pushed/manifests/index"
    response = http.get(url, headers={**ACCEPT, **bearer})
    assert response.headers["Docker-Content-Digest"] == index.digest


# -- the images -----------------------------------------------------------------------------


def test_gzip_image_has_gnu_long_name_headers_and_a_late_file(catalog):
    first, second = catalog.gzip.layers
    assert {b"L", b"K"} <= _tar_typeflags(gzip.decompress(first.blob))
    assert second.files["app/data/late.txt"] == LATE_TXT
    assert second.entries[-1].path == "app/data/late.txt"


def test_zstd_image_has_pax_global_and_extended_headers(catalog):
    tar = zstandard.ZstdDecompressor().decompressobj().decompress(catalog.zstd.layers[0].blob)
    assert {b"g", b"x"} <= _tar_typeflags(tar)


def test_bomb_is_small_and_claims_its_full_size(catalog):
    blob = catalog.bad.bomb.layers[0].blob
    (isize,) = struct.unpack("<I", blob[-4:])
    assert len(blob) < 1 << 20
    assert isize == (BOMB_SIZE + 512 + 1024) & 0xFFFFFFFF
