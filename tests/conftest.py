"""Session fixtures: real registries (plain, basic, token) over one storage root, the standard
images pushed once, a token server and a fault proxy.

Only a missing Debian tool may skip (``fixtures.tools.require_tool``), and only outside CI:
``CI=true`` makes it a failure, so a broken install cannot pass as green.

Every test is marked by what it runs against (``pytest -m unit`` needs no Debian tool):
``registry`` if it uses a registry process, ``redis`` a redis-server, ``tools`` another Debian
tool (marked by hand where the test calls ``require_tool`` itself), and ``unit`` if none.
``slow`` (by hand) marks a test that pip-installs the project into a fresh virtual environment:
it runs by default, is never ``unit``, and ``-m "not slow"`` leaves it out.
Coroutine tests run on asyncio without a mark (``anyio_mode = "auto"`` in pyproject.toml).
"""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import pytest

from fixtures.catalog import Catalog, PushedImage, push_standard_images
from fixtures.fs_images import FsImages, push_fs_images
from fixtures.package_images import (
    PackageImages,
    debootstrap_rootfs,
    push_package_images,
    push_rootfs_image,
)
from fixtures.proxy import FaultProxy
from fixtures.redis_server import RedisServer
from fixtures.registry import RegistryProcess
from fixtures.token_server import DEFAULT_USERS, TokenServer
from fixtures.tools import require_tool
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.service import Layerpeek

# Fixtures shared by the bot's and the MCP server's tests (helpers there are imported by name).
pytest_plugins = ("fixtures.bot", "fixtures.mcp")

# The fixture whose use puts a test under each marker (every registry fixture requests
# ``docker_registry``); a test marked by hand keeps its mark.
NEEDS = {"registry": "docker_registry", "redis": "redis_server"}
BY_HAND = ("tools", "slow")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test ``registry``/``redis`` from the fixtures it uses, ``unit`` if it needs
    none of those processes nor a tool (its own in-process servers are fine)."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        needs = [mark for mark, fixture in NEEDS.items() if fixture in fixtures]
        for mark in needs:
            item.add_marker(mark)
        if not needs and not any(item.get_closest_marker(m) for m in (*NEEDS, *BY_HAND)):
            item.add_marker("unit")


@dataclass(frozen=True)
class SeededRegistry:
    """A running registry and the catalog of images in its (shared) storage."""

    process: RegistryProcess
    catalog: Catalog

    @property
    def host(self) -> str:
        return self.process.host

    @property
    def url(self) -> str:
        return self.process.url


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def peek(layerpeek_env: Path) -> AsyncIterator[Layerpeek]:
    """The service over a registry client in the local registries' environment, closed after
    the test."""
    async with RegistryClient() as client, Layerpeek(client) as service:
        yield service


@pytest.fixture(autouse=True)
def _unfreeze_after_a_front_end() -> Iterator[None]:
    """A front end's ``main`` freezes the objects alive while it runs
    (``core.runtime.tuned_process``) and hands them back on exit; should a test leave some
    frozen, give them back to the collector."""
    yield
    if gc.get_freeze_count():
        gc.unfreeze()


@pytest.fixture(scope="session")
def docker_registry() -> str:
    """Path of the registry binary; requesting it applies the skip-or-fail rule."""
    return require_tool("docker-registry")


@pytest.fixture(scope="session")
def registry_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Storage shared by every registry process of the session."""
    return tmp_path_factory.mktemp("registry-storage")


@pytest.fixture(scope="session")
def catalog(plain_registry: SeededRegistry) -> Catalog:
    """The standard images, as pushed into the shared storage."""
    return plain_registry.catalog


@pytest.fixture(scope="session")
def plain_registry(docker_registry: str, registry_root: Path) -> Iterator[SeededRegistry]:
    """No auth; the standard images are pushed through it once per session."""
    with RegistryProcess(registry_root, "plain", binary=docker_registry) as process:
        yield SeededRegistry(process, push_standard_images(process.url))


@pytest.fixture(scope="session")
def basic_registry(
    docker_registry: str, registry_root: Path, plain_registry: SeededRegistry
) -> Iterator[SeededRegistry]:
    """htpasswd auth with alice/wonderland, serving the same images."""
    with RegistryProcess(
        registry_root, "basic", users=DEFAULT_USERS, binary=docker_registry
    ) as process:
        yield SeededRegistry(process, plain_registry.catalog)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real Redis for the shared cache (LAYERPEEK_CACHE_URL); tests flush it before use."""
    with RedisServer(require_tool("redis-server")) as server:
        yield server


@pytest.fixture(scope="session")
def token_server() -> Iterator[TokenServer]:
    with TokenServer() as server:
        yield server


@pytest.fixture(scope="session")
def token_registry(
    docker_registry: str,
    registry_root: Path,
    plain_registry: SeededRegistry,
    token_server: TokenServer,
) -> Iterator[SeededRegistry]:
    """Docker Hub-style token auth through ``token_server``, serving the same images."""
    with RegistryProcess(
        registry_root, "token", token_server=token_server, binary=docker_registry
    ) as process:
        yield SeededRegistry(process, plain_registry.catalog)


@pytest.fixture(scope="session")
def fs_images(plain_registry: SeededRegistry) -> FsImages:
    """The merged-filesystem images (overlay rules, secrets, a shared-layer tag, hostile)."""
    return push_fs_images(plain_registry.url)


@pytest.fixture(scope="session")
def package_images(
    plain_registry: SeededRegistry, tmp_path_factory: pytest.TempPathFactory
) -> PackageImages:
    """Images whose package databases the package tools wrote (dpkg, rpm, pip, npm, go)."""
    for tool in ("dpkg-query", "rpm", "rpmbuild", "npm", "go"):
        require_tool(tool)
    return push_package_images(plain_registry.url, tmp_path_factory.mktemp("package-trees"))


@pytest.fixture(scope="session")
def rootfs_image(plain_registry: SeededRegistry) -> tuple[Path, PushedImage]:
    """A debootstrap'd Debian root filesystem (built once, kept in LAYERPEEK_TEST_CACHE or
    the user cache directory) and the image pushed from it."""
    require_tool("debootstrap")
    cache = os.environ.get("LAYERPEEK_TEST_CACHE") or platformdirs.user_cache_dir("layerpeek-tests")
    rootfs = debootstrap_rootfs(Path(cache))
    return rootfs, push_rootfs_image(plain_registry.url, rootfs)


@pytest.fixture(scope="session")
def _session_proxy(plain_registry: SeededRegistry) -> Iterator[FaultProxy]:
    with FaultProxy(plain_registry.url) as proxy:
        yield proxy


@pytest.fixture
def fault_proxy(_session_proxy: FaultProxy) -> FaultProxy:
    """A fault proxy in front of the plain registry, with no faults and empty counters."""
    _session_proxy.reset()
    return _session_proxy


@pytest.fixture
def layerpeek_env(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    plain_registry: SeededRegistry,
) -> Path:
    """The environment a user of the local registries would set: plain HTTP for them, an empty
    docker config (so the developer's own credentials never leak into a test), a fresh cache.
    Returns the docker config directory, for tests that write credentials into it."""
    docker_config = tmp_path / "docker-config"
    docker_config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config))
    # Apart from tmp_path, so tests that check what a command left there see only their files.
    monkeypatch.setenv("LAYERPEEK_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("LAYERPEEK_PLAIN_HTTP", "127.0.0.1")
    return docker_config
