"""`triage`: the rules on their own, then the whole report against the real registry."""

import json

import pytest

from fixtures.fs_images import STEPS
from layerpeek.cli.main import main
from layerpeek.core.fs.triage import mode_problems, parse_os_release, runs_as_root, secret_kind


@pytest.mark.parametrize(
    ("path", "type", "kind"),
    [
        ("root/.ssh/id_ed25519", "file", "SSH private key"),
        ("root/.ssh/id_ed25519.pub", "file", None),
        ("srv/app/.env", "file", "environment file"),
        ("srv/app/.env.production", "file", "environment file"),
        ("home/u/.aws/credentials", "file", "AWS credentials"),
        ("root/.config/gcloud/credentials.db", "file", "gcloud credentials"),
        ("root/.azure/msal_token_cache.json", "file", "Azure token cache"),
        ("root/.docker/config.json", "file", "Docker registry credentials"),
        ("root/.npmrc", "file", "npm registry credentials"),
        ("root/.pypirc", "file", "PyPI credentials"),
        ("root/.netrc", "file", "netrc login credentials"),
        ("root/.bash_history", "file", "shell history"),
        ("src/.git", "dir", "git repository (history may hold secrets)"),
        ("src/.git", "file", None),
        ("etc/ssl/private/server.key", "symlink", None),
        ("usr/share/doc/aws/credentials-guide.txt", "file", None),
    ],
)
def test_secret_names(path, type, kind):
    assert secret_kind(path, type) == kind


@pytest.mark.parametrize(
    ("type", "mode", "problems"),
    [
        ("file", 0o4755, ["setuid"]),
        ("file", 0o6755, ["setuid", "setgid"]),
        ("dir", 0o2775, []),  # setgid directories are ordinary group-shared dirs
        ("dir", 0o1777, []),  # /tmp: sticky, meant to be shared
        ("dir", 0o777, ["world-writable"]),
        ("file", 0o666, ["world-writable"]),
        ("symlink", 0o777, []),
        ("char", 0o666, []),
    ],
)
def test_mode_problems(type, mode, problems):
    assert mode_problems(type, mode) == problems


@pytest.mark.parametrize(
    ("user", "root"),
    [
        ("", True),
        ("root", True),
        ("0", True),
        ("0:0", True),
        ("root:wheel", True),
        ("1000", False),
        ("nobody", False),
        ("app:app", False),
    ],
)
def test_runs_as_root(user, root):
    assert runs_as_root(user) is root


def test_os_release_values_are_unquoted():
    text = (
        '# comment\nNAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.1\nPRETTY_NAME="A \\"q\\""\nbad'
    )
    assert parse_os_release(text) == {
        "NAME": "Alpine Linux",
        "ID": "alpine",
        "VERSION_ID": "3.20.1",
        "PRETTY_NAME": 'A "q"',
    }


async def test_triage_report_of_the_overlay_image(peek, plain_registry, fs_images):
    image = await peek.resolve(fs_images.overlay.ref(plain_registry.host))
    report = await peek.triage(image, largest=3)
    found = {(f.kind, f.path): f for f in report.findings}
    key = found[("deleted-secret", "home/dev/.ssh/id_rsa")]
    assert (key.severity, key.layer, key.created_by) == ("high", 0, STEPS[0])
    assert key.detail.startswith("private key (content checked)") and "layer 2" in key.detail
    assert found[("secret", "root/.aws/credentials")].severity == "high"
    assert found[("secret", "home/dev/.bash_history")].layer == 1
    assert ("secret", "app/.env") in found
    assert ("secret", "certs/server.pem") not in found  # a certificate, by its content
    assert found[("setuid", "usr/bin/tool")].detail.startswith("mode 4755")
    assert ("setgid", "usr/bin/grp") in found
    writable = {path for kind, path in found if kind == "world-writable"}
    assert writable == {"app/shared.log"}  # not sticky tmp, not var/www (a symlink now)
    severities = [f.severity for f in report.findings]
    assert severities == sorted(severities, key=["high", "medium", "low"].index)
    assert report.runs_as_root and report.user == ""
    assert report.os is not None
    assert (report.os.id, report.os.version_id, report.os.path) == (
        "debian",
        "12",
        "usr/lib/os-release",
    )
    assert [e.path for e in report.largest] == [
        "app/big.bin",
        "usr/lib/os-release",
        "certs/server.pem",
    ]
    assert report.removed_size == (await peek.removed_files(image)).total_size


async def test_triage_knows_a_non_root_user(peek, plain_registry, fs_images):
    image = await peek.resolve(fs_images.overlay_v2.ref(plain_registry.host))
    report = await peek.triage(image)
    assert report.user == "1000:1000" and not report.runs_as_root


async def test_triage_reports_irregular_names(peek, plain_registry, fs_images):
    image = await peek.resolve(fs_images.hostile.ref(plain_registry.host))
    report = await peek.triage(image)
    irregular = {f.path for f in report.findings if f.kind == "irregular"}
    assert irregular == {"../../etc/evil", "a/.wh..", "x/../y", "dangling", "loop1/inside"}
    assert report.os is None


def test_triage_cli_readable_and_json(capsys, layerpeek_env, plain_registry, fs_images):
    ref = fs_images.overlay.ref(plain_registry.host)
    assert main(["triage", ref]) == 0
    out = capsys.readouterr().out
    assert "runs as root" in out and "Debian GNU/Linux 12 (bookworm)" in out
    assert "deleted-secret  home/dev/.ssh/id_rsa" in out
    assert main(["triage", ref, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["os"]["id"] == "debian" and report["runs_as_root"] is True
    assert {"kind", "severity", "path", "layer", "created_by", "size", "detail"} == set(
        report["findings"][0]
    )
