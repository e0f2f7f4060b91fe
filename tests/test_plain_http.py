"""Plain HTTP registries: loopback ones without a setting (HTTPS first, as Docker does), any
other only when named, and a one-line hint or error wherever a user could get it wrong.

The fixtures' registries serve plain HTTP on 127.0.0.1. ``0.0.0.0:PORT`` reaches the same
listener (Linux connects an unspecified destination to the local host) under a name that is
not loopback, so it stands for a plain-HTTP registry elsewhere on the network.
"""

from __future__ import annotations

import json

import pytest

from fixtures.commands import cli, one_line
from layerpeek.cli.main import main
from layerpeek.core.errors import LayerpeekError, NetworkRefused
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.registry.plain import is_loopback
from layerpeek.core.service import Layerpeek
from layerpeek.core.settings import Settings, load_settings


@pytest.fixture
def no_plain_setting(monkeypatch, layerpeek_env):
    """The environment of a user who set nothing about plain HTTP."""
    monkeypatch.delenv("LAYERPEEK_PLAIN_HTTP")
    return layerpeek_env


def port_of(host: str) -> str:
    return host.rpartition(":")[2]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost:5000", True),
        ("LOCALHOST", True),
        ("127.0.0.1:5000", True),
        ("127.3.2.1", True),
        ("[::1]:5000", True),
        ("[::ffff:127.0.0.1]:5000", True),
        ("0.0.0.0:5000", False),
        ("localhost.example.com:5000", False),
        ("10.0.0.1:5000", False),
        ("registry.local", False),
    ],
)
def test_loopback_is_judged_by_how_the_host_is_spelt(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1", "[::ffff:127.0.0.1]"])
def test_a_loopback_registry_answers_over_plain_http_with_no_setting(
    capsys, no_plain_setting, plain_registry, catalog, name
):
    reference = f"{name}:{port_of(plain_registry.host)}/{catalog.gzip.repo}:{catalog.gzip.tag}"
    status, out, err = run(capsys, "inspect", reference, "--json")
    assert (status, err) == (0, "")
    assert json.loads(out)["digest"] == catalog.gzip.digest


async def test_the_client_remembers_a_loopback_host_that_speaks_plain_http(
    no_plain_setting, plain_registry, catalog
):
    host = f"localhost:{port_of(plain_registry.host)}"
    async with RegistryClient() as client:
        assert client.schemes.scheme(host) == "https"
        report = await Layerpeek(client).inspect(catalog.zstd.ref(host))
        assert client.schemes.scheme(host) == "http"
        assert client.schemes.scheme(plain_registry.host) == "https"  # another host, not learnt
    assert report.digest == catalog.zstd.digest


async def test_the_guard_still_refuses_a_loopback_registry_unless_allowed(
    monkeypatch, no_plain_setting, plain_registry, catalog
):
    reference = catalog.gzip.ref(f"localhost:{port_of(plain_registry.host)}")
    async with RegistryClient(guarded=True) as client:
        with pytest.raises(NetworkRefused, match="LAYERPEEK_ALLOW_PRIVATE"):
            await Layerpeek(client).inspect(reference)
    monkeypatch.setenv("LAYERPEEK_ALLOW_PRIVATE", plain_registry.host)
    async with RegistryClient(guarded=True) as client:
        report = await Layerpeek(client).inspect(reference)
    assert report.digest == catalog.gzip.digest


def test_a_plain_registry_elsewhere_names_the_setting_and_the_flag(
    no_plain_setting, plain_registry, catalog
):
    host = f"0.0.0.0:{port_of(plain_registry.host)}"
    done = cli("digest", catalog.gzip.ref(host))
    assert done.returncode == 3
    line = one_line(done.stderr)
    assert line.startswith(f"layerpeek: error: registry {host} did not answer in TLS (")
    assert line.endswith(f"set LAYERPEEK_PLAIN_HTTP={host} (the layerpeek command: --insecure)")


@pytest.mark.parametrize("how", ["flag", "host:port", "host", "cidr"])
def test_a_plain_registry_elsewhere_answers_once_named(
    monkeypatch, capsys, no_plain_setting, plain_registry, catalog, how
):
    host = f"0.0.0.0:{port_of(plain_registry.host)}"
    entry = {"flag": None, "host:port": host, "host": "0.0.0.0", "cidr": "0.0.0.0/8"}[how]
    if entry:
        monkeypatch.setenv("LAYERPEEK_PLAIN_HTTP", f"reg.lan:5000, {entry}")
    flag = ["--insecure"] if how == "flag" else []
    status, out, err = run(capsys, "digest", catalog.gzip.ref(host), *flag)
    assert (status, out, err) == (0, catalog.gzip.digest + "\n", "")


def test_an_http_url_is_refused_with_the_setting_to_use(capsys, no_plain_setting):
    status, out, err = run(capsys, "inspect", "http://reg.lan:5000/app:1")
    assert (status, out) == (3, "")
    assert one_line(err) == (
        "layerpeek: error: image reference must not have a URL scheme: "
        "'http://reg.lan:5000/app:1'; write reg.lan:5000/app:1, and for plain HTTP set "
        "LAYERPEEK_PLAIN_HTTP=reg.lan:5000 (the layerpeek command: --insecure; loopback "
        "registries need neither)"
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("999.1.1.1/40", "'999.1.1.1/40' is not a CIDR"),
        ("10.0.0.0/8,10.0.0.0/33", "'10.0.0.0/33' is not a CIDR"),
        ("reg.lan:99999", "'reg.lan:99999' is not a host, host:port, IP or CIDR: port 99999"),
        ("reg.lan:port", "'reg.lan:port' is not a host, host:port, IP or CIDR"),
        ("http://reg.lan:5000", "'http://reg.lan:5000' has a URL scheme"),
        ("reg lan", "'reg lan' is not a host, host:port, IP or CIDR"),
    ],
)
def test_an_invalid_plain_http_entry_stops_the_cli_with_one_line(
    monkeypatch, layerpeek_env, value, problem
):
    monkeypatch.setenv("LAYERPEEK_PLAIN_HTTP", value)
    done = cli("tags", "localhost:5000/app")
    assert (done.returncode, done.stdout) == (3, "")
    assert one_line(done.stderr).startswith(
        f"layerpeek: error: invalid LAYERPEEK_PLAIN_HTTP: {problem}"
    )


def test_valid_plain_http_entries_are_kept(monkeypatch):
    monkeypatch.setenv(
        "LAYERPEEK_PLAIN_HTTP", "reg.lan, reg.lan:5000, 10.0.0.0/8, 10.1.2.3, [::1]:5000, fd00::/8"
    )
    settings = load_settings(Settings)
    assert settings.plain_http == (
        "reg.lan",
        "reg.lan:5000",
        "10.0.0.0/8",
        "10.1.2.3",
        "[::1]:5000",
        "fd00::/8",
    )
    with pytest.raises(LayerpeekError, match="invalid LAYERPEEK_PLAIN_HTTP"):
        load_settings(Settings, plain_http=("10.0.0.0/99",))
