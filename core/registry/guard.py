"""The network guard: no loopback, private or link-local connections from untrusted references.

The MCP server and the bot take image references from chat messages and models, so a
reference like ``169.254.169.254/x:y`` must not make us probe the host's network. The guard
is enforced where the socket is opened, after our own DNS lookup, and the connection goes to
the very address that was vetted: checking a name first and letting the connect resolve it
again would leave a DNS-rebinding gap. Redirects and token realms pass through the same
transport, so they are checked too. An IPv6 address that carries an IPv4 one (NAT64, 6to4,
IPv4-mapped, -compatible or -translated) is judged by the IPv4 address it reaches. The CLI, run
by a person on their own machine, uses a plain transport.
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

from layerpeek.core.errors import LayerpeekError, NetworkRefused
from layerpeek.core.registry.httpx_pool import use_backend

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ALLOW_SETTING = "LAYERPEEK_ALLOW_PRIVATE"
# IPv6 forms whose last 32 bits are an IPv4 address that the connection reaches: IPv4-mapped
# (RFC 4291), IPv4-translated for SIIT (RFC 2765), NAT64's well-known prefix (RFC 6052) and the
# deprecated IPv4-compatible form (RFC 4291; :: and ::1 are themselves, not 0.0.0.0/0.0.0.1).
# 6to4 (2002::/16, RFC 3056) carries its IPv4 address in bits 16-47 (``sixtofour``).
_EMBEDS_LAST_32_BITS = tuple(
    ipaddress.IPv6Network(prefix)
    for prefix in ("::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96", "::/96")
)
_NOT_EMBEDDING = frozenset({ipaddress.IPv6Address("::"), ipaddress.IPv6Address("::1")})
# Prefixes refused whatever follows them (unless allow-listed). Local-use NAT64 (RFC 8215)
# lets each network pick where in the /48 its IPv4 bits sit, so they cannot be read out;
# it is local by definition. Teredo carries a server address and a client address XORed
# with 0xffffffff, and a connection goes through a relay to the client's NAT: neither
# embedded address alone says where it ends up, and no registry is reached over Teredo.
# Site-local (fec0::/10) is deprecated but still routed inside sites.
_NEVER_PUBLIC = {
    ipaddress.IPv6Network("64:ff9b:1::/48"): "local-use NAT64",
    ipaddress.IPv6Network("2001::/32"): "Teredo",
    ipaddress.IPv6Network("fec0::/10"): "site-local",
}
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)
"""httpx's own defaults, spelled out for the pool ``httpx_pool.use_backend`` installs."""


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
            embedded = _embedded_ipv4(address)
            judged = embedded or address
            if _is_public(judged) or self._permits(name, (address, judged), port):
                continue
            raise NetworkRefused(_refusal(name, address, embedded, port))

    def _permits(self, host: str, forms: Sequence[IPAddress], port: int | None) -> bool:
        """An entry may name the address as resolved or the IPv4 address it embeds."""
        return any(a.permits(host, form, port) for a in self._allowed for form in forms)


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
        use_backend(transport, GuardedBackend(guard), ssl_context, _LIMITS)
    return transport


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


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address that a connection to ``address`` reaches, for the IPv6 forms that
    carry one: the kernel (IPv4-mapped, IPv4-compatible), a NAT64 gateway or SIIT translator,
    or a 6to4 relay delivers it there, so it is judged by the IPv4 rules. None otherwise."""
    if isinstance(address, ipaddress.IPv4Address) or address in _NOT_EMBEDDING:
        return None
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in network for network in _EMBEDS_LAST_32_BITS):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _never_public(address: IPAddress) -> str:
    """The name of a prefix in ``_NEVER_PUBLIC`` holding ``address``; "" for none."""
    return next((kind for net, kind in _NEVER_PUBLIC.items() if address in net), "")


def _is_public(address: IPAddress) -> bool:
    # is_global is False for private, loopback, link-local, reserved, CGNAT (100.64/10)...
    # but True for IPv4 multicast, which is no registry either, and for the prefixes that
    # Python's table does not know as special (site-local fec0::/10).
    return address.is_global and not address.is_multicast and not _never_public(address)


def _kind(address: IPAddress) -> str:
    kinds = {
        _never_public(address): True,
        "unspecified": address.is_unspecified,
        "loopback": address.is_loopback,
        "link-local": address.is_link_local,
        "multicast": address.is_multicast,
        "reserved": address.is_reserved,
        "private": address.is_private,
    }
    return next((name for name, hit in kinds.items() if name and hit), "non-public")


def _refusal(
    host: str, address: IPAddress, embedded: ipaddress.IPv4Address | None, port: int | None
) -> str:
    """One line: which host, which address (and the IPv4 address it embeds) and why, and the
    setting that allows it."""
    shown = f"[{host}]" if ":" in host else host
    target = f"{shown}:{port}" if port is not None else shown
    named = f"{address} (embedding {embedded})" if embedded else str(address)
    resolved = f"{named} is" if host == str(address) else f"{host} resolves to {named},"
    kind = _kind(embedded or address)
    article = "an" if kind[0] in "aeiou" else "a"
    return (
        f"refused to connect to {target}: {resolved} {article} {kind} address, which "
        f"layerpeek does not reach for references from untrusted input; "
        f"set {ALLOW_SETTING}={target} to allow it"
    )
