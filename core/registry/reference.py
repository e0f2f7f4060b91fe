"""Image references, normalised the way Docker normalises them.

``alpine`` means ``docker.io/library/alpine:latest``; ``ghcr.io/o/r@sha256:…`` names a digest;
``localhost:5000/app:1`` a registry with a port. The grammar follows distribution's
``reference`` package; every rejection names the part that is wrong.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from layerpeek.core.errors import InvalidReference

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
)
_PATH_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST_RE = re.compile(r"(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})")
_MAX_REPOSITORY = 255
# WHATWG's "ends in a number": a host whose last label is decimal or 0x-hex is an IPv4 address
# to URL parsers and to inet_aton (0177.0.0.1 and 2130706433 are both 127.0.0.1 there).
_NUMERIC_LABEL = re.compile(r"[0-9]+|0[xX][0-9a-fA-F]*")


@dataclass(frozen=True)
class Reference:
    """A parsed image reference; ``tag`` and ``digest`` may both be set (digest wins)."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """The host to talk HTTP to: Docker Hub's API lives apart from its name."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def target(self) -> str:
        """What to ask the manifests endpoint for: the digest if pinned, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def name(self) -> str:
        """``registry/repository`` without tag or digest."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _split_domain(text: str) -> tuple[str, str]:
    """Docker's rule: the first component is a registry if it looks like a host."""
    first, sep, rest = text.partition("/")
    looks_like_host = "." in first or ":" in first or first == "localhost" or first != first.lower()
    if not sep or not looks_like_host:
        return DOCKER_HUB, text
    if not _DOMAIN_RE.fullmatch(first):
        raise InvalidReference(f"invalid registry host {first!r} in {text!r}")
    problem = _host_problem(first)
    if problem:
        raise InvalidReference(f"invalid registry host {first!r} in {text!r}: {problem}")
    return (DOCKER_HUB if first in _HUB_ALIASES else first), rest


def host_problem(host: str) -> str:
    """What makes ``host[:port]`` unusable as a registry's host, "" if nothing."""
    if not _DOMAIN_RE.fullmatch(host):
        return "expected a host name, an IPv4 address or [IPv6], and an optional :port"
    return _host_problem(host)


def _host_problem(host: str) -> str:
    """What makes a grammatical ``host[:port]`` unusable, "" if nothing.

    Only canonical forms pass: an address that URL parsers and the resolver read differently
    (octal, hex, fewer than four parts) is refused here rather than failing in the HTTP
    library or reaching an address the reference does not spell.
    """
    if host.startswith("["):
        literal, _, port = host[1:].partition("]")
        port = port.removeprefix(":")
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            return f"[{literal}] is not an IPv6 address"
    else:
        name, _, port = host.partition(":")
        last = name.rsplit(".", 1)[-1]
        if _NUMERIC_LABEL.fullmatch(last) and not _is_dotted_quad(name):
            return f"{name} is not a dotted-quad IPv4 address (four parts 0-255, no leading zeros)"
    if port and not 0 < int(port) < 65536:
        return f"port {port} is not between 1 and 65535"
    return ""


def _is_dotted_quad(name: str) -> bool:
    try:
        return str(ipaddress.IPv4Address(name)) == name
    except ValueError:
        return False


def _check_repository(repository: str, original: str) -> str:
    if not repository:
        raise InvalidReference(f"missing repository name in {original!r}")
    if repository != repository.lower():
        raise InvalidReference(f"repository name must be lowercase: {original!r}")
    for component in repository.split("/"):
        if not _PATH_COMPONENT_RE.fullmatch(component):
            raise InvalidReference(
                f"invalid repository path component {component!r} in {original!r} "
                "(lowercase letters, digits and single . _ __ - separators)"
            )
    if len(repository) > _MAX_REPOSITORY:
        raise InvalidReference(f"repository name longer than {_MAX_REPOSITORY} characters")
    return repository


def _split_digest(text: str, original: str) -> tuple[str, str | None]:
    name, at, digest = text.partition("@")
    if not at:
        return text, None
    if not _DIGEST_RE.fullmatch(digest):
        raise InvalidReference(
            f"invalid digest {digest!r} in {original!r} (expected sha256: and 64 hex digits)"
        )
    return name, digest


def _split_tag(text: str, original: str) -> tuple[str, str | None]:
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon <= slash:
        return text, None
    tag = text[colon + 1 :]
    if not _TAG_RE.fullmatch(tag):
        raise InvalidReference(
            f"invalid tag {tag!r} in {original!r} (letters, digits, _ . -; at most 128)"
        )
    return text[:colon], tag


def parse_reference(text: str, *, default_tag: str | None = "latest") -> Reference:
    """Parse an image reference; without tag or digest the tag is ``default_tag``."""
    original = text
    text = text.strip()
    if not text:
        raise InvalidReference("empty image reference (expected e.g. alpine:3.20)")
    if any(c.isspace() for c in text):
        raise InvalidReference(f"image reference contains whitespace: {original!r}")
    if "://" in text:
        raise InvalidReference(_scheme_refusal(text, original))
    rest, digest = _split_digest(text, original)
    rest, tag = _split_tag(rest, original)
    registry, repository = _split_domain(rest)
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    repository = _check_repository(repository, original)
    if tag is None and digest is None:
        tag = default_tag
    return Reference(registry, repository, tag, digest)


def _scheme_refusal(text: str, original: str) -> str:
    """Why ``scheme://host/repo`` is refused, and what to write instead: for ``http://``,
    the setting that makes a registry plain HTTP (a loopback one needs none)."""
    scheme, _, rest = text.partition("://")
    said = f"image reference must not have a URL scheme: {original!r}; write {rest}"
    if scheme.lower() != "http":
        return said
    return (
        f"{said}, and for plain HTTP set LAYERPEEK_PLAIN_HTTP={rest.partition('/')[0]} "
        "(the layerpeek command: --insecure; loopback registries need neither)"
    )


def is_digest(text: str) -> bool:
    """Whether ``text`` is a digest layerpeek can verify: sha256 or sha512, lowercase hex."""
    return _DIGEST_RE.fullmatch(text) is not None


def parse_repository(text: str) -> Reference:
    """Parse a repository name (for tag listing): no tag or digest allowed."""
    ref = parse_reference(text, default_tag=None)
    if ref.tag or ref.digest:
        raise InvalidReference(f"expected a repository without tag or digest, got {text!r}")
    return ref
