"""Package inventories read from pushed images, each checked against the tool that owns its
database, run on the very tree the image was made of: dpkg-query, rpm, importlib.metadata,
npm ls, go version -m; apk's database against a hand-read example. Each test compares the
full name/version/architecture set and the bytes read."""

from __future__ import annotations

import json
from importlib.metadata import distributions
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from fixtures.package_images import (
    ALPINE_RELEASE,
    APK_EXPECTED,
    DEBIAN_RELEASE,
    FEDORA_RELEASE,
    REMOVED_WHEEL,
    RPM_SPECS,
    PackageImages,
    Triple,
    dpkg_installed,
    run_tool,
)
from fixtures.tools import require_tool
from layerpeek.cli.main import main
from layerpeek.core.packages.inventory import STREAM_AT, inventory
from layerpeek.core.packages.model import PackageReport
from layerpeek.core.registry.client import RegistryClient
from layerpeek.core.service import Layerpeek
from layerpeek.core.text import human_size


@pytest.fixture
async def peek(layerpeek_env):
    async with RegistryClient() as client:
        yield Layerpeek(client)


def triples(report: PackageReport, kind: str) -> set[Triple]:
    return {(p.name, p.version, p.arch) for p in report.packages if p.kind == kind}


async def read(
    peek: Layerpeek, host: str, image, *kinds: str, stream_at: int = STREAM_AT
) -> PackageReport:
    resolved = await peek.resolve(image.ref(host))
    every = ("deb", "apk", "rpm", "pypi", "npm", "golang")
    return await inventory(peek, resolved, kinds or every, stream_at=stream_at)


# By ranges (a few files in their layer), and with the layer read in one pass instead.
PASSES = pytest.mark.parametrize("stream_at", [STREAM_AT, 1], ids=["ranges", "one-pass"])


@pytest.mark.anyio
async def test_debian_inventory_is_what_dpkg_query_lists(peek, plain_registry, package_images):
    trees = package_images.trees
    report = await read(peek, plain_registry.host, package_images.debian, "deb")
    truth = dpkg_installed(trees.dpkg_admin)
    assert len(truth) > 100
    assert triples(report, "deb") == truth
    assert len(report.packages) == len(truth)  # no package twice
    assert {(p.path, p.layer) for p in report.packages} == {("var/lib/dpkg/status", 0)}
    bash = next(p for p in report.packages if p.name == "bash")
    parsed = PackageURL.from_string(bash.purl)  # the spec's quoting: "+" is "%2B"
    assert parsed.to_dict() == {
        "type": "deb",
        "namespace": "debian",
        "name": "bash",
        "version": bash.version,
        "qualifiers": {"arch": bash.arch, "distro": "debian-12"},
        "subpath": None,
    }
    assert report.distro == "debian-12"
    status = (trees.dpkg_admin / "status").stat().st_size
    assert (report.files_read, report.bytes_read) == (2, status + len(DEBIAN_RELEASE))
    assert report.databases == [] and report.complete


@PASSES
@pytest.mark.anyio
async def test_each_deb_has_the_layer_that_installed_it(
    peek, plain_registry, package_images, stream_at
):
    """Three copies of dpkg's status, as dpkg left it after each layer's installs, upgrade
    and purge: each package gets the layer that installed its version."""
    trees = package_images.trees
    truth = dpkg_installed(trees.dpkg_root / "var/lib/dpkg")
    image = package_images.dpkg_layers
    report = await read(peek, plain_registry.host, image, "deb", stream_at=stream_at)
    assert triples(report, "deb") == truth
    layers = {p.name: p.layer for p in report.packages}
    assert "gone" not in layers and (layers["tiny"], layers["extra"]) == (2, 2)
    assert {layer for name, layer in layers.items() if name not in ("tiny", "extra")} == {0}
    assert {p.version for p in report.packages if p.name == "tiny"} == {"2.0"}
    copies = sum(len(layer.files["var/lib/dpkg/status"]) for layer in image.layers)
    assert report.bytes_read == copies + len(DEBIAN_RELEASE)
    assert report.files_read == 4


