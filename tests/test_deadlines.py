"""Deadlines and fairness against a registry that answers slowly on purpose: a small document
has a total deadline (not one per read), a layer stream a minimum rate (in httpx and in bulk
windows), each registry host a share of the connections, and each bot user and MCP caller a
few calls running at once. Nothing here measures time: each test asserts which error came, or
that one answer arrived while other calls were still waiting."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator

import anyio
import anyio.to_thread
import discord
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from fixtures.bot import allow_local_registry, command_payload, recorded_bot, shown
from fixtures.hostile import OCI_MANIFEST, HostileRegistry, sha256
from layerpeek.bot.app import LayerpeekBot
from layerpeek.bot.settings import BotSettings
from layerpeek.core.errors import RegistryTooSlow
from layerpeek.core.layers.reader import FIRST_WINDOW, BlobReader
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.registry.reference import parse_reference
from layerpeek.core.settings import Settings
from layerpeek.server.main import _parser, build, http_options

SLOW = "slow/app"
DRIP = 0.02
"""Seconds between two bytes of a dripped body: 50 bytes/s."""


@pytest.fixture
def hostile() -> Iterator[HostileRegistry]:
    with HostileRegistry() as registry:
        yield registry


def settings(tmp_path, **values) -> Settings:
    """The client's settings for a test: plain HTTP to 127.0.0.1, a cache of its own."""
    return Settings(plain_http=("127.0.0.1",), cache_dir=tmp_path / "cache", **values)


def manifest_bytes() -> bytes:
    config = sha256(b"{}")
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config},
            "layers": [],
        }
    ).encode()


class Arrivals:
    """Counts the slow bodies a hostile route has started sending; tests wait on the count."""

    def __init__(self) -> None:
        self._started = threading.Semaphore(0)

    def endless(self) -> Callable[[], Iterable[bytes]]:
        """A body for a Route: counts its start, then one byte per pause for minutes."""

        def body() -> Iterable[bytes]:
            self._started.release()
            for _ in range(10_000):
                yield b" "

        return body

    async def wait_for(self, count: int) -> None:
        for _ in range(count):
            await anyio.to_thread.run_sync(self._started.acquire)


def endless_manifest(hostile: HostileRegistry) -> Arrivals:
    """Every manifest of ``SLOW`` drips for minutes; returns what counts their starts."""
    arrivals = Arrivals()
    hostile.route(
        "GET",
        rf"/v2/{SLOW}/manifests/.+",
        headers={"Content-Type": OCI_MANIFEST},
        body=arrivals.endless(),
        drip_seconds=DRIP,
    )
    return arrivals


# -- a total deadline for small documents ------------------------------------------------------


async def test_a_manifest_dripped_slowly_fails_at_its_total_deadline(hostile, tmp_path):
    hostile.route(
        "GET",
        rf"/v2/{SLOW}/manifests/1\.0",
        headers={"Content-Type": OCI_MANIFEST},
        body=manifest_bytes(),
        drip_seconds=DRIP,  # ~6 s for the whole manifest, each byte well within the read timeout
    )
    async with RegistryClient(settings(tmp_path, deadline=1.0)) as client:
        with pytest.raises(RegistryTooSlow) as caught:
            await client.get_manifest(parse_reference(f"{hostile.host}/{SLOW}:1.0"))
    message = str(caught.value)
    assert message.startswith(
        f"registry {hostile.host} did not send all of manifest {hostile.host}/{SLOW}:1.0 "
        "within 1 s (LAYERPEEK_DEADLINE): "
    )
    assert "\n" not in message


async def test_headers_dripped_slowly_fail_at_the_deadline(hostile, tmp_path):
    hostile.route(
        "GET",
        rf"/v2/{SLOW}/manifests/1\.0",
        headers={"Content-Type": OCI_MANIFEST},
        body=manifest_bytes(),
        drip_seconds=DRIP,
        drip_headers=True,
    )
    async with RegistryClient(settings(tmp_path, deadline=1.0)) as client:
        with pytest.raises(RegistryTooSlow) as caught:
            await client.get_manifest(parse_reference(f"{hostile.host}/{SLOW}:1.0"))
    assert str(caught.value) == (
        f"registry {hostile.host} did not answer for manifest {hostile.host}/{SLOW}:1.0 "
        "within 1 s (LAYERPEEK_DEADLINE)"
    )


