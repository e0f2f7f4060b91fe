"""Bodies a registry sends beside the answer: error reasons and redirects.

They are read only to find a reason (or, for a redirect, not used at all), so a registry that
answers with an endless, compressed or enormous one costs a bounded read and still gives the
typed one-line error the status calls for.
"""

from __future__ import annotations

import gzip
import json
import tracemalloc

import pytest

from fixtures.hostile import Endless, HostileRegistry
from layerpeek.core.errors import NotFound, ServerError
from layerpeek.core.registry.client import MAX_REASON_BYTES, RegistryClient
from layerpeek.core.service import Layerpeek

SENT_AT_MOST = 64 << 20  # loopback socket buffers take a few MiB before the client hangs up
MANIFESTS = r"/v2/x/manifests/.*"


@pytest.fixture
def hostile() -> HostileRegistry:
    with HostileRegistry() as registry:
        yield registry


async def inspect(hostile: HostileRegistry, error: type[Exception]) -> Exception:
    async with RegistryClient() as client:
        with pytest.raises(error) as caught:
            await Layerpeek(client).inspect(f"{hostile.host}/x:latest")
    return caught.value


@pytest.mark.parametrize("method", ["HEAD", "GET"])
async def test_an_endless_error_body_is_cut_and_the_error_keeps_its_type(
    layerpeek_env, hostile, method
):
    body = Endless()
    hostile.route("GET", MANIFESTS, status=404, body=body)
    if method == "HEAD":
        hostile.route("HEAD", MANIFESTS, status=404)
    error = await inspect(hostile, NotFound)
    assert str(error) == f"manifest {hostile.host}/x:latest not found (HTTP 404 Not Found)"
    assert body.sent() <= SENT_AT_MOST


async def test_an_endless_body_on_a_server_error_is_cut_before_each_retry(layerpeek_env, hostile):
    body = Endless()
    hostile.route("HEAD", MANIFESTS, status=404)  # so that the GET for the reason is made
    hostile.route("GET", MANIFESTS, status=503, body=body)
    error = await inspect(hostile, ServerError)
    assert "HTTP 503" in str(error)
    assert body.sent() <= SENT_AT_MOST


async def test_a_redirect_with_an_endless_body_is_followed_without_reading_it(
    layerpeek_env, hostile
):
    body = Endless()
    hostile.route("HEAD", MANIFESTS, status=404)
    hostile.route(
        "GET",
        r"/v2/x/manifests/latest",
        status=307,
        body=body,
        headers={"Location": "/v2/x/manifests/moved"},
    )
    hostile.route("GET", r"/v2/x/manifests/moved", status=404)
    error = await inspect(hostile, NotFound)
    assert "HTTP 404" in str(error)
    assert body.sent() <= SENT_AT_MOST


async def test_a_compressed_error_body_is_not_inflated(layerpeek_env, hostile):
    reasons = {"errors": [{"code": "MANIFEST_UNKNOWN", "message": " " * (64 << 20)}]}
    bomb = gzip.compress(json.dumps(reasons).encode())  # ~64 KiB on the wire
    hostile.route("HEAD", MANIFESTS, status=404)
    hostile.route("GET", MANIFESTS, status=404, body=bomb, headers={"Content-Encoding": "gzip"})
    tracemalloc.start()
    try:
        error = await inspect(hostile, NotFound)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "HTTP 404" in str(error)
    assert peak < 16 << 20  # inflated, the reason alone would be 64 MiB


async def test_a_reason_of_many_errors_is_one_short_line(layerpeek_env, hostile):
    reasons = {"errors": [{"code": f"C{i}", "message": "m" * 500} for i in range(50)]}
    hostile.route("HEAD", MANIFESTS, status=404)
    hostile.route("GET", MANIFESTS, status=404, body=json.dumps(reasons).encode())
    error = await inspect(hostile, NotFound)
    assert "\n" not in str(error) and len(str(error)) < 1000
    assert str(error).startswith(f"manifest {hostile.host}/x:latest not found (C0: mmm")
    assert len(json.dumps(reasons)) < MAX_REASON_BYTES  # all of it was read: the line is cut