def test_debootstrap_rootfs_lists_exactly_what_dpkg_query_lists(
    capsys, layerpeek_env, plain_registry, rootfs_image
):
    """`layerpeek packages` on an image of a debootstrap'd Debian root filesystem, against
    dpkg-query on that root filesystem's database."""
    rootfs, image = rootfs_image
    status, out, err = run(capsys, "packages", image.ref(plain_registry.host), "--json")
    assert (status, err) == (0, "")
    report = json.loads(out)
    truth = dpkg_installed(rootfs / "var/lib/dpkg")
    assert len(truth) > 80
    found = {(p["name"], p["version"], p["arch"]) for p in report["packages"]}
    assert found == truth and len(report["packages"]) == len(truth)
    assert {p["kind"] for p in report["packages"]} == {"deb"}  # no Go among its executables
    assert report["distro"] == "debian-12" and report["databases"] == []
    _, out, _ = run(capsys, "packages", image.ref(plain_registry.host), "--kind", "deb", "--json")
    status_size = (rootfs / "var/lib/dpkg/status").stat().st_size
    os_release = (rootfs / "usr/lib/os-release").stat().st_size
    assert json.loads(out)["bytes_read"] == status_size + os_release
    # its ~250 executables are looked at in one pass of the layer, not ~750 ranges
    assert report["layers_streamed"] == [0]


@pytest.mark.anyio
async def test_distroless_status_d_is_what_dpkg_query_lists(peek, plain_registry, package_images):
    report = await read(peek, plain_registry.host, package_images.distroless)
    truth = dpkg_installed(package_images.trees.distroless_admin)
    assert len(truth) == 8
    assert triples(report, "deb") == truth
    assert {p.path.rpartition("/")[2] for p in report.packages} == {n for n, _, _ in truth}
    layer = package_images.distroless.layers[0]
    shipped = sum(
        len(data)
        for path, data in layer.files.items()
        if path.startswith("var/lib/dpkg/status.d/") and not path.endswith(".md5sums")
    )
    assert report.bytes_read == shipped + len(DEBIAN_RELEASE)


@pytest.mark.anyio
async def test_rpm_sqlite_inventory_is_what_rpm_lists(peek, plain_registry, package_images):
    db = package_images.trees.rpm_db
    assert (db / "rpmdb.sqlite").read_bytes()[:16] == b"SQLite format 3\0"
    out = run_tool(
        require_tool("rpm"),
        "--dbpath",
        db,
        "-qa",
        "--qf",
        "%{NAME}\\t%{EPOCHNUM}\\t%{VERSION}-%{RELEASE}\\t%{ARCH}\\n",
    )
    rows = [line.split("\t") for line in out.splitlines()]
    report = await read(peek, plain_registry.host, package_images.fedora)
    assert triples(report, "rpm") == {(n, v, a) for n, _, v, a in rows}
    epochs = {n: e for n, e, _, _ in rows}
    for package in report.packages:
        epoch = epochs[package.name]
        assert package.purl.startswith(f"pkg:rpm/fedora/{package.name}@{package.version}?")
        assert ("epoch=" + epoch in package.purl) == (epoch != "0"), package.purl
        assert "distro=fedora-39" in package.purl
    assert report.bytes_read == (db / "rpmdb.sqlite").stat().st_size + len(FEDORA_RELEASE)


@PASSES
@pytest.mark.anyio
async def test_python_inventory_is_what_importlib_metadata_finds(
    peek, plain_registry, package_images, stream_at
):
    after = package_images.trees.python_after
    found = list(distributions(path=[str(after)]))
    truth = {(d.metadata["Name"], d.version, "") for d in found}
    assert len(truth) == 3 and "six" not in {n for n, _, _ in truth}  # deleted by layer 2
    report = await read(
        peek, plain_registry.host, package_images.debian, "pypi", stream_at=stream_at
    )
    assert triples(report, "pypi") == truth
    assert {p.layer for p in report.packages} == {1}
    assert report.layers_streamed == ([] if stream_at == STREAM_AT else [1])
    assert "pkg:pypi/legacy-tool@0.3" in {p.purl for p in report.packages}
    metadata = [*after.glob("*.dist-info/METADATA"), *after.glob("*.egg-info/PKG-INFO")]
    shipped = sum(p.stat().st_size for p in metadata)
    assert report.bytes_read == shipped + len(DEBIAN_RELEASE)
    assert not any(REMOVED_WHEEL in p.path for p in report.packages)