async def test_a_token_dripped_slowly_names_the_token_server(hostile, tmp_path, layerpeek_env):
    realm = f"{hostile.url}/token"
    challenge = f'Bearer realm="{realm}",service="hostile",scope="repository:{SLOW}:pull"'
    hostile.route(
        "GET",
        rf"/v2/{SLOW}/manifests/1\.0",
        status=401,
        headers={"WWW-Authenticate": challenge, "Content-Type": "application/json"},
        body=b'{"errors": [{"code": "UNAUTHORIZED"}]}',
    )
    token = json.dumps({"token": "t" * 200}).encode()
    hostile.route(
        "GET", "/token", headers={"Content-Type": "application/json"}, body=token, drip_seconds=DRIP
    )
    async with RegistryClient(settings(tmp_path, deadline=1.0)) as client:
        with pytest.raises(RegistryTooSlow) as caught:
            await client.get_manifest(parse_reference(f"{hostile.host}/{SLOW}:1.0"))
    assert str(caught.value) == (
        f"token server {realm} (for registry {hostile.host}) did not send a token for "
        f"manifest {hostile.host}/{SLOW}:1.0 within 1 s (LAYERPEEK_DEADLINE)"
    )


# -- a minimum rate for layer streams ----------------------------------------------------------


def rate_error(hostile: HostileRegistry, digest: str) -> str:
    return (
        f"registry {hostile.host} sent blob {digest} too slowly: less than 1.0 KiB/s on "
        "average over 1 s (LAYERPEEK_MIN_RATE, LAYERPEEK_RATE_WINDOW)"
    )


async def test_a_layer_dripped_below_the_minimum_rate_fails(hostile, tmp_path):
    data = bytes(range(256)) * 3  # 768 bytes at 50 bytes/s: ~15 s to the end
    digest = sha256(data)
    hostile.route("GET", rf"/v2/{SLOW}/blobs/{digest}", body=data, drip_seconds=DRIP)
    ref = parse_reference(f"{hostile.host}/{SLOW}:1.0")
    async with RegistryClient(settings(tmp_path, min_rate=1024, rate_window=1.0)) as client:
        reader = BlobReader(client, ref, digest)
        with pytest.raises(RegistryTooSlow) as caught:
            async for _ in reader.chunks():
                pass
    assert str(caught.value) == rate_error(hostile, digest)
    assert reader.requests == 1 and reader.position < len(data)


