"""The network guard: unit checks, then real connections to local HTTP and HTTPS servers."""

from __future__ import annotations

import ipaddress
import re
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpcore
import httpx
import pytest
from cryptography import x509

from fixtures.certs import write_server_certificate
from layerpeek.core.errors import LayerpeekError, NetworkRefused
from layerpeek.core.registry import httpx_pool
from layerpeek.core.registry.auth import RegistryAuth, TokenCache
from layerpeek.core.registry.guard import NetworkGuard, make_transport

Respond = Callable[[BaseHTTPRequestHandler], tuple[int, dict[str, str]]]


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


# -- NetworkGuard.check ----------------------------------------------------------------------


@pytest.mark.parametrize("address", ["93.184.216.34", "140.82.112.33", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    NetworkGuard([]).check("registry.example", [_ip(address)], 443)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "a loopback"),
        ("::1", "a loopback"),
        ("::ffff:127.0.0.1", "a loopback"),
        ("10.1.2.3", "a private"),
        ("172.16.0.1", "a private"),
        ("192.168.1.1", "a private"),
        ("fd00::1", "a private"),
        ("169.254.169.254", "a link-local"),
        ("fe80::1", "a link-local"),
        ("100.64.0.1", "a non-public"),
        ("0.0.0.0", "an unspecified"),
        ("224.0.0.1", "a multicast"),
        ("240.0.0.1", "a reserved"),
    ],
)
def test_non_public_addresses_are_refused(address: str, kind: str) -> None:
    with pytest.raises(NetworkRefused) as caught:
        NetworkGuard([]).check("evil.example", [_ip(address)], 443)
    assert "refused to connect to evil.example:443: evil.example resolves to " in str(caught.value)
    assert f", {kind} address, " in str(caught.value)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        pytest.param("64:ff9b::a00:1", "(embedding 10.0.0.1), a private", id="nat64"),
        pytest.param("64:ff9b::7f00:1", "(embedding 127.0.0.1), a loopback", id="nat64-loop"),
        pytest.param("64:ff9b::a9fe:a9fe", "(embedding 169.254.169.254), a link-local", id="md"),
        pytest.param("64:ff9b:1::808:808", "64:ff9b:1::808:808, a local-use NAT64", id="nat64l"),
        pytest.param("64:ff9b:1:a00:1::", "a local-use NAT64", id="nat64-local-48"),
        pytest.param("::a00:1", "(embedding 10.0.0.1), a private", id="ipv4-compatible"),
        pytest.param("::7f00:1", "(embedding 127.0.0.1), a loopback", id="compatible-loop"),
        pytest.param("::ffff:0:c0a8:101", "(embedding 192.168.1.1), a private", id="siit"),
        pytest.param("2002:a00:1::1", "(embedding 10.0.0.1), a private", id="6to4"),
        pytest.param("2002:7f00:1::", "(embedding 127.0.0.1), a loopback", id="6to4-loop"),
        pytest.param("2001:0:808:808:0:f5ff:f5ff:fffe", "a Teredo", id="teredo"),
        pytest.param("2001:0:a00:1::1", "a Teredo", id="teredo-private-server"),
        pytest.param("fec0::1", "fec0::1, a site-local", id="site-local"),
        pytest.param("feff::1", "a site-local", id="site-local-top"),
    ],
)
def test_ipv6_forms_of_non_public_addresses_are_refused(address: str, kind: str) -> None:
    with pytest.raises(NetworkRefused) as caught:
        NetworkGuard([]).check("evil.example", [_ip(address)], 443)
    message = str(caught.value)
    assert message.startswith(
        f"refused to connect to evil.example:443: evil.example resolves to {address}"
    )
    assert f"{kind} address, " in message and "\n" not in message


@pytest.mark.parametrize(
    "address", ["64:ff9b::808:808", "::808:808", "::ffff:0:808:808", "2002:808:808::1"]
)
def test_ipv6_forms_of_public_ipv4_addresses_pass(address: str) -> None:
    NetworkGuard([]).check("registry.example", [_ip(address)], 443)


@pytest.mark.parametrize(
    ("entry", "address"),
    [("10.0.0.0/8", "64:ff9b::a09:807"), ("64:ff9b::/96", "64:ff9b::a09:807")],
)
def test_an_allow_entry_may_name_the_embedded_or_the_ipv6_address(entry: str, address: str) -> None:
    NetworkGuard([entry]).check("reg.internal", [_ip(address)], 443)
    with pytest.raises(NetworkRefused):
        NetworkGuard(["192.168.0.0/16"]).check("reg.internal", [_ip(address)], 443)


def test_refusal_is_one_line_naming_host_address_and_the_setting() -> None:
    with pytest.raises(NetworkRefused) as caught:
        NetworkGuard([]).check("127.0.0.1", [_ip("127.0.0.1")], 5000)
    assert str(caught.value) == (
        "refused to connect to 127.0.0.1:5000: 127.0.0.1 is a loopback address, which "
        "layerpeek does not reach for references from untrusted input; "
        "set LAYERPEEK_ALLOW_PRIVATE=127.0.0.1:5000 to allow it"
    )


