"""The network guard: no loopback, private or link-local connections from untrusted references.

The MCP server and the bot take image references from chat messages and models, so a
reference like ``169.254.169.254/x:y`` must not make us probe the host's network. The guard
is enforced where the socket is opened, after our own DNS lookup, and the connection goes to
the very address that was vetted: checking a name first and letting the connect resolve it
again would leave a DNS-rebinding gap. Redirects and token realms pass through the same
transport, so they are checked too. The CLI, run by a person on their own machine, uses a
plain transport.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import anyio
import httpcore
import httpx

from .errors import LayerpeekError, NetworkRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ALLOW_SETTING = "LAYERPEEK_ALLOW_PRIVATE"
# httpx's own defaults (httpx._config.DEFAULT_LIMITS), spelled out for the swapped pool.
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)


@dataclass(frozen=True)
class _Allowed:
    """One allow-list entry: a network (an IP is a /32 or /128) or a host name, maybe a port."""

    network: IPNetwork | None
    hostname: str
    port: int | None

    def permits(self, host: str, address: IPAddress, port: int | None) -> bool:
        if self.port is not None and self.port != port:
            return False
        return address in self.network if self.network is not None else self.hostname == host


class NetworkGuard:
    """Refuses non-public addresses unless an operator allow-listed the host or network.

    Entries: "registry.local", "registry.local:5000", "127.0.0.1:5000", "[::1]:5000",
    "10.0.0.0/8", "fd00::/8". A host name entry trusts whatever that name resolves to.
    """

    def __init__(self, allow: Sequence[str] = ()) -> None:
        self._allowed = tuple(_parse_entry(entry) for entry in allow if entry.strip())

    def check(self, host: str, addresses: Sequence[IPAddress], port: int | None = None) -> None:
        """Raise NetworkRefused unless every address of ``host`` is public or allowed.

        Every address, not any: a name resolving to one public and one private address is
        the shape of a rebinding attack, and the connect may pick either.
        """
        name = _normal_host(host)
        for address in addresses:
            address = _unmapped(address)
            if _is_public(address) or any(a.permits(name, address, port) for a in self._allowed):
                continue
            raise NetworkRefused(_refusal(name, address, port))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves, vets, then connects to a vetted address.

    TLS still verifies and sends SNI for the original host name: httpcore calls
    ``start_tls(server_hostname=request sni_hostname or origin host)`` on the stream we
    return (httpcore/_async/connection.py), never the address we connected to.
    """

    def __init__(
        self, guard: NetworkGuard, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._guard = guard
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host, port, timeout)
        self._guard.check(host, addresses, port)
        return await self._connect_any(addresses, port, timeout, local_address, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)

    async def _connect_any(
        self,
        addresses: Sequence[IPAddress],
        port: int,
        timeout: float | None,
        local_address: str | None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None,
    ) -> httpcore.AsyncNetworkStream:
        """Try the vetted addresses in resolver order, as a plain connect would."""
        for address in addresses[:-1]:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout):
                continue
        return await self._inner.connect_tcp(
            str(addresses[-1]), port, timeout, local_address, socket_options
        )


def make_transport(
    guard: NetworkGuard | None, verify: ssl.SSLContext | str | bool = True
) -> httpx.AsyncHTTPTransport:
    """An httpx transport that enforces ``guard`` on every connection (plain when None).

    Pass it as ``AsyncClient(transport=...)``: with an explicit transport httpx also stops
    mounting proxies from the environment, which would otherwise connect for us, unguarded.
    """
    ssl_context = httpx.create_ssl_context(verify=verify)
    transport = httpx.AsyncHTTPTransport(verify=ssl_context, limits=_LIMITS)
    if guard is not None:
        _swap_pool(transport, GuardedBackend(guard), ssl_context)
    return transport


