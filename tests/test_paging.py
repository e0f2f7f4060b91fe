"""``core.paging``'s arithmetic, which the CLI, the MCP tools and the bot share."""

from __future__ import annotations

import pytest

from layerpeek.core.errors import LayerpeekError
from layerpeek.core.paging import check_page, last_start, window


def test_a_window_says_where_the_next_page_starts():
    items = list(range(10))
    assert window(items, 0, 4) == ([0, 1, 2, 3], 4)
    assert window(items, 8, 4) == ([8, 9], None)
    assert window(items, 6, 4) == ([6, 7, 8, 9], None)  # no empty page after the last
    assert window(items, 3, None) == (items[3:], None)
    assert window(items, 12, 4) == ([], None)


def test_the_last_page_starts_on_a_page_boundary():
    assert [last_start(total, 20) for total in (0, 1, 20, 21, 40, 41)] == [0, 0, 0, 20, 20, 40]


@pytest.mark.parametrize(("start", "limit"), [(-1, 10), (0, 0)])
def test_a_page_outside_the_listing_is_refused(start, limit):
    with pytest.raises(LayerpeekError, match="start >= 0 and limit >= 1"):
        check_page(start, limit)