def test_ipv6_host_is_bracketed_in_the_suggestion() -> None:
    with pytest.raises(NetworkRefused, match=r"LAYERPEEK_ALLOW_PRIVATE=\[::1\]:5000 to"):
        NetworkGuard([]).check("::1", [_ip("::1")], 5000)


def test_one_private_address_among_public_ones_is_refused() -> None:
    with pytest.raises(NetworkRefused, match=r"resolves to 10\.0\.0\.7,"):
        NetworkGuard([]).check("rebind.example", [_ip("93.184.216.34"), _ip("10.0.0.7")], 443)


@pytest.mark.parametrize(
    ("entry", "host", "address", "port", "allowed"),
    [
        ("127.0.0.1:5000", "127.0.0.1", "127.0.0.1", 5000, True),
        ("127.0.0.1:5000", "127.0.0.1", "127.0.0.1", 5001, False),
        ("127.0.0.1:5000", "localhost", "127.0.0.1", 5000, True),
        ("127.0.0.1", "127.0.0.1", "127.0.0.1", 9, True),
        ("10.0.0.0/8", "reg.internal", "10.9.8.7", 443, True),
        ("10.0.0.0/8", "reg.internal", "192.168.0.1", 443, False),
        ("fd00::/8", "reg.internal", "fd12::1", 443, True),
        ("[::1]:5000", "::1", "::1", 5000, True),
        ("::1", "::1", "::1", 5000, True),
        ("reg.internal", "REG.internal.", "10.0.0.1", 443, True),
        ("reg.internal:5000", "reg.internal", "10.0.0.1", 5000, True),
        ("reg.internal:5000", "reg.internal", "10.0.0.1", 443, False),
        ("reg.internal", "other.internal", "10.0.0.1", 443, False),
    ],
)
def test_allow_list_entries(entry: str, host: str, address: str, port: int, allowed: bool) -> None:
    guard = NetworkGuard([" ", entry])
    if allowed:
        guard.check(host, [_ip(address)], port)
    else:
        with pytest.raises(NetworkRefused):
            guard.check(host, [_ip(address)], port)


@pytest.mark.parametrize("entry", ["http://reg/", "a b", "[::1", "host:port:1", "user@host"])
def test_a_malformed_allow_entry_is_an_error_naming_it(entry: str) -> None:
    with pytest.raises(LayerpeekError, match=re.escape(f"LAYERPEEK_ALLOW_PRIVATE entry {entry!r}")):
        NetworkGuard([entry])


# -- real connections ------------------------------------------------------------------------


def _ok(req: BaseHTTPRequestHandler) -> tuple[int, dict[str, str]]:
    return 200, {}


@contextmanager
def serve(
    respond: Respond = _ok, tls: ssl.SSLContext | None = None
) -> Iterator[tuple[int, list[str]]]:
    """A stdlib HTTP(S) server on 127.0.0.1:0 in a thread; yields its port and paths seen."""
    seen: list[str] = []

    class _Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            status, headers = respond(self)
            self.send_response(status)
            for name, value in {**headers, "Content-Length": "0"}.items():
                self.send_header(name, value)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Keep test output clean."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    # A short poll interval only makes shutdown() prompt; nothing waits on time.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _client(guard: NetworkGuard | None, **kwargs: object) -> httpx.AsyncClient:
    verify = kwargs.pop("verify", True)
    transport = make_transport(guard, verify)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, **kwargs)  # type: ignore[arg-type]


async def test_loopback_is_refused_before_anything_is_sent() -> None:
    with serve() as (port, seen):
        async with _client(NetworkGuard([])) as client:
            with pytest.raises(NetworkRefused) as caught:
                await client.get(f"http://127.0.0.1:{port}/v2/")
    assert f"set LAYERPEEK_ALLOW_PRIVATE=127.0.0.1:{port} to allow it" in str(caught.value)
    assert seen == []


async def test_localhost_is_resolved_and_refused() -> None:
    with serve() as (port, seen):
        async with _client(NetworkGuard([])) as client:
            with pytest.raises(NetworkRefused) as caught:
                await client.get(f"http://localhost:{port}/v2/")
    assert "localhost resolves to " in str(caught.value)
    assert f"LAYERPEEK_ALLOW_PRIVATE=localhost:{port} " in str(caught.value)
    assert seen == []


@pytest.mark.parametrize("entry", ["127.0.0.1:{port}", "127.0.0.0/8", "127.0.0.1"])
async def test_allow_listed_loopback_goes_through(entry: str) -> None:
    with serve() as (port, seen):
        async with _client(NetworkGuard([entry.format(port=port)])) as client:
            response = await client.get(f"http://127.0.0.1:{port}/v2/")
    assert response.status_code == 200
    assert seen == ["/v2/"]


