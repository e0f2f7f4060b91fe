"""Download links fail loudly: the endpoint under uvicorn on 127.0.0.1, fetched by httpx.

A real server matters here: what a client sees when the endpoint gives up mid-body is a cut
connection, and only a real HTTP exchange shows whether that cut comes before the body is
complete (a failed download) or after it (a download that looks good). The lying blobs come
from a registry of the attacker's own (tests/fixtures/hostile.py); honest ones from the real
registry.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from fixtures.bot import allow_local_registry
from fixtures.catalog import LATE_TXT
from fixtures.hostile import (
    HostileRegistry,
    layer_tar,
    sha256,
    sized_image,
)
from layerpeek.core.links import LinkTarget, sign
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.service import Layerpeek
from layerpeek.core.settings import Settings
from layerpeek.links.endpoint import LinkServer
from layerpeek.links.settings import LinkSettings
from layerpeek.links.window import SlidingWindow

SECRET = "the link secret of these tests"
FAR = 4_000_000_000  # an expiry no test reaches
CUT = "peer closed connection without sending complete message body"


@pytest.fixture
def hostile() -> AsyncIterator[HostileRegistry]:
    with HostileRegistry() as registry:
        yield registry


@pytest.fixture
def guarded(layerpeek_env, monkeypatch):
    """The guarded core of a front end, allowed to reach the registries on 127.0.0.1."""
    allow_local_registry(monkeypatch, layerpeek_env)


@asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` under uvicorn on 127.0.0.1, and an httpx client for it.

    The socket listens before uvicorn starts, so the first request waits in the backlog
    instead of racing the server's start."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        port = sock.getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            yield http
    finally:
        server.should_exit = True
        await task
        sock.close()


@asynccontextmanager
async def endpoint(**limits: int) -> AsyncIterator[tuple[LinkServer, httpx.AsyncClient]]:
    """A link server on the guarded core, served by uvicorn."""
    settings = LinkSettings(url="https://links.example", secret=SECRET, **limits)
    async with RegistryClient(Settings(), guarded=True) as client, Layerpeek(client) as peek:
        server = LinkServer(peek, settings)
        async with serving(server.app) as http:
            yield server, http


def link(reference: str, layer: int | None, path: str | None = None, user=7) -> str:
    return "/d/" + sign(SECRET.encode(), LinkTarget(reference, layer, path, user, FAR))


async def receive(http: httpx.AsyncClient, path: str) -> tuple[httpx.Response, bytes, str | None]:
    """The response, the bytes that arrived, and how the transfer failed (None: it did not)."""
    got = bytearray()
    async with http.stream("GET", path) as response:
        try:
            async for chunk in response.aiter_raw():
                got += chunk
        except httpx.RemoteProtocolError as error:
            return response, bytes(got), str(error)
    return response, bytes(got), None


def lying_image(hostile: HostileRegistry, name: str, honest: bytes, sent: bytes) -> str:
    """An image whose layer claims ``honest``'s digest and size while ``sent`` is served."""
    return hostile.image(name, "v1", [(sha256(honest), sent)])


def blob_gets(hostile: HostileRegistry, data: bytes) -> int:
    """How many times the attacker's registry was asked for the blob ``data`` claims to be."""
    wanted = f"/blobs/{sha256(data)}"
    return sum(1 for r in hostile.requests if r.method == "GET" and wanted in r.path)


# -- a blob that is not what its digest says ---------------------------------------------------


