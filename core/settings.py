"""Settings from the environment (prefix ``LAYERPEEK_``) and a ``.env`` file: one rule for all.

Every front end reads its settings the same way (:class:`EnvSettings`): the environment first,
then ``.env`` in the working directory, the environment winning; a setting given an empty
value is unset, so a copied ``.env.example`` means "the defaults". The one exception is the
``layerpeek`` command, which reads only the environment (``load_settings(..., dotenv=False)``): it
runs in whatever directory a user is in, and a ``.env`` there, written for something else or
by someone else, must not be able to send its registry traffic over plain HTTP or trust
another CA.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar

import platformdirs
from pydantic import AfterValidator, BeforeValidator, Field, ValidationError
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from layerpeek.core.errors import LayerpeekError
from layerpeek.core.registry.plain import entry_problem


def _split_commas(value: object) -> object:
    """Docker's own lists are comma-separated; accept that rather than JSON."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _plain_entries(entries: tuple[str, ...]) -> tuple[str, ...]:
    """Every plain HTTP entry usable, or the first that is not named: a typo is an error at
    start, not a registry silently asked over HTTPS."""
    for entry in entries:
        problem = entry_problem(entry)
        if problem:
            raise PydanticCustomError("plain_http_entry", "{problem}", {"problem": problem})
    return entries


CommaList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_split_commas)]
PlainHttpList = Annotated[CommaList, AfterValidator(_plain_entries)]
ENV_FILE = ".env"
"""Where the long-running front ends (MCP server, bot, link endpoint) read settings from."""


class EnvSettings(BaseSettings):
    """The base of every settings class: ``.env`` read, empty values unset (the module's rule)."""

    model_config = SettingsConfigDict(env_file=ENV_FILE, env_ignore_empty=True, extra="ignore")


S = TypeVar("S", bound=EnvSettings)


class Settings(EnvSettings):
    """What an operator can set; every field maps to ``LAYERPEEK_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="LAYERPEEK_")

    plain_http: PlainHttpList = Field(
        default=(),
        description="host, host:port, IP or CIDR list reached over plain HTTP (insecure "
        "registries); loopback registries fall back to plain HTTP without an entry",
    )
    allow_private: CommaList = Field(
        default=(),
        description="hosts, host:port or CIDRs the network guard lets resolve to private addresses",
    )
    ca_bundle: Path | None = Field(
        default=None, description="PEM file of extra CAs to trust for registries"
    )
    cache_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_cache_dir("layerpeek")),
        description="where layer indexes, configs and manifests are kept",
    )
    cache_url: str | None = Field(
        default=None,
        description="redis://, rediss:// or unix:// URL of a Redis that several processes "
        "share; when set, the cache lives there instead of under cache_dir",
    )
    retries: int = Field(default=4, ge=1, le=20, description="attempts on 429 and 5xx")
    max_retry_wait: float = Field(
        default=60.0, ge=0, description="longest Retry-After we wait for before giving up"
    )
    timeout: float = Field(
        default=30.0, gt=0, description="seconds one network read or connect may wait"
    )
    deadline: float = Field(
        default=60.0,
        gt=0,
        description="seconds one small document may take in all (manifest, config, token, tag "
        "page, TOC; and the answer that opens a layer range): waiting for a connection, the "
        "token, redirects, retries and the whole body",
    )
    min_rate: int = Field(
        default=8 << 10,
        gt=0,
        description="bytes per second a layer stream must at least average over rate_window",
    )
    rate_window: float = Field(
        default=30.0,
        gt=0,
        description="seconds of waiting on a layer stream that min_rate is averaged over",
    )
    host_connections: int = Field(
        default=16,
        ge=10,
        description="requests open at once to one registry host; more wait their turn, so one "
        "slow registry cannot take the connections every other one needs (at least 10: up to "
        "8 layer scans stay open between pages, each on its connection)",
    )


def load_settings(kind: type[S], *, dotenv: bool = True, **options: Any) -> S:
    """``kind(**options)`` with a bad value reported as one line naming its variable;
    ``dotenv=False`` reads the environment alone (the CLI's choice, see the module)."""
    if not dotenv:
        options["_env_file"] = None
    try:
        return kind(**options)
    except ValidationError as exc:
        first = exc.errors()[0]
        prefix = str(kind.model_config.get("env_prefix", ""))
        name = prefix + str(first["loc"][0]).upper() if first["loc"] else "a setting"
        raise LayerpeekError(f"invalid {name}: {first['msg']}") from None