async def test_allow_listed_host_name_goes_through() -> None:
    with serve() as (port, seen):
        async with _client(NetworkGuard([f"localhost:{port}"])) as client:
            response = await client.get(f"http://localhost:{port}/v2/")
    assert response.status_code == 200
    assert seen == ["/v2/"]


async def test_redirect_from_an_allowed_host_to_a_refused_one_is_refused() -> None:
    with serve() as (inner_port, inner_seen):

        def redirect(req: BaseHTTPRequestHandler) -> tuple[int, dict[str, str]]:
            return 307, {"Location": f"http://127.0.0.1:{inner_port}/secret"}

        with serve(redirect) as (port, seen):
            guard = NetworkGuard([f"127.0.0.1:{port}"])
            async with _client(guard, follow_redirects=True) as client:
                with pytest.raises(NetworkRefused, match=f"127.0.0.1:{inner_port}"):
                    await client.get(f"http://127.0.0.1:{port}/v2/x/blobs/sha256:0")
    assert seen == ["/v2/x/blobs/sha256:0"]
    assert inner_seen == []


async def test_a_token_realm_on_a_refused_address_is_refused() -> None:
    with serve() as (realm_port, realm_seen):

        def challenge(req: BaseHTTPRequestHandler) -> tuple[int, dict[str, str]]:
            realm = f"http://127.0.0.1:{realm_port}/token"
            return 401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="s"'}

        with serve(challenge) as (port, seen):
            auth = RegistryAuth(lambda host: None, TokenCache(), lambda host: "none")
            async with _client(NetworkGuard([f"127.0.0.1:{port}"]), auth=auth) as client:
                with pytest.raises(NetworkRefused, match=f"127.0.0.1:{realm_port}"):
                    await client.get(f"http://127.0.0.1:{port}/v2/")
    assert seen == ["/v2/"]
    assert realm_seen == []


async def test_without_a_guard_the_transport_is_plain() -> None:
    with serve() as (port, seen):
        async with _client(None) as client:
            response = await client.get(f"http://127.0.0.1:{port}/v2/")
    assert response.status_code == 200
    assert seen == ["/v2/"]


# -- the httpx internal the guard is installed through (core/registry/httpx_pool.py) ---------

_ADAPT = "the network guard cannot be installed; adapt core/registry/httpx_pool.py"


class _RecordingBackend(httpcore.AsyncNetworkBackend):
    """httpcore's own backend, noting each connection it is asked to open."""

    def __init__(self) -> None:
        self.connected: list[tuple[str, int]] = []
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: object = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connected.append((host, port))
        return await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def test_httpx_keeps_the_connection_pool_the_guard_replaces() -> None:
    assert httpx_pool.has_pool(httpx.AsyncHTTPTransport()), (
        f"httpx {httpx.__version__} keeps no httpcore pool in "
        f"AsyncHTTPTransport.{httpx_pool.POOL}: {_ADAPT}"
    )


async def test_requests_connect_through_the_backend_the_pool_was_given() -> None:
    backend = _RecordingBackend()
    transport = httpx.AsyncHTTPTransport()
    httpx_pool.use_backend(transport, backend, httpx.create_ssl_context(), httpx.Limits())
    with serve() as (port, seen):
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.get(f"http://127.0.0.1:{port}/v2/")
    assert backend.connected == [("127.0.0.1", port)], (
        f"httpx {httpx.__version__} no longer sends a transport's requests through "
        f"AsyncHTTPTransport.{httpx_pool.POOL}: {_ADAPT}"
    )
    assert response.status_code == 200
    assert seen == ["/v2/"]


def test_a_transport_without_the_pool_is_refused_rather_than_left_unguarded() -> None:
    transport = httpx.AsyncHTTPTransport()
    delattr(transport, httpx_pool.POOL)  # as an httpx that keeps its pool elsewhere would be
    with pytest.raises(LayerpeekError, match=r"^cannot guard connections with httpx "):
        httpx_pool.use_backend(
            transport, _RecordingBackend(), httpx.create_ssl_context(), httpx.Limits()
        )


def _localhost_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate valid for the name ``localhost`` only (no IP SAN)."""
    return write_server_certificate(directory, [x509.DNSName("localhost")])


async def test_tls_verifies_and_sends_sni_for_the_host_name_not_the_address(
    tmp_path: Path,
) -> None:
    cert_path, key_path = _localhost_certificate(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert_path, key_path)
    sni: list[str | None] = []
    server_tls.sni_callback = lambda sock, name, ctx: sni.append(name)
    client_tls = ssl.create_default_context(cafile=str(cert_path))

    with serve(tls=server_tls) as (port, seen):
        async with _client(NetworkGuard(["localhost"]), verify=client_tls) as client:
            response = await client.get(f"https://localhost:{port}/v2/")
    assert response.status_code == 200
    assert seen == ["/v2/"]
    assert sni == ["localhost"]