async def test_a_bulk_window_dripped_below_the_minimum_rate_fails(hostile, tmp_path):
    # The first window comes at once through httpx; the next, on the bulk route, drips.
    data = bytes(range(256)) * (FIRST_WINDOW // 256) + b"x" * 768
    digest = sha256(data)
    hostile.blob(SLOW, digest, data, drip_seconds=DRIP, drip_from=FIRST_WINDOW)
    ref = parse_reference(f"{hostile.host}/{SLOW}:1.0")
    async with RegistryClient(settings(tmp_path, min_rate=1024, rate_window=1.0)) as client:
        reader = BlobReader(client, ref, digest)
        with pytest.raises(RegistryTooSlow) as caught:
            async for _ in reader.chunks():
                pass
    assert str(caught.value) == rate_error(hostile, digest)
    assert reader.bulk_requests == 1 and FIRST_WINDOW <= reader.position < len(data)


async def test_a_bulk_window_whose_headers_drip_fails_at_the_deadline(hostile, tmp_path):
    """A per-read timeout cannot bound a blocking read in a worker thread; the deadline does."""
    data = bytes(range(256)) * (FIRST_WINDOW // 256) + b"x" * 768
    digest = sha256(data)
    hostile.blob(SLOW, digest, data, drip_seconds=DRIP, drip_from=FIRST_WINDOW, drip_headers=True)
    ref = parse_reference(f"{hostile.host}/{SLOW}:1.0")
    async with RegistryClient(settings(tmp_path, deadline=1.0)) as client:
        reader = BlobReader(client, ref, digest)
        with pytest.raises(RegistryTooSlow) as caught:
            async for _ in reader.chunks():
                pass
    last = len(data) - 1  # the first window said how long the blob is
    assert str(caught.value) == (
        f"registry {hostile.host} did not answer for bytes {FIRST_WINDOW}-{last} of blob "
        f"{digest} within 1 s (LAYERPEEK_DEADLINE)"
    )
    assert reader.position == FIRST_WINDOW


# -- connections per registry host -------------------------------------------------------------


async def test_slow_requests_to_one_registry_leave_connections_for_another(
    hostile, tmp_path, plain_registry, catalog
):
    """More slow requests than the whole connection pool holds (100) wait on one registry;
    a request to another registry is answered while every one of them is still waiting."""
    limit = 10  # the least allowed
    arrivals = endless_manifest(hostile)
    slow = parse_reference(f"{hostile.host}/{SLOW}:1.0")
    finished: list[str] = []
    # A short timeout: a request that waits for a pooled connection gives up quickly.
    options = settings(tmp_path, host_connections=limit, timeout=2.0)
    async with RegistryClient(options) as client, anyio.create_task_group() as waiting:

        async def fetch_slow() -> None:
            await client.get_manifest(slow)
            finished.append("slow")

        for _ in range(105):
            waiting.start_soon(fetch_slow)
        await arrivals.wait_for(limit)
        answer = await client.get_manifest(parse_reference(catalog.gzip.ref(plain_registry.host)))
        assert answer.digest == catalog.gzip.digest
        assert finished == []
        assert len(hostile.requests) == limit  # the others wait their turn, unsent
        waiting.cancel_scope.cancel()


async def test_a_request_waiting_for_a_busy_registry_fails_at_its_deadline(hostile, tmp_path):
    limit = 10
    arrivals = endless_manifest(hostile)
    slow = parse_reference(f"{hostile.host}/{SLOW}:1.0")
    async with (
        RegistryClient(settings(tmp_path, host_connections=limit)) as client,
        anyio.create_task_group() as waiting,
    ):
        for _ in range(limit):
            waiting.start_soon(client.get_manifest, slow)
        await arrivals.wait_for(limit)
        url = client.url(slow, "manifests/2.0")
        with pytest.raises(RegistryTooSlow) as caught:
            await client.send("GET", url, "manifest 2.0", until=anyio.current_time() + 0.3)
        waiting.cancel_scope.cancel()
    assert str(caught.value) == (
        f"registry {hostile.host} is busy: all 10 requests layerpeek has open to it at once "
        "(LAYERPEEK_HOST_CONNECTIONS) were still running when manifest 2.0 had waited 0.3 s "
        "(LAYERPEEK_DEADLINE)"
    )
    assert len(hostile.requests) == limit


# -- work running at once per bot user ---------------------------------------------------------


def slash(bot: LayerpeekBot, name: str, user: int, **options: str) -> asyncio.Task[None]:
    """Feed ``/name`` to discord.py's dispatch; the task its command tree started for it."""
    before = set(asyncio.all_tasks())
    bot._connection.parse_interaction_create(command_payload(name, user, **options))
    [task] = [t for t in asyncio.all_tasks() - before if t.get_name() == "CommandTree-invoker"]
    return task


async def test_a_bot_user_has_two_commands_running_at_most(
    layerpeek_env, monkeypatch, hostile, plain_registry, catalog
):
    allow_local_registry(monkeypatch, layerpeek_env)
    arrivals = endless_manifest(hostile)
    alice, bob = 4001, 4002
    async with recorded_bot(BotSettings(page_size=5)) as (bot, adapter):
        # Two tags: the same one twice would share one request (``core.flight``).
        slow = [slash(bot, "peek", alice, image=f"{hostile.host}/{SLOW}:1.{i}") for i in range(2)]
        await arrivals.wait_for(2)
        third = slash(bot, "peek", alice, image=catalog.gzip.ref(plain_registry.host))
        await third
        refused = adapter.requests[-1]
        other = slash(bot, "peek", bob, image=catalog.gzip.ref(plain_registry.host))
        await other
        assert not any(task.done() for task in slow)
        for task in slow:
            task.cancel()
        await asyncio.gather(*slow, return_exceptions=True)
    method, path, answer = refused
    assert (method, path) == ("POST", "/interactions/{webhook_id}/{webhook_token}/callback")
    assert answer["type"] == 4
    assert answer["data"]["flags"] == discord.MessageFlags(ephemeral=True).value
    assert shown(answer["data"]["content"]) == (
        "you already have 2 commands running: wait for one to finish, then try again"
    )
    answered = [payload for _, _, payload in adapter.requests if payload and payload.get("embeds")]
    assert any("app/bin" in str(payload) for payload in answered)  # bob's listing arrived
    # Each of alice's two reads: a HEAD (not found here), then the GET that drips.
    reads = [r for r in hostile.requests if r.method == "GET" and "/manifests/" in r.path]
    assert len(reads) == 2


# -- tool calls running at once per MCP caller -------------------------------------------------


@contextlib.asynccontextmanager
async def mcp_app() -> AsyncIterator[object]:
    """What ``layerpeek-mcp --http`` serves, with its lifespan running."""
    args = _parser().parse_args(["--http"])
    server, server_settings = build(args)
    app = server.streamable_http_app(host=args.host, **http_options(args, server_settings))
    async with app.router.lifespan_context(app):
        yield app


@contextlib.asynccontextmanager
async def mcp_client(app, address: str, headers: dict[str, str]) -> AsyncIterator[Client]:
    """An MCP client whose requests come from ``address``."""
    transport = httpx2.ASGITransport(app=app, client=(address, 40000))
    async with httpx2.AsyncClient(transport=transport, headers=headers) as http:
        endpoint = streamable_http_client("http://127.0.0.1:8000/mcp", http_client=http)
        async with Client(endpoint, mode="legacy") as client:
            yield client


@pytest.fixture
def mcp_env(layerpeek_env, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("LAYERPEEK_ALLOW_PRIVATE", "127.0.0.1")
    monkeypatch.setenv("LAYERPEEK_MCP_CONCURRENT_CALLS", "2")
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("token", [None, "team-token"])
async def test_an_mcp_caller_has_its_limit_of_tool_calls_running(
    mcp_env, monkeypatch, hostile, plain_registry, catalog, token
):
    """Two slow calls from one caller (an address, or a bearer token whatever the address);
    a third from that caller is refused, another caller's is answered meanwhile."""
    if token:
        monkeypatch.setenv("LAYERPEEK_MCP_TOKEN", token)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    arrivals = endless_manifest(hostile)
    real = catalog.gzip.ref(plain_registry.host)
    async with (
        mcp_app() as app,
        mcp_client(app, "127.0.0.5", headers) as first,
        mcp_client(app, "127.0.0.6", headers) as second,
        anyio.create_task_group() as waiting,
    ):
        for i in range(2):  # two tags: the same one twice would share one request
            waiting.start_soon(
                first.call_tool, "inspect_image", {"reference": f"{hostile.host}/{SLOW}:1.{i}"}
            )
        await arrivals.wait_for(2)
        again = await (second if token else first).call_tool("inspect_image", {"reference": real})
        if not token:
            other = await second.call_tool("inspect_image", {"reference": real})
            assert (
                not other.is_error
                and other.structured_content["image"]["digest"] == catalog.gzip.digest
            )
        waiting.cancel_scope.cancel()
    who = "token" if token else "client"
    assert again.is_error
    assert again.content[0].text == (
        f"too many calls at once: this {who} already has 2 tool calls running; wait for one "
        "to finish, then try again (LAYERPEEK_MCP_CONCURRENT_CALLS)"
    )