def _npm_tree(node: dict, into: set[Triple]) -> set[Triple]:
    for name, child in node.get("dependencies", {}).items():
        into.add((name, child["version"], ""))
        _npm_tree(child, into)
    return into


@PASSES
@pytest.mark.anyio
async def test_npm_inventory_is_what_npm_ls_lists(peek, plain_registry, package_images, stream_at):
    project = package_images.trees.npm_project
    truth = _npm_tree(
        json.loads(run_tool(require_tool("npm"), "ls", "--all", "--json", cwd=project)), set()
    )
    assert len(truth) >= 3 and any(n.startswith("@") for n, _, _ in truth)
    report = await read(
        peek, plain_registry.host, package_images.debian, "npm", stream_at=stream_at
    )
    assert triples(report, "npm") == truth
    assert report.layers_streamed == ([] if stream_at == STREAM_AT else [2])
    assert {p.layer for p in report.packages} == {2}
    scoped = next(p for p in report.packages if p.name.startswith("@"))
    assert scoped.purl == f"pkg:npm/%40isaacs/string-locale-compare@{scoped.version}"
    manifests = [
        p for p in (project / "node_modules").rglob("package.json")
        if p.parent.parent.name == "node_modules"
        or (p.parent.parent.parent.name == "node_modules" and p.parent.parent.name.startswith("@"))
    ]  # fmt: skip
    assert report.bytes_read == sum(p.stat().st_size for p in manifests) + len(DEBIAN_RELEASE)


def go_modules(binary: Path) -> set[Triple]:
    """``go version -m``: the main module and dependencies (a replacement's version where it
    is a module's), with the binary's GOARCH."""
    out = run_tool(require_tool("go"), "version", "-m", binary)
    rows = [line.strip().split("\t") for line in out.splitlines()[1:]]
    arch = next(
        r[1].removeprefix("GOARCH=") for r in rows if r[:1] == ["build"] and "GOARCH=" in r[1]
    )
    modules: list[list[str]] = []
    for row in rows:
        if row[0] in ("mod", "dep"):
            modules.append([row[1], row[2]])
        elif row[0] == "=>" and row[2] not in ("", "(devel)"):
            modules[-1][1] = row[2]
    return {(path, version, arch) for path, version in modules}


def elf_read_cost(binary: Path) -> int:
    """What finding Go build information costs, from ``readelf``: the ELF header, the
    section headers, their names, and the ``.go.buildinfo`` section (a binary without it:
    the first three)."""
    readelf = require_tool("readelf")
    header = dict(
        line.strip().split(":", 1) for line in run_tool(readelf, "-h", binary).splitlines()[1:]
    )
    count = int(header["Number of section headers"])
    entry = int(header["Size of section headers"].split()[0])
    sizes = {}
    for line in run_tool(readelf, "-S", "-W", binary).splitlines():
        words = line.replace("[ ", "[").split()
        if len(words) > 5 and words[1] in (".shstrtab", ".go.buildinfo"):
            sizes[words[1]] = int(words[5], 16)
    return 64 + count * entry + sizes[".shstrtab"] + min(sizes.get(".go.buildinfo", 0), 65536)


@pytest.mark.anyio
async def test_go_inventory_is_what_go_version_m_prints(peek, plain_registry, package_images):
    trees = package_images.trees
    truth = go_modules(trees.go_binary) | go_modules(trees.go_binary_arm64)
    assert {a for _, _, a in truth} == {"amd64", "arm64"} and len(truth) == 4
    report = await read(peek, plain_registry.host, package_images.debian, "golang")
    assert triples(report, "golang") == truth
    assert {p.path for p in report.packages} == {"usr/local/bin/hello", "usr/local/bin/hello-arm64"}
    dep = next(p for p in report.packages if p.name == "example.com/dep" and p.arch == "amd64")
    assert dep.purl == "pkg:golang/example.com/dep@v1.2.3?arch=amd64"
    # Four executables looked at (two Go, a C binary, a script): each Go one costs its ELF
    # header, section headers, their names and the build information section; the C binary
    # the first three; the script its first 64 bytes.
    costs = [elf_read_cost(p) for p in (trees.go_binary, trees.go_binary_arm64, Path("/bin/true"))]
    assert report.files_read == 5
    assert report.bytes_read == sum(costs) + 64 + len(DEBIAN_RELEASE)
    binaries = trees.go_binary.stat().st_size + trees.go_binary_arm64.stat().st_size
    assert report.bytes_read * 100 < binaries


