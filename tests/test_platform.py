"""Platform parsing and choice follow Docker: arm64 means v8, attestations are skipped."""

import hashlib

import pytest

from layerpeek.core.errors import InvalidReference, PlatformNotFound
from layerpeek.core.image.manifest import Descriptor
from layerpeek.core.registry.platform import DEFAULT_PLATFORM, Platform, choose, parse_platform


def entry(os: str, arch: str, variant: str = "") -> Descriptor:
    platform = {"os": os, "architecture": arch, **({"variant": variant} if variant else {})}
    digest = "sha256:" + hashlib.sha256(f"{os}/{arch}/{variant}".encode()).hexdigest()
    return Descriptor.from_json({"digest": digest, "platform": platform})


INDEX = [
    entry("linux", "amd64"),
    entry("linux", "arm64"),  # no variant spelled: still v8
    entry("linux", "arm", "v7"),
    entry("linux", "arm", "v6"),
    entry("unknown", "unknown"),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", "linux/amd64"),
        ("linux/arm64", "linux/arm64/v8"),
        ("linux/arm64/v8", "linux/arm64/v8"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/aarch64", "linux/arm64/v8"),
        ("Linux/X86_64", "linux/amd64"),
        ("windows/amd64", "windows/amd64"),
    ],
)
def test_platforms_normalise(text, expected):
    assert str(parse_platform(text)) == expected


@pytest.mark.parametrize("text", ["linux", "linux/", "/amd64", "a/b/c/d", ""])
def test_malformed_platforms_are_rejected(text):
    with pytest.raises(InvalidReference, match="os/arch"):
        parse_platform(text)


def test_choose_matches_variants_and_defaults():
    assert choose(INDEX, DEFAULT_PLATFORM) is INDEX[0]
    assert choose(INDEX, parse_platform("linux/arm64")) is INDEX[1]
    assert choose(INDEX, parse_platform("linux/arm64/v8")) is INDEX[1]
    assert choose(INDEX, parse_platform("linux/arm/v6")) is INDEX[3]


def test_no_match_lists_available_platforms_without_attestations():
    with pytest.raises(PlatformNotFound) as caught:
        choose(INDEX, parse_platform("linux/s390x"))
    assert caught.value.available == (
        "linux/amd64",
        "linux/arm64/v8",
        "linux/arm/v7",
        "linux/arm/v6",
    )
    assert "linux/s390x" in str(caught.value)
    assert "unknown" not in str(caught.value)


def test_attestation_is_not_an_image():
    assert Platform.make("unknown", "unknown").is_attestation
