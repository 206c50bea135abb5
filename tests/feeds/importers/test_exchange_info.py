import json
from decimal import Decimal

import pytest

from redline.feeds.importers import exchange_info as xi


def info(*symbols):
    return {"timezone": "UTC", "serverTime": 1, "rateLimits": [], "symbols": list(symbols)}


def sym(name, tick, step, **extra):
    filters = [
        {"filterType": "PRICE_FILTER", "minPrice": "0.1", "tickSize": tick},
        {"filterType": "LOT_SIZE", "stepSize": step, "minQty": step},
    ]
    return {"symbol": name, "filters": filters, **extra}


def test_terms_by_symbol_with_coin_m_contract_size(tmp_path):
    p = tmp_path / "exchangeInfo.json"
    p.write_text(json.dumps(info(sym("BTCUSD_PERP", "0.1", "1", contractSize=100),
                                 sym("ETHUSDT", "0.01000000", "0.00010000"))))  # fmt: skip
    assert xi.looks_like(p.read_bytes()[:100])
    terms = xi.read(p)
    assert terms["BTCUSD_PERP"] == xi.Terms(Decimal("0.1"), Decimal(1), Decimal(100), p.name)
    assert (terms["ETHUSDT"].tick, terms["ETHUSDT"].contract_size) == (Decimal("0.01"), None)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"timezone": "UTC"}, "no 'symbols' list"),
        (info({"filters": []}), "has no 'symbol' key"),
        (
            info(sym("X", "0", "1")),
            "symbol 'X' has no PRICE_FILTER filter with a positive 'tickSize'",
        ),
    ],
)
def test_what_is_missing_is_named(tmp_path, doc, message):
    p = tmp_path / "ei.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=message):
        xi.read(p)