@pytest.mark.anyio
async def test_go_inventory_in_one_pass_is_what_go_version_m_prints(
    peek, plain_registry, package_images
):
    trees = package_images.trees
    truth = go_modules(trees.go_binary) | go_modules(trees.go_binary_arm64)
    report = await read(peek, plain_registry.host, package_images.debian, "golang", stream_at=1)
    assert triples(report, "golang") == truth
    assert (report.layers_streamed, report.files_read, report.databases) == ([3], 5, [])
    # a pass takes each binary up to the end of its build information, no further
    files = package_images.debian.layers[3].files
    assert report.bytes_read < sum(len(d) for d in files.values()) + len(DEBIAN_RELEASE)


@pytest.mark.anyio
async def test_alpine_inventory_is_the_hand_read_database(peek, plain_registry, package_images):
    report = await read(peek, plain_registry.host, package_images.alpine)
    assert triples(report, "apk") == APK_EXPECTED
    musl = next(p for p in report.packages if p.name == "musl")
    assert musl.purl == "pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=alpine-3.20.3"
    layer = package_images.alpine.layers[0]
    assert report.bytes_read == len(layer.files["lib/apk/db/installed"]) + len(ALPINE_RELEASE)


@PASSES
@pytest.mark.anyio
async def test_damaged_and_unread_databases_are_named_the_rest_answers(
    peek, plain_registry, package_images: PackageImages, stream_at
):
    report = await read(peek, plain_registry.host, package_images.broken, stream_at=stream_at)
    assert {(p.name, p.version) for p in report.packages} == {("good", "1.0.0")}
    said = {p.path: p.message for p in report.databases}
    assert set(said) == {
        "var/lib/rpm/Packages",
        "usr/lib/sysimage/rpm/rpmdb.sqlite",
        "app/node_modules/bad/package.json",
        "usr/lib/python3/dist-packages/huge-1.0.dist-info/METADATA",
        "usr/local/bin/liar",
    }
    assert "BerkeleyDB" in said["var/lib/rpm/Packages"]
    assert "not a readable SQLite rpmdb" in said["usr/lib/sysimage/rpm/rpmdb.sqlite"]
    assert "past the" in said["usr/lib/python3/dist-packages/huge-1.0.dist-info/METADATA"]
    assert "build information string of" in said["usr/local/bin/liar"]
    layer = package_images.broken.layers[0]
    read_whole = ("usr/lib/sysimage/rpm/rpmdb.sqlite", "app/node_modules/bad/package.json")
    good = len(layer.files["app/node_modules/good/package.json"])
    if stream_at == 1:
        assert report.layers_streamed == [0]
        return
    # the huge METADATA and the BerkeleyDB file are not read; the liar up to its lie (the
    # build information section of the binary it was made from)
    liar = elf_read_cost(package_images.trees.go_binary)
    assert report.bytes_read == sum(len(layer.files[p]) for p in read_whole) + good + liar


# -- the CLI: table, JSON, SBOMs ------------------------------------------------------------


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_json_lists_what_the_tools_list(capsys, layerpeek_env, plain_registry, package_images):
    ref = package_images.debian.ref(plain_registry.host)
    status, out, err = run(capsys, "packages", ref, "--kind", "pypi,deb", "--json")
    assert (status, err) == (0, "")
    report = json.loads(out)
    assert set(report) >= {"reference", "digest", "platform", "distro", "packages", "bytes_read"}
    found = {(p["kind"], p["name"], p["version"], p["arch"]) for p in report["packages"]}
    trees = package_images.trees
    python = {
        (d.metadata["Name"], d.version, "") for d in distributions(path=[str(trees.python_after)])
    }
    truth = {("deb", *t) for t in dpkg_installed(trees.dpkg_admin)} | {("pypi", *t) for t in python}
    assert found == truth


def test_cli_table_has_a_line_a_package_and_a_summary(
    capsys, layerpeek_env, plain_registry, package_images
):
    status, out, _ = run(capsys, "packages", package_images.alpine.ref(plain_registry.host))
    lines = out.splitlines()
    assert status == 0 and lines[0].split() == ["KIND", "NAME", "VERSION", "ARCH", "LAYER"]
    assert {tuple(line.split()) for line in lines[1:4]} == {
        ("apk", name, version, arch, "0") for name, version, arch in APK_EXPECTED
    }
    size = len(package_images.alpine.layers[0].files["lib/apk/db/installed"]) + len(ALPINE_RELEASE)
    assert lines[4] == f"3 apk; {human_size(size)} read from 2 files"


