"""Which registries are asked over plain HTTP, and what a user is told when one needs it.

Docker's rule, which crane follows too: a registry on a loopback address (``localhost``,
127.0.0.0/8, ``::1``) may speak plain HTTP, so it is asked over HTTPS first and, when the
answer is not TLS at all, over plain HTTP. The client remembers such a host, so the failed
handshake is paid once per process. A loopback name is judged by how it is spelt, not by what
it resolves to: a name that resolves to 127.0.0.1 elsewhere may not on the machine that runs
layerpeek, and the answer should not depend on it.

Every other registry speaks plain HTTP only when the operator says so: an entry of
``LAYERPEEK_PLAIN_HTTP`` (Docker's insecure-registries entries: ``host``, ``host:port``, an IP
or a CIDR that contains the host's IP address), or the command line's ``--insecure``. An entry
that is none of these is refused when the settings are read, not ignored.

The network guard is a separate matter: for the bot and the MCP server a loopback registry is
still refused unless ``LAYERPEEK_ALLOW_PRIVATE`` names it, whatever its scheme.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterable, Sequence

import httpx

from layerpeek.core.errors import RegistryUnreachable
from layerpeek.core.registry.reference import host_problem

PLAIN_SETTING = "LAYERPEEK_PLAIN_HTTP"
PLAIN_FLAG = "--insecure"
_LOOPBACK_NAMES = frozenset({"localhost"})


class NoTLS(RegistryUnreachable):
    """A registry answered a TLS handshake with something that is not TLS (plain HTTP, most
    likely)."""


def entry_problem(entry: str) -> str:
    """What makes ``entry`` unusable in ``LAYERPEEK_PLAIN_HTTP``, "" if nothing."""
    try:
        ipaddress.ip_network(entry, strict=False)
        return ""
    except ValueError:
        pass
    if "://" in entry:
        return f"{entry!r} has a URL scheme: write the host[:port] alone"
    if "/" in entry:
        return f"{entry!r} is not a CIDR (an IP address, a slash, a prefix length)"
    problem = host_problem(entry)
    return f"{entry!r} is not a host, host:port, IP or CIDR: {problem}" if problem else ""


def _hostname(host: str) -> str | None:
    """The host name or address of ``host[:port]``, lower-cased; None if it cannot be one."""
    try:
        return httpx.URL(f"//{host}").host.lower()
    except httpx.InvalidURL:
        return None


def _address(hostname: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def is_loopback(host: str) -> bool:
    """Whether ``host[:port]`` is spelt as a loopback address: ``localhost``, 127.0.0.0/8 or
    ``::1`` (an IPv4-mapped IPv6 address counts as the IPv4 address it maps)."""
    hostname = _hostname(host)
    if hostname is None:
        return False
    address = _address(hostname)
    return address.is_loopback if address is not None else hostname in _LOOPBACK_NAMES


def _named(host: str, entries: Iterable[str]) -> bool:
    """Docker's insecure-registries rule: an entry is ``host:port``, a bare host (any port)
    or a CIDR that contains the host's IP address."""
    hostname = _hostname(host)
    if hostname is None:
        return False
    address = _address(hostname)
    for entry in entries:
        if entry.lower() in (host.lower(), hostname):
            return True
        if "/" in entry and address is not None:
            network = ipaddress.ip_network(entry, strict=False)
            if address.version == network.version and address in network:
                return True
    return False


class Schemes:
    """The scheme each registry host is asked over, as one client learns it.

    ``plain``: the operator's entries (``LAYERPEEK_PLAIN_HTTP`` and the CLI's ``--insecure``).
    Loopback hosts found to speak plain HTTP join them for the life of the client.
    """

    def __init__(self, plain: Sequence[str]) -> None:
        self._entries = tuple(plain)
        self._learnt: set[bytes] = set()

    def scheme(self, host: str) -> str:
        """``http`` or ``https`` for ``host[:port]``."""
        plain = _https_netloc(host) in self._learnt or _named(host, self._entries)
        return "http" if plain else "https"

    def falls_back(self, url: httpx.URL) -> bool:
        """Whether a request to ``url`` that met a non-TLS answer may go again over plain
        HTTP: an HTTPS URL of a loopback host."""
        return url.scheme == "https" and is_loopback(url.netloc.decode("ascii"))

    def plain(self, url: httpx.URL) -> httpx.URL:
        """``url`` over plain HTTP, its host remembered as speaking it. As with Docker, a
        port the reference names is kept, and without one plain HTTP is asked on port 80."""
        self._learnt.add(url.netloc.lower())
        return url.copy_with(scheme="http")


def _https_netloc(host: str) -> bytes | None:
    """``host[:port]`` as an HTTPS URL spells it (lower case, no :443), to compare hosts."""
    try:
        return httpx.URL(f"https://{host}/").netloc.lower()
    except httpx.InvalidURL:
        return None


def _tls_error(exc: BaseException) -> ssl.SSLError | None:
    """The ssl error of a failed handshake that httpx wrapped, found in the exception chain."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def caused_by_tls(exc: BaseException) -> bool:
    """Whether ``exc`` is (or was caused by) a TLS failure: retrying will not mend it."""
    return _tls_error(exc) is not None


def speaks_no_tls(exc: BaseException) -> bool:
    """Whether the TLS failure behind ``exc`` says the peer does not speak TLS at all.

    A certificate the client does not trust, a connection closed mid-handshake or an alert
    the peer sent are answers of a TLS server; any other handshake failure (OpenSSL's
    ``WRONG_VERSION_NUMBER`` for the bytes ``HTTP/1.1 400``) is a peer that speaks something
    else, most often plain HTTP.
    """
    error = _tls_error(exc)
    if error is None or isinstance(error, ssl.SSLCertVerificationError | ssl.SSLEOFError):
        return False
    return "ALERT" not in str(getattr(error, "reason", "") or "")


def no_tls_error(exc: httpx.TransportError) -> NoTLS:
    """The one line for a registry that did not answer in TLS: which setting to use."""
    host = exc.request.url.netloc.decode("ascii")
    return NoTLS(
        f"registry {host} did not answer in TLS ({exc}); if it serves plain HTTP, set "
        f"{PLAIN_SETTING}={host} (the layerpeek command: {PLAIN_FLAG})"
    )
