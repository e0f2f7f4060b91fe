"""`tags`: every tag of a repository, on the real registry and through Link pagination.

Distribution 2.8 ignores ``n`` and ``last`` (and does not sort), so pagination is exercised
against a stand-in that pages the way Docker Hub and GHCR do.
"""

from __future__ import annotations

import pytest

from fixtures.catalog import TAG_NAMES
from fixtures.standins import TagPages
from layerpeek.core.errors import NotFound

REPO = "team/app"
SEVEN = [f"r{i:02d}" for i in range(1, 8)]  # pages of 2: r01-02, r03-04, r05-06, r07


def page_url(last: str) -> str:
    return f"/v2/{REPO}/tags/list?n=2&last={last}"


FIRST_PAGE = f"/v2/{REPO}/tags/list?n=1000"
EVERY_PAGE = [FIRST_PAGE, page_url("r02"), page_url("r04"), page_url("r06")]


async def test_all_tags_of_a_real_repository(peek, plain_registry, catalog):
    tags = await peek.tags(f"{plain_registry.host}/{catalog.tags.repo}")
    assert len(tags) == len(TAG_NAMES) == 30
    assert set(tags) == set(catalog.tags.tags) == set(TAG_NAMES)


async def test_unknown_repository_is_not_found_with_the_registry_code(peek, plain_registry):
    with pytest.raises(NotFound) as caught:
        await peek.tags(f"{plain_registry.host}/no/such-repo")
    assert "NAME_UNKNOWN" in str(caught.value) and "no/such-repo" in str(caught.value)
    assert caught.value.codes == ("NAME_UNKNOWN",)


@pytest.mark.parametrize("absolute", [False, True], ids=["relative-link", "absolute-link"])
async def test_link_pages_are_followed_to_the_last(peek, absolute):
    with TagPages(REPO, SEVEN, page_size=2, absolute_links=absolute) as standin:
        tags = await peek.tags(f"{standin.host}/{REPO}")
    assert tags == SEVEN  # each once, in page order
    assert standin.page_requests == EVERY_PAGE


@pytest.mark.parametrize("loop_to", ["r02", "r06"], ids=["earlier-page", "same-page"])
async def test_a_link_back_to_a_page_already_seen_ends_the_listing(peek, loop_to):
    with TagPages(REPO, SEVEN, page_size=2, loop_to=loop_to) as standin:
        tags = await peek.tags(f"{standin.host}/{REPO}")
    assert tags == SEVEN
    assert standin.page_requests == EVERY_PAGE


async def test_a_link_back_to_the_first_page_under_another_url_still_ends(peek):
    """The first request asks n=1000, the loop comes back as n=2&last= (same page, new URL):
    the client fetches it once more, then meets a URL it has seen, and every tag stays once."""
    with TagPages(REPO, SEVEN, page_size=2, loop_to="") as standin:
        tags = await peek.tags(f"{standin.host}/{REPO}")
    assert sorted(tags) == SEVEN and len(tags) == len(set(tags))
    assert len(standin.page_requests) <= len(EVERY_PAGE) + 1
