"""What a security reviewer checks first in an image, as pure rules over paths and modes.

The service runs these over the merged view and over what later layers removed; the only
content it reads is small files (``CONTENT_LIMIT``) that already look like keys by name, and
the os-release file.
"""

from __future__ import annotations

import fnmatch
import re
import shlex

CONTENT_LIMIT = 64 << 10  # a PEM key is a few KiB; bigger files are not read
CONTENT_READS = 32  # at most this many files are read for a content check per triage
PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
OS_RELEASE = ("etc/os-release", "usr/lib/os-release")

# basename globs → what the file usually holds
_SECRET_NAMES = {
    "id_rsa": "SSH private key",
    "id_dsa": "SSH private key",
    "id_ecdsa": "SSH private key",
    "id_ed25519": "SSH private key",
    "*.pem": "PEM file (key or certificate)",
    "*.key": "private key file",
    "*.p12": "PKCS#12 key store",
    "*.pfx": "PKCS#12 key store",
    "*.jks": "Java key store",
    ".env": "environment file",
    ".env.*": "environment file",
    ".npmrc": "npm registry credentials",
    ".pypirc": "PyPI credentials",
    ".netrc": "netrc login credentials",
    ".git-credentials": "git credentials",
    ".pgpass": "PostgreSQL passwords",
    ".bash_history": "shell history",
    ".zsh_history": "shell history",
    ".sh_history": "shell history",
    ".ash_history": "shell history",
    ".python_history": "interpreter history",
    ".mysql_history": "database client history",
    ".psql_history": "database client history",
}
# full-path globs (any leading directories) → what the file holds
_SECRET_PATHS = {
    "*.aws/credentials": "AWS credentials",
    "*.config/gcloud/credentials.db": "gcloud credentials",
    "*.config/gcloud/access_tokens.db": "gcloud access tokens",
    "*application_default_credentials.json": "gcloud application default credentials",
    "*.config/gcloud/legacy_credentials/*": "gcloud credentials",
    "*.azure/accessTokens.json": "Azure access tokens",
    "*.azure/msal_token_cache.json": "Azure token cache",
    "*.docker/config.json": "Docker registry credentials",
    "*.kube/config": "Kubernetes credentials",
}
_KEY_LIKE = ("SSH private key", "PEM file (key or certificate)", "private key file")
_ROOT_USERS = {"", "root", "0"}


def secret_kind(path: str, type: str) -> str | None:
    """What a path looks like it holds, by name alone; None when it looks harmless."""
    base = path.rpartition("/")[2]
    if type == "dir":
        return "git repository (history may hold secrets)" if base == ".git" else None
    if type not in ("file", "hardlink"):
        return None
    if base.endswith(".pub"):
        return None
    for pattern, kind in _SECRET_NAMES.items():
        if fnmatch.fnmatchcase(base, pattern):
            return kind
    for pattern, kind in _SECRET_PATHS.items():
        if fnmatch.fnmatchcase("/" + path, pattern):
            return kind
    return None


def wants_content_check(kind: str | None, size: int) -> bool:
    """Key-like names small enough to read: the content says whether it is a private key."""
    return kind in _KEY_LIKE and 0 < size <= CONTENT_LIMIT


def mode_problems(type: str, mode: int) -> list[str]:
    """setuid/setgid executables and world-writable paths (sticky directories like /tmp are
    meant to be; symlinks and device nodes always show 0777/0666 and are skipped)."""
    problems = []
    if type in ("file", "hardlink"):
        if mode & 0o4000:
            problems.append("setuid")
        if mode & 0o2000:
            problems.append("setgid")
    sticky_dir = type == "dir" and mode & 0o1000
    if type in ("file", "hardlink", "dir", "fifo") and mode & 0o002 and not sticky_dir:
        problems.append("world-writable")
    return problems


def runs_as_root(user: str) -> bool:
    """The config's User: empty means root, as does uid 0 with or without a group."""
    name = user.partition(":")[0].strip()
    return name in _ROOT_USERS


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value lines of os-release(5), values unquoted with shell rules."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or key.startswith("#") or not key.isidentifier():
            continue
        try:
            words = shlex.split(value)
        except ValueError:
            words = [value]
        fields[key] = " ".join(words)
    return fields