def test_cli_cyclonedx_document_validates(capsys, layerpeek_env, plain_registry, package_images):
    ref = package_images.debian.ref(plain_registry.host)
    status, out, _ = run(capsys, "packages", ref, "--format", "cyclonedx-json")
    assert status == 0
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(out) is None
    document = json.loads(out)
    _, json_out, _ = run(capsys, "packages", ref, "--json")
    purls = [p["purl"] for p in json.loads(json_out)["packages"]]
    assert sorted(c["purl"] for c in document["components"]) == sorted(purls)
    assert document["metadata"]["component"]["type"] == "container"
    kinds = {c["purl"].split("/")[0] for c in document["components"]}
    assert kinds == {"pkg:deb", "pkg:pypi", "pkg:npm", "pkg:golang"}


def test_cli_spdx_document_validates(
    capsys, layerpeek_env, plain_registry, package_images, tmp_path
):
    ref = package_images.fedora.ref(plain_registry.host)
    status, out, _ = run(capsys, "packages", ref, "--format", "spdx-json")
    assert status == 0
    path = tmp_path / "sbom.spdx.json"
    path.write_text(out)
    document = parse_file(str(path))
    assert validate_full_spdx_document(document) == []
    purls = {r.locator for p in document.packages for r in p.external_references}
    assert {PackageURL.from_string(p).name for p in purls} == {name for name, *_ in RPM_SPECS}
    described = [r for r in document.relationships if r.relationship_type.name == "CONTAINS"]
    assert len(described) == len(RPM_SPECS)


def test_cli_names_unread_databases_on_stderr(
    capsys, layerpeek_env, plain_registry, package_images
):
    status, out, err = run(capsys, "packages", package_images.broken.ref(plain_registry.host))
    assert status == 0 and "good" in out
    warnings = err.splitlines()
    assert len(warnings) == 5 and all(w.startswith("layerpeek: warning: ") for w in warnings)
    assert any("var/lib/rpm/Packages (layer 0): a BerkeleyDB rpmdb" in w for w in warnings)


def test_cli_refuses_an_unknown_kind(capsys, layerpeek_env, plain_registry, package_images):
    status, out, err = run(capsys, "packages", "localhost/x", "--kind", "deb,gem")
    assert (status, out) == (2, "")
    assert (
        err
        == "layerpeek: error: unknown package kind gem; kinds: deb, apk, rpm, pypi, npm, golang\n"
    )


def test_cli_diff_packages_names_upgrades_additions_and_removals(
    capsys, layerpeek_env, plain_registry, package_images
):
    """From the status dpkg left after layer 1 to the one after layer 2, and back."""
    step1 = package_images.dpkg_step1.ref(plain_registry.host)
    latest = package_images.dpkg_layers.ref(plain_registry.host)
    base = len(dpkg_installed(package_images.trees.dpkg_admin))
    status, out, err = run(capsys, "diff", step1, latest, "--packages")
    assert (status, err) == (1, "")  # the images differ, as diff says
    assert out.splitlines()[2:] == [
        "+ deb extra all 0.1  (layer 2)",
        "- deb gone all 1.0",
        "^ deb tiny all 1.0 -> 2.0  (layer 2)",
        f"1 added, 1 removed, 1 upgraded, 0 downgraded, 0 changed, {base} unchanged",
    ]
    status, out, _ = run(capsys, "diff", latest, step1, "--packages", "--json")
    assert status == 1
    changes = {c["name"]: c for c in json.loads(out)["changes"]}
    assert changes["tiny"] | {"layer": None} == {
        "kind": "deb", "name": "tiny", "arch": "all", "change": "downgraded",
        "before": "2.0", "after": "1.0", "layer": None,
    }  # fmt: skip
    assert (changes["gone"]["change"], changes["extra"]["change"]) == ("added", "removed")
    same = run(capsys, "diff", latest, "--platform-b", "linux/amd64", "--packages")
    assert same[0] == 0  # nothing changed
