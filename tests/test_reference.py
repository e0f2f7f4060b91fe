"""References normalise as Docker's do, and every rejection names the wrong part."""

import pytest

from layerpeek.core.errors import InvalidReference
from layerpeek.core.registry.reference import parse_reference, parse_repository

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("alpine", "docker.io", "library/alpine", "latest", None),
        ("alpine:3.20", "docker.io", "library/alpine", "3.20", None),
        ("user/repo:tag", "docker.io", "user/repo", "tag", None),
        ("docker.io/alpine", "docker.io", "library/alpine", "latest", None),
        ("index.docker.io/library/alpine", "docker.io", "library/alpine", "latest", None),
        ("registry-1.docker.io/a/b", "docker.io", "a/b", "latest", None),
        ("ghcr.io/owner/repo/sub:v1.2.3", "ghcr.io", "owner/repo/sub", "v1.2.3", None),
        ("localhost/app", "localhost", "app", "latest", None),
        ("localhost:5000/app:1", "localhost:5000", "app", "1", None),
        ("127.0.0.1:5000/a/b", "127.0.0.1:5000", "a/b", "latest", None),
        ("[::1]:5000/a", "[::1]:5000", "a", "latest", None),
        (f"alpine@{DIGEST}", "docker.io", "library/alpine", None, DIGEST),
        (f"alpine:3.20@{DIGEST}", "docker.io", "library/alpine", "3.20", DIGEST),
        (
            "my-registry.example.com:443/a_b/c__d/e-f.g:tag_1-x.y",
            "my-registry.example.com:443",
            "a_b/c__d/e-f.g",
            "tag_1-x.y",
            None,
        ),
    ],
)
def test_references_normalise_like_docker(text, registry, repository, tag, digest):
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry,
        repository,
        tag,
        digest,
    )


def test_docker_hub_is_reached_at_its_api_host():
    assert parse_reference("alpine").api_host == "registry-1.docker.io"
    assert parse_reference("ghcr.io/a/b").api_host == "ghcr.io"


def test_canonical_string_and_target():
    ref = parse_reference(f"alpine:3.20@{DIGEST}")
    assert str(ref) == f"docker.io/library/alpine:3.20@{DIGEST}"
    assert ref.target == DIGEST
    assert parse_reference("alpine").target == "latest"


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("", "empty"),
        ("Alpine", "lowercase"),
        ("alpine:", "invalid tag"),
        ("alpine:bad/tag", "invalid registry host"),
        ("alpine:" + "x" * 129, "invalid tag"),
        ("alpine@sha256:123", "invalid digest"),
        ("alpine@md5:" + "a" * 32, "invalid digest"),
        ("a//b", "invalid repository path component"),
        ("a/-b", "invalid repository path component"),
        ("https://ghcr.io/a/b", "URL scheme"),
        ("ghcr.io/", "missing repository"),
        ("bad_host.io:x/a", "invalid registry host"),
        ("alp ine", "whitespace"),
        ("a/" + "b" * 300, "longer than 255"),
    ],
)
def test_invalid_references_name_the_wrong_part(text, names):
    with pytest.raises(InvalidReference, match=names):
        parse_reference(text)


def test_repository_for_tag_listing_refuses_a_tag():
    assert parse_repository("alpine").repository == "library/alpine"
    assert parse_repository("alpine").tag is None
    with pytest.raises(InvalidReference, match="without tag"):
        parse_repository("alpine:3")
