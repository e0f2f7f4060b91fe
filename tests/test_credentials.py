"""Docker config credentials: inline auths, Docker Hub's key, and real credential helpers."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from layerpeek.core.errors import LayerpeekError
from layerpeek.core.registry.credentials import (
    HUB_SERVER_URL,
    Credentials,
    describe_lookup,
    load_credentials,
)

WriteConfig = Callable[[Any], Path]

# A real docker-credential-* program: answers `get` from a JSON store and logs each query.
HELPER_SCRIPT = """\
import json, pathlib, sys
here = pathlib.Path(__file__).parent
server = sys.stdin.read().strip()
with open(here / "queries.log", "a") as log:
    log.write(" ".join(sys.argv[1:]) + " " + server + "\\n")
store = json.loads((here / "store.json").read_text())
if "fail" in store:
    print(store["fail"], file=sys.stderr)
    sys.exit(1)
if server not in store:
    print("credentials not found in native keychain")
    sys.exit(1)
user, secret = store[server]
print(json.dumps({"ServerURL": server, "Username": user, "Secret": secret}))
"""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "docker"
    directory.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))
    return directory


@pytest.fixture
def write_config(config_dir: Path) -> WriteConfig:
    def write(config: Any) -> Path:
        path = config_dir / "config.json"
        path.write_text(config if isinstance(config, str) else json.dumps(config))
        return path

    return write


@pytest.fixture
def helper_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH directory holding docker-credential-layerpeektest, with an empty store."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "docker-credential-layerpeektest"
    program.write_text(f"#!{sys.executable}\n{HELPER_SCRIPT}")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    (bin_dir / "store.json").write_text("{}")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


def _store(helper_dir: Path, entries: dict[str, Any]) -> None:
    (helper_dir / "store.json").write_text(json.dumps(entries))


def _queries(helper_dir: Path) -> list[str]:
    return (helper_dir / "queries.log").read_text().splitlines()


def test_base64_auth_is_split_at_the_first_colon(write_config: WriteConfig) -> None:
    path = write_config({"auths": {"127.0.0.1:5000": {"auth": _b64("alice:pa:ss")}}})
    assert load_credentials("127.0.0.1:5000") == Credentials("alice", "pa:ss", None, str(path))


def test_username_and_password_fields_are_read(write_config: WriteConfig) -> None:
    write_config({"auths": {"ghcr.io": {"username": "bob", "password": "pw"}}})
    creds = load_credentials("ghcr.io")
    assert creds is not None
    assert (creds.username, creds.password) == ("bob", "pw")


@pytest.mark.parametrize("key", ["https://ghcr.io", "http://ghcr.io/v1/", "ghcr.io/", "GHCR.io"])
def test_keys_match_by_host_whatever_their_url_form(write_config: WriteConfig, key: str) -> None:
    write_config({"auths": {key: {"auth": _b64("bob:pw")}}})
    creds = load_credentials("ghcr.io")
    assert creds is not None
    assert creds.username == "bob"


def test_a_port_is_part_of_the_host(write_config: WriteConfig) -> None:
    write_config({"auths": {"https://registry.local:5000": {"auth": _b64("bob:pw")}}})
    assert load_credentials("registry.local") is None
    assert load_credentials("registry.local:5000") is not None


@pytest.mark.parametrize("registry", ["docker.io", "registry-1.docker.io", "index.docker.io"])
def test_docker_hub_credentials_live_under_the_v1_index_url(
    write_config: WriteConfig, registry: str
) -> None:
    write_config({"auths": {HUB_SERVER_URL: {"auth": _b64("hubuser:pw")}}})
    creds = load_credentials(registry)
    assert creds is not None
    assert creds.username == "hubuser"


def test_exact_key_wins_over_another_url_form(write_config: WriteConfig) -> None:
    write_config(
        {
            "auths": {
                "https://index.docker.io/v2/": {"auth": _b64("other:pw")},
                HUB_SERVER_URL: {"auth": _b64("exact:pw")},
            }
        }
    )
    creds = load_credentials("docker.io")
    assert creds is not None
    assert creds.username == "exact"


def test_identity_token_is_kept(write_config: WriteConfig) -> None:
    write_config({"auths": {"myacr.io": {"auth": _b64("00000000-0000:"), "identitytoken": "rt"}}})
    creds = load_credentials("myacr.io")
    assert creds is not None
    assert creds.identity_token == "rt"


def test_no_config_file_means_no_credentials(config_dir: Path) -> None:
    assert load_credentials("ghcr.io") is None
    assert describe_lookup("ghcr.io") == f"no docker config at {config_dir / 'config.json'}"


def test_an_empty_entry_means_no_credentials(write_config: WriteConfig) -> None:
    path = write_config({"auths": {"ghcr.io": {}}})
    assert load_credentials("ghcr.io") is None
    assert describe_lookup("ghcr.io") == f"no credentials for ghcr.io in {path}"


def test_config_dir_argument_beats_the_environment(tmp_path: Path, config_dir: Path) -> None:
    (config_dir / "config.json").write_text(json.dumps({"auths": {"a.io": {"auth": _b64("x:y")}}}))
    other = tmp_path / "other"
    other.mkdir()
    assert load_credentials("a.io", config_dir=str(other)) is None


@pytest.mark.parametrize(
    "config",
    [
        "{not json",
        "[]",
        {"auths": []},
        {"credsStore": 3},
        {"auths": {"a.io": "x"}},
        {"auths": {"a.io": {"auth": "%%%"}}},
        {"auths": {"a.io": {"auth": _b64("no-colon")}}},
    ],
)
def test_a_malformed_config_is_an_error_naming_the_file(
    write_config: WriteConfig, config: Any
) -> None:
    path = write_config(config)
    with pytest.raises(LayerpeekError, match=f"docker config {path}"):
        load_credentials("a.io")


def test_repr_never_shows_secrets() -> None:
    creds = Credentials("alice", "hunter2", "refresh-me", "/x/config.json")
    for text in (repr(creds), str(creds), f"{creds}"):
        assert "hunter2" not in text
        assert "refresh-me" not in text
        assert "alice" in text


def test_creds_store_helper_is_asked_with_the_registry_on_stdin(
    write_config: WriteConfig, helper_dir: Path
) -> None:
    path = write_config({"credsStore": "layerpeektest", "auths": {"ghcr.io": {}}})
    _store(helper_dir, {"ghcr.io": ["carol", "s3cret"]})
    creds = load_credentials("ghcr.io")
    assert creds is not None
    assert (creds.username, creds.password) == ("carol", "s3cret")
    assert creds.source == f"docker-credential-layerpeektest (credsStore in {path})"
    assert _queries(helper_dir) == ["get ghcr.io"]


def test_helper_is_asked_for_docker_hub_by_its_v1_url(
    write_config: WriteConfig, helper_dir: Path
) -> None:
    write_config({"credsStore": "layerpeektest"})
    _store(helper_dir, {HUB_SERVER_URL: ["hubuser", "pw"]})
    creds = load_credentials("registry-1.docker.io")
    assert creds is not None
    assert creds.username == "hubuser"
    assert _queries(helper_dir) == [f"get {HUB_SERVER_URL}"]


def test_cred_helpers_entry_beats_creds_store_and_auths(
    write_config: WriteConfig, helper_dir: Path
) -> None:
    write_config(
        {
            "credsStore": "nonexistent-store",
            "credHelpers": {"https://quay.io": "layerpeektest"},
            "auths": {"quay.io": {"auth": _b64("inline:pw")}},
        }
    )
    _store(helper_dir, {"quay.io": ["fromhelper", "pw"]})
    creds = load_credentials("quay.io")
    assert creds is not None
    assert creds.username == "fromhelper"


def test_creds_store_beats_inline_auths(write_config: WriteConfig, helper_dir: Path) -> None:
    write_config({"credsStore": "layerpeektest", "auths": {"quay.io": {"auth": _b64("x:y")}}})
    assert load_credentials("quay.io") is None


def test_helper_token_username_means_an_identity_token(
    write_config: WriteConfig, helper_dir: Path
) -> None:
    write_config({"credHelpers": {"myacr.io": "layerpeektest"}})
    _store(helper_dir, {"myacr.io": ["<token>", "refresh-token"]})
    creds = load_credentials("myacr.io")
    assert creds is not None
    assert (creds.username, creds.identity_token) == ("", "refresh-token")


def test_helper_not_found_answer_means_no_credentials(
    write_config: WriteConfig, helper_dir: Path
) -> None:
    path = write_config({"credsStore": "layerpeektest"})
    assert load_credentials("ghcr.io") is None
    assert describe_lookup("ghcr.io") == (
        f"no credentials for ghcr.io from docker-credential-layerpeektest (credsStore in {path})"
    )


def test_failing_helper_is_a_one_line_error_naming_it(
    write_config: WriteConfig, helper_dir: Path
) -> None:
    write_config({"credsStore": "layerpeektest"})
    _store(helper_dir, {"fail": "gpg: decryption failed: No secret key\nmore detail"})
    with pytest.raises(LayerpeekError) as caught:
        load_credentials("ghcr.io")
    assert str(caught.value) == (
        "credential helper docker-credential-layerpeektest failed for ghcr.io: "
        "gpg: decryption failed: No secret key"
    )


def test_missing_helper_binary_is_an_error_naming_it(
    write_config: WriteConfig, helper_dir: Path
) -> None:
    write_config({"credHelpers": {"ghcr.io": "layerpeek-absent"}})
    with pytest.raises(LayerpeekError, match="docker-credential-layerpeek-absent is not on PATH"):
        load_credentials("ghcr.io")


def test_helper_answering_garbage_is_an_error(write_config: WriteConfig, helper_dir: Path) -> None:
    write_config({"credsStore": "layerpeektest"})
    program = helper_dir / "docker-credential-layerpeektest"
    program.write_text(f"#!{sys.executable}\nprint('hello')\n")
    with pytest.raises(LayerpeekError, match="something other than JSON"):
        load_credentials("ghcr.io")