async def test_a_blob_that_does_not_match_its_digest_is_a_failed_transfer(
    guarded, hostile, plain_registry, catalog
):
    noise = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(32768))  # 1 MiB
    honest = layer_tar({"noise.bin": noise})
    sent = bytearray(honest)
    sent[len(sent) // 2] ^= 0xFF  # one flipped byte, same length: only the digest can tell
    digest = lying_image(hostile, "evil/app", honest, bytes(sent))
    async with endpoint(max_bytes=8 << 20) as (_, http):
        good = await receive(http, link(catalog.gzip.ref(plain_registry.host), 1))
        lying = await receive(http, link(f"{hostile.host}/evil/app@{digest}", 0))
    response, body, failure = good
    assert response.status_code == 200 and failure is None
    assert body == catalog.gzip.layers[1].blob
    response, body, failure = lying
    assert response.status_code == 200  # the headers went out before the last byte arrived
    assert response.headers["content-length"] == str(len(honest))
    assert failure is not None and failure.startswith(CUT)
    assert len(body) < len(sent) and bytes(sent).startswith(body)


async def test_a_blob_in_one_piece_that_lies_sends_no_byte(guarded, hostile):
    honest = layer_tar({"etc/motd": b"welcome\n"})
    digest = lying_image(hostile, "evil/tiny", honest, honest[:-1] + bytes([honest[-1] ^ 1]))
    async with endpoint() as (_, http):
        response, body, failure = await receive(http, link(f"{hostile.host}/evil/tiny@{digest}", 0))
    assert response.status_code == 200 and body == b""
    assert failure is not None and failure.startswith(CUT)


# -- sizes refused before anything is sent -----------------------------------------------------


@pytest.mark.parametrize("size", [0, -5])
async def test_a_layer_whose_manifest_size_is_not_positive_is_refused(guarded, hostile, size):
    data = layer_tar({"etc/motd": b"hello\n"})
    digest = sized_image(hostile, "odd/size", data, size)
    async with endpoint() as (_, http):
        response = await http.get(link(f"{hostile.host}/odd/size@{digest}", 0))
    assert response.status_code == 502  # the manifest parser reads a negative size as 0
    assert response.text == (
        "layer 0: the manifest gives its size as 0 bytes; a layer blob has at least one, "
        "so the image's manifest is wrong\n"
    )
    assert blob_gets(hostile, data) == 0


# -- HEAD ---------------------------------------------------------------------------------------


async def test_head_answers_the_headers_without_spending_a_download(guarded, hostile):
    data = layer_tar({"etc/motd": b"hello\n"})
    digest = hostile.image("team/app", "v1", [(sha256(data), data)])
    path = link(f"{hostile.host}/team/app@{digest}", 0)
    async with endpoint(user_rate=2) as (_, http):
        heads = [await http.head(path) for _ in range(5)]
        fetched = [await http.get(path) for _ in range(3)]
        after = await http.head(path)
    assert {(h.status_code, h.headers["content-length"], h.content) for h in heads} == {
        (200, str(len(data)), b"")
    }
    assert 'filename="layer-0-' in heads[0].headers["content-disposition"]
    assert [f.status_code for f in fetched] == [200, 200, 429]
    assert fetched[0].content == data
    assert after.status_code == 429  # HEAD says what a GET would meet
    assert blob_gets(hostile, data) == 2  # the two GETs; no HEAD read the blob


async def test_head_on_a_file_link_spends_no_download(guarded, plain_registry, catalog):
    path = link(catalog.gzip.ref(plain_registry.host), None, "app/data/late.txt")
    async with endpoint(user_rate=1) as (_, http):
        head = await http.head(path)
        got = await http.get(path)
    assert head.status_code == 200 and head.content == b""
    assert 'filename="late.txt"' in head.headers["content-disposition"]
    assert got.status_code == 200 and got.content == LATE_TXT


# -- the window behind the quota ----------------------------------------------------------------


def test_the_window_forgets_keys_that_have_been_idle_for_a_window():
    now = [0.0]
    window = SlidingWindow(1, 10.0, clock=lambda: now[0])
    for key in range(1000):
        assert window.wait(("link", key)) == 0.0
    assert window.wait("asking", record=False) == 0.0
    assert len(window) == 1000
    now[0] = 10.0
    assert window.wait("new") == 0.0
    assert len(window) == 1
