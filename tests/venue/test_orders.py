"""How a target strategy's orders go out: `--orders` parsed and checked."""

import pytest

from redline.venue.orders import Kind, Orders


def test_orders_parse_into_a_kind_and_an_offset():
    o = Orders.parse("kind=post_only,offset=1")
    assert (o.code(), o.offset) == (Kind.POST_ONLY, 1)
    assert Orders.parse("").code() == Kind.MARKET


def test_a_bad_kind_names_the_valid_ones():
    with pytest.raises(
        ValueError, match=r"--orders 'kind=stop'.*valid: ioc, limit, market, post_only"
    ):
        Orders.parse("kind=stop")