def _swap_pool(
    transport: httpx.AsyncHTTPTransport,
    backend: httpcore.AsyncNetworkBackend,
    ssl_context: ssl.SSLContext,
) -> None:
    """Give ``transport`` a pool that connects through ``backend``; same settings otherwise.

    httpx 0.28's AsyncHTTPTransport takes no ``network_backend``, so this replaces its
    private ``_pool`` (the one object its handle_async_request and close use). httpx is
    pinned <0.29; if the attribute ever moves, fail loudly rather than run unguarded.
    """
    if not isinstance(getattr(transport, "_pool", None), httpcore.AsyncConnectionPool):
        raise RuntimeError("this httpx has no AsyncHTTPTransport._pool: cannot install the guard")
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=_LIMITS.max_connections,
        max_keepalive_connections=_LIMITS.max_keepalive_connections,
        keepalive_expiry=_LIMITS.keepalive_expiry,
        http1=True,
        http2=False,
        network_backend=backend,
    )


def connect(
    guard: NetworkGuard | None, host: str, port: int, timeout: float | None
) -> socket.socket:
    """A blocking TCP connection to ``host``, vetted by ``guard`` like ``GuardedBackend``'s.

    For code that reads in a worker thread (the bulk blob reader): resolve once, check every
    address, connect to a vetted one in resolver order. Without a guard, a plain connect.
    """
    if guard is None:
        return socket.create_connection((host, port), timeout)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    guard.check(host, addresses, port)
    failure: OSError = OSError(f"cannot resolve {host}: no addresses")
    for address in addresses:
        try:
            return socket.create_connection((str(address), port), timeout)
        except OSError as exc:
            failure = exc
    raise failure


async def _resolve(host: str, port: int, timeout: float | None) -> list[IPAddress]:
    """The host's addresses, deduplicated in resolver order, errors as httpcore's own."""
    try:
        with anyio.fail_after(timeout):
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
    except OSError as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    addresses = dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos)
    if not addresses:
        raise httpcore.ConnectError(f"cannot resolve {host}: no addresses")
    return list(addresses)


def _parse_entry(entry: str) -> _Allowed:
    """ "host", "host:port", "[v6]:port", an IP or a CIDR; anything else is a config error."""
    entry = entry.strip()
    try:
        return _Allowed(ipaddress.ip_network(entry, strict=False), "", None)
    except ValueError:
        pass
    host, port = _split_port(entry)
    try:
        return _Allowed(ipaddress.ip_network(host), "", port)
    except ValueError:
        pass
    if not host or any(c in host for c in "/[]@: "):
        raise LayerpeekError(
            f"{ALLOW_SETTING} entry {entry!r} is not a host, host:port, IP or CIDR"
        )
    return _Allowed(None, _normal_host(host), port)


def _split_port(entry: str) -> tuple[str, int | None]:
    host, sep, port = entry.rpartition(":")
    if not sep or not port.isdigit() or (":" in host and not host.startswith("[")):
        return entry, None
    return host.removeprefix("[").removesuffix("]"), int(port)


def _normal_host(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


def _unmapped(address: IPAddress) -> IPAddress:
    """::ffff:10.0.0.1 is 10.0.0.1 to the kernel; judge it as such."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_public(address: IPAddress) -> bool:
    # is_global is False for private, loopback, link-local, reserved, CGNAT (100.64/10)...
    # but True for IPv4 multicast, which is no registry either.
    return address.is_global and not address.is_multicast


def _kind(address: IPAddress) -> str:
    kinds = {
        "unspecified": address.is_unspecified,
        "loopback": address.is_loopback,
        "link-local": address.is_link_local,
        "multicast": address.is_multicast,
        "reserved": address.is_reserved,
        "private": address.is_private,
    }
    return next((name for name, hit in kinds.items() if hit), "non-public")


def _refusal(host: str, address: IPAddress, port: int | None) -> str:
    """One line: which host, which address and why, and the setting that allows it."""
    shown = f"[{host}]" if ":" in host else host
    target = f"{shown}:{port}" if port is not None else shown
    resolved = f"{host} is" if host == str(address) else f"{host} resolves to {address},"
    kind = _kind(address)
    article = "an" if kind[0] in "aeiou" else "a"
    return (
        f"refused to connect to {target}: {resolved} {article} {kind} address, which "
        f"layerpeek does not reach for references from untrusted input; "
        f"set {ALLOW_SETTING}={target} to allow it"
    )
