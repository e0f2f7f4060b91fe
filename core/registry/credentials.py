"""Registry credentials from the standard docker config, resolved the way Docker resolves them.

Docker looks in ``$DOCKER_CONFIG/config.json`` (else ``~/.docker/config.json``) and picks one
store per registry: ``credHelpers[registry]``, else ``credsStore``, else the inline ``auths``
map. A helper is the ``docker-credential-NAME`` program speaking a tiny stdin/stdout protocol.
Nothing here caches: the caller (the registry auth) resolves each host once.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from layerpeek.core.errors import LayerpeekError

# Docker stores Docker Hub's credentials under its v1 index URL whatever name the user typed.
HUB_SERVER_URL = "https://index.docker.io/v1/"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
# A helper that waits for a GUI prompt (keychain, pass/gpg-agent) must not hang us forever.
HELPER_TIMEOUT = 30.0
# docker-credential-helpers' ErrCredentialsNotFound text; Docker matches on it too.
_NOT_FOUND = "credentials not found"
# A helper's Username when Secret is an OAuth identity (refresh) token, not a password.
_IDENTITY_TOKEN_USER = "<token>"


@dataclass(frozen=True, repr=False)
class Credentials:
    """What to authenticate with at one registry, and where it came from (for messages)."""

    username: str
    password: str
    identity_token: str | None = None
    source: str = ""

    def __repr__(self) -> str:
        """Show who and from where, never a secret: reprs end up in logs and tracebacks."""
        token = "None" if self.identity_token is None else "'***'"
        return (
            f"Credentials(username={self.username!r}, password='***', "
            f"identity_token={token}, source={self.source!r})"
        )

    __str__ = __repr__


def config_path(config_dir: str | None = None) -> Path:
    """The docker config file Docker itself would read."""
    base = config_dir or os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker"
    return Path(base) / "config.json"


def server_url(registry: str) -> str:
    """The key Docker stores ``registry``'s credentials under (Hub's legacy v1 URL)."""
    return HUB_SERVER_URL if _hostname(registry) == "docker.io" else registry


def load_credentials(registry: str, *, config_dir: str | None = None) -> Credentials | None:
    """Credentials for ``registry`` (a host or host:port), or None when there are none."""
    path = config_path(config_dir)
    config = _read_config(path)
    if config is None:
        return None
    helper, kind = _helper_for(config, registry)
    if helper:
        return _from_helper(helper, registry, f"docker-credential-{helper} ({kind} in {path})")
    entry = _auths_entry(config, registry, path)
    return None if entry is None else _from_auths(entry, registry, path)


def describe_lookup(registry: str, *, config_dir: str | None = None) -> str:
    """Where credentials for ``registry`` were looked for, phrased for a 401 message."""
    path = config_path(config_dir)
    config = _read_config(path)
    if config is None:
        return f"no docker config at {path}"
    helper, kind = _helper_for(config, registry)
    if helper:
        return f"no credentials for {registry} from docker-credential-{helper} ({kind} in {path})"
    return f"no credentials for {registry} in {path}"


def _hostname(key: str) -> str:
    """Docker's ConvertToHostname, plus the Hub aliases: keys match by host[:port] only."""
    host = urlsplit(key).netloc if "://" in key else key.split("/", 1)[0]
    host = host.lower()
    return "docker.io" if host in _HUB_ALIASES else host


def _read_config(path: Path) -> dict[str, Any] | None:
    """The parsed config, None when absent; a broken one is an error naming the file."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LayerpeekError(f"cannot read docker config {path}: {exc}") from None
    if not isinstance(config, dict) or not _well_formed(config):
        raise LayerpeekError(f"cannot read docker config {path}: not a docker config object")
    return config


def _well_formed(config: dict[str, Any]) -> bool:
    return (
        isinstance(config.get("auths", {}), dict)
        and isinstance(config.get("credHelpers", {}), dict)
        and isinstance(config.get("credsStore", ""), str)
    )


def _helper_for(config: dict[str, Any], registry: str) -> tuple[str, str]:
    """(helper name, which setting named it); ("", "") means the inline ``auths``."""
    wanted = _hostname(registry)
    for key, name in config.get("credHelpers", {}).items():
        if _hostname(key) == wanted and isinstance(name, str) and name:
            return name, "credHelpers"
    store = config.get("credsStore", "")
    return (store, "credsStore") if store else ("", "")


def _auths_entry(config: dict[str, Any], registry: str, path: Path) -> dict[str, Any] | None:
    """The ``auths`` entry for ``registry``: the exact key first, then any equal host."""
    auths: dict[str, Any] = config.get("auths", {})
    wanted = server_url(registry)
    key = (
        wanted
        if wanted in auths
        else next((k for k in auths if _hostname(k) == _hostname(registry)), None)
    )
    if key is None:
        return None
    entry = auths[key]
    if not isinstance(entry, dict):
        raise LayerpeekError(f"cannot read docker config {path}: auths[{key!r}] is not an object")
    return entry


def _from_auths(entry: dict[str, Any], registry: str, path: Path) -> Credentials | None:
    """Decode an inline entry: base64 ``auth`` "user:pass" wins over username/password."""
    username, password = str(entry.get("username") or ""), str(entry.get("password") or "")
    if entry.get("auth"):
        username, password = _decode_auth(str(entry["auth"]), registry, path)
    token = entry.get("identitytoken") or None
    if not (username or password or token):
        return None
    return Credentials(username, password, None if token is None else str(token), str(path))


def _decode_auth(value: str, registry: str, path: Path) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    username, sep, password = decoded.partition(":")
    if not sep:
        raise LayerpeekError(
            f"cannot read docker config {path}: the auth of {registry} is not base64 'user:pass'"
        )
    return username, password


def _from_helper(helper: str, registry: str, source: str) -> Credentials | None:
    """Ask ``docker-credential-HELPER get`` for ``registry``; None if it has nothing."""
    program = f"docker-credential-{helper}"
    try:
        result = subprocess.run(
            [program, "get"],
            input=server_url(registry),
            capture_output=True,
            text=True,
            timeout=HELPER_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise LayerpeekError(f"credential helper {program} is not on PATH ({source})") from None
    except subprocess.TimeoutExpired:
        raise LayerpeekError(
            f"credential helper {program} did not answer within {HELPER_TIMEOUT:g} s"
        ) from None
    except OSError as exc:
        raise LayerpeekError(f"credential helper {program} could not run: {exc}") from None
    return _helper_answer(result, program, registry, source)


def _helper_answer(
    result: subprocess.CompletedProcess[str], program: str, registry: str, source: str
) -> Credentials | None:
    said = (result.stdout.strip() or result.stderr.strip()).splitlines()
    if result.returncode != 0:
        if _NOT_FOUND in (result.stdout + result.stderr).lower():
            return None
        reason = said[0] if said else f"exit status {result.returncode}"
        raise LayerpeekError(f"credential helper {program} failed for {registry}: {reason}")
    try:
        answer = json.loads(result.stdout)
        username, secret = str(answer["Username"]), str(answer["Secret"])
    except (ValueError, KeyError, TypeError):
        raise LayerpeekError(
            f"credential helper {program} answered for {registry} with something other than "
            "JSON {ServerURL, Username, Secret}"
        ) from None
    if username == _IDENTITY_TOKEN_USER:
        return Credentials("", "", secret, source)
    return Credentials(username, secret, None, source) if username or secret else None
