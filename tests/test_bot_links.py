"""Signed download links: signing, expiry, tampering, and the endpoint streaming from the
real registry (through httpx's ASGI transport, so no port is needed)."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from fixtures.bot import allow_local_registry
from fixtures.catalog import LATE_TXT
from layerpeek.bot import answers
from layerpeek.bot.answers import link_url, pinned
from layerpeek.bot.app import make_context
from layerpeek.bot.reply import Reply
from layerpeek.bot.settings import BotSettings
from layerpeek.core import tokens
from layerpeek.core.errors import LayerpeekError
from layerpeek.core.links import LinkError, LinkExpired, LinkTarget, sign, verify
from layerpeek.core.settings import Settings, load_settings
from layerpeek.core.startup import open_service
from layerpeek.links.endpoint import LinkServer
from layerpeek.links.settings import LinkSettings

SECRET = b"0123456789abcdef-test-secret"
NOW = 1_800_000_000
TARGET = LinkTarget("registry.example/app@sha256:" + "ab" * 32, 2, "etc/passwd", 42, NOW + 60)


def test_a_signed_link_verifies_to_its_target():
    assert verify(SECRET, sign(SECRET, TARGET), NOW) == TARGET


def test_a_layer_link_has_no_path_and_a_merged_file_link_no_layer():
    layer = LinkTarget(TARGET.reference, 0, None, 1, NOW + 1)
    merged = LinkTarget(TARGET.reference, None, "etc/passwd", 1, NOW + 1)
    assert verify(SECRET, sign(SECRET, layer), NOW) == layer
    assert verify(SECRET, sign(SECRET, merged), NOW) == merged
    with pytest.raises(LinkError, match="names a layer, a file, or both"):
        sign(SECRET, LinkTarget(TARGET.reference, None, None, 1, NOW))


def test_a_link_expires():
    token = sign(SECRET, TARGET)
    assert verify(SECRET, token, TARGET.expires - 1) == TARGET
    with pytest.raises(LinkExpired, match="expired"):
        verify(SECRET, token, TARGET.expires)


def test_a_changed_body_or_signature_or_secret_is_refused():
    body, _, signature = sign(SECRET, TARGET).partition(".")
    other = sign(SECRET, LinkTarget(TARGET.reference, 0, None, 42, NOW + 10**6))
    forged = f"{other.partition('.')[0]}.{signature}"  # another target under this signature
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    for token in (forged, f"{body}.{flipped}", f"{body}.", body):
        with pytest.raises(LinkError, match=r"not valid|malformed"):
            verify(SECRET, token, NOW)
    with pytest.raises(LinkError, match="not valid"):
        verify(b"another-secret-of-16+bytes", sign(SECRET, TARGET), NOW)


def test_only_the_exact_spelling_of_a_signature_is_accepted():
    """base64 decoders skip junk and surplus padding; a signature is 22 characters of
    base64url, nothing else, and the last character's unused bits must be zero."""
    body, _, signature = sign(SECRET, TARGET).partition(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    same_bytes = signature[:-1] + alphabet[alphabet.index(signature[-1]) | 1]
    spellings = {
        "padded": signature + "==",
        "one pad": signature + "=",
        "junk inside": signature[:10] + "!" + signature[10:],
        "space": signature[:5] + " " + signature[5:],
        "newline": signature + "\n",
        "doubled": signature + signature,
    }
    malformed = r"^this download link is malformed; ask for a new one$"
    for spelled in spellings.values():
        with pytest.raises(LinkError, match=malformed):
            verify(SECRET, f"{body}.{spelled}", NOW)
    with pytest.raises(LinkError, match=r"not valid \(it was changed\)"):
        verify(SECRET, f"{body}.{same_bytes}", NOW)
    assert verify(SECRET, f"{body}.{signature}", NOW) == TARGET


def test_a_link_counts_against_a_person_a_credential_key_or_itself():
    for user in (42, "b:5f3a9c0e1d2b4a68", None):
        target = LinkTarget(TARGET.reference, 0, None, user, NOW + 60)
        assert verify(SECRET, sign(SECRET, target), NOW).user == user


def test_a_signed_token_that_does_not_parse_is_malformed():
    token = tokens.sign(SECRET, {"r": "x"})
    with pytest.raises(LinkError, match="malformed"):
        verify(SECRET, token, NOW)


def test_a_short_secret_is_refused():
    with pytest.raises(LinkError, match="at least 16 bytes"):
        sign(b"short", TARGET)


def test_tokens_are_url_safe_and_compact():
    token = sign(SECRET, TARGET)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    assert len(token) < 300


# -- the endpoint ----------------------------------------------------------------------------


@pytest.fixture
def link_settings(layerpeek_env, monkeypatch):
    allow_local_registry(monkeypatch, layerpeek_env)
    links = LinkSettings(
        url="https://links.example", secret=SECRET.decode(), user_rate=3, max_bytes=1 << 20
    )
    return BotSettings(links=links)


def capped(settings: BotSettings, max_bytes: int) -> BotSettings:
    """``settings`` with links that stream at most ``max_bytes``."""
    links = settings.links.model_copy(update={"max_bytes": max_bytes})
    return settings.model_copy(update={"links": links})


async def _get(server: LinkServer, url: str) -> httpx.Response:
    path = httpx.URL(url).path
    transport = httpx.ASGITransport(app=server.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://links") as http:
        return await http.get(path)


async def test_the_endpoint_streams_a_layer_blob_verified(link_settings, plain_registry, catalog):
    async with open_service(Settings(), guarded=True) as peek:
        ctx = make_context(peek, capped(link_settings, 8 << 20))
        image = await ctx.peek.resolve(catalog.gzip.ref(plain_registry.host))
        url = link_url(ctx, pinned(image), 1, None, user=7)
        assert url is not None and url.startswith("https://links.example/d/")
        response = await _get(LinkServer(ctx.peek, ctx.settings.links), url)
    assert response.status_code == 200
    blob = catalog.gzip.layers[1].blob
    assert hashlib.sha256(response.content).hexdigest() == hashlib.sha256(blob).hexdigest()
    assert response.headers["content-length"] == str(len(blob))
    assert response.headers["content-disposition"].endswith('.tar.gz"')


async def test_the_endpoint_streams_one_file(link_settings, plain_registry, catalog):
    async with open_service(Settings(), guarded=True) as peek:
        ctx = make_context(peek, link_settings)
        image = await ctx.peek.resolve(catalog.gzip.ref(plain_registry.host))
        server = LinkServer(ctx.peek, ctx.settings.links)
        merged = await _get(server, link_url(ctx, pinned(image), None, "app/data/late.txt", 7))
        lower = await _get(server, link_url(ctx, pinned(image), 0, "/etc/hostname", 7))
    assert merged.status_code == 200 and merged.content == LATE_TXT
    assert 'filename="late.txt"' in merged.headers["content-disposition"]
    assert lower.status_code == 200 and lower.content == b"layerpeek\n"


async def test_the_endpoint_refuses_what_a_link_does_not_allow(
    link_settings, plain_registry, catalog
):
    async with open_service(Settings(), guarded=True) as peek:
        ctx = make_context(peek, link_settings)
        image = await ctx.peek.resolve(catalog.gzip.ref(plain_registry.host))
        clock = [float(NOW)]
        server = LinkServer(ctx.peek, ctx.settings.links, clock=lambda: clock[0])
        secret = SECRET

        def token(layer, path, user=7, expires=NOW + 60):
            return "/d/" + sign(secret, LinkTarget(pinned(image), layer, path, user, expires))

        too_big = await _get(server, token(1, None))  # 2 MiB layer, 1 MiB cap
        missing = await _get(server, token(None, "no/such/file"))
        tampered = await _get(server, token(0, None)[:-2] + "xx")
        expired = await _get(server, token(0, None, expires=NOW - 1))
        limited = [(await _get(server, token(0, None, user=9))).status_code for _ in range(4)]
    assert too_big.status_code == 413 and "more than the 1.0 MiB" in too_big.text
    assert missing.status_code == 404 and "not a file" in missing.text
    assert tampered.status_code == 403
    assert expired.status_code == 410
    assert limited == [200, 200, 200, 429]


async def test_a_file_larger_than_the_cap_is_cut_off_not_truncated(
    link_settings, plain_registry, catalog
):
    async with open_service(Settings(), guarded=True) as peek:
        ctx = make_context(peek, capped(link_settings, 1000))
        image = await ctx.peek.resolve(catalog.gzip.ref(plain_registry.host))
        url = link_url(ctx, pinned(image), None, "app/data/filler-0.bin", 7)
        with pytest.raises(LayerpeekError, match="larger than"):
            await _get(LinkServer(ctx.peek, ctx.settings.links), url)


async def test_peek_offers_no_button_for_a_layer_the_endpoint_would_refuse(
    link_settings, plain_registry, catalog
):
    """Layer 1 is 2 MiB: a button under a 1 MiB cap would only lead to a 413."""
    ref = catalog.gzip.ref(plain_registry.host)
    async with open_service(Settings(), guarded=True) as peek:
        over = await answers.peek(make_context(peek, link_settings), 7, ref, layer=1)
        under = await answers.peek(
            make_context(peek, capped(link_settings, 4 << 20)), 7, ref, layer=1
        )
    assert _link_buttons(over) == []
    assert _link_buttons(under) == ["Download layer 1 (2.0 MiB)"]


def _link_buttons(reply: Reply) -> list[str]:
    assert reply.view is not None
    return [item.label for item in reply.view.children if getattr(item, "url", None)]


def test_no_link_without_a_public_url_or_secret(layerpeek_env):
    no_url = BotSettings(links=LinkSettings(url=None, secret=SECRET.decode()))
    assert not no_url.links_enabled
    assert not BotSettings(links=LinkSettings(url="https://x", secret=None)).links_enabled


def test_a_bad_shared_link_setting_is_named(layerpeek_env, monkeypatch):
    monkeypatch.setenv("LAYERPEEK_LINK_MAX_BYTES", "lots")
    with pytest.raises(LayerpeekError, match="invalid LAYERPEEK_LINK_MAX_BYTES"):
        load_settings(BotSettings)


def test_the_bot_reads_the_shared_link_settings(layerpeek_env, monkeypatch):
    monkeypatch.setenv("LAYERPEEK_LINK_URL", "https://links.example")
    monkeypatch.setenv("LAYERPEEK_LINK_SECRET", SECRET.decode())
    monkeypatch.setenv("LAYERPEEK_LINK_HOURS", "2")
    settings = BotSettings()
    assert settings.links_enabled and settings.links.hours == 2
