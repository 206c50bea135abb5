import json
from decimal import Decimal

import pytest

from redline.feeds.importers import binance as bi
from redline.feeds.importers.binance_terms import COINM, SPOT, USDM
from redline.feeds.importers.exchange_info import Terms


def line(ts, data):
    return f"{ts} {json.dumps(data, separators=(',', ':'))}"


def futures_ticker(sym, u, b, a):
    return {"e": "bookTicker", "u": u, "s": sym, "b": b, "B": "1", "a": a, "A": "3", "T": 5, "E": 6}


def spot_ticker(sym, u, b, a):  # spot bookTicker: no e, E or T
    return {"u": u, "s": sym, "b": b, "B": "1.5", "a": a, "A": "2"}


def test_coin_m_contracts_carry_their_face_value():
    lines = [line(1, futures_ticker("BTCUSD_PERP", 1, "61800.2", "61800.3")),
             line(2, futures_ticker("ETHUSD_240927", 2, "2500.01", "2500.02"))]  # fmt: skip
    imp = bi.import_bytes("\n".join(lines).encode())
    btc, eth = (imp.instruments.by_symbol(s) for s in ("BTCUSD_PERP", "ETHUSD_240927"))
    assert (btc.multiplier, eth.multiplier) == (Decimal(100), Decimal(10))
    assert btc.source == "gcd of 2 prices; face value USD 100 (Binance's for BTCUSD)"
    assert (imp.stats["binance"]["market BTCUSD_PERP"], str(btc.tick_size)) == (COINM, "0.1")


def test_exchange_info_wins_over_the_gcd_and_is_named_as_the_source():
    lines = [line(1, futures_ticker("BTCUSD_PERP", 1, "61800.0", "61801.0"))]
    info = {"BTCUSD_PERP": Terms(Decimal("0.1"), Decimal(1), Decimal(100), "exchangeInfo.json")}
    imp = bi.import_bytes("\n".join(lines).encode(), info=info)
    (inst,) = imp.instruments
    # the capture alone would say tick 1.0; the venue says 0.1
    assert (str(inst.tick_size), inst.multiplier, inst.source) == ("0.1", 100, "exchangeInfo.json")
    assert imp.quotes[["bid_px", "ask_px"]].tolist() == [(618000, 618010)]
    bad = {"BTCUSD_PERP": Terms(Decimal("0.5"), Decimal(1), None, "ei.json")}
    lines = [line(1, futures_ticker("BTCUSD_PERP", 1, "61800.2", "61800.5"))]
    with pytest.raises(
        ValueError, match=r"cap: BTCUSD_PERP price vs ei.json: 61800.2 is not a multiple of 0.5"
    ):
        bi.import_bytes("\n".join(lines).encode(), where="cap", info=bad)


def test_spot_book_ticker_has_no_event_time_and_gets_none_invented():
    imp = bi.import_bytes(line(77, spot_ticker("ETHUSDT", 9, "2500.10", "2500.20")).encode())
    q = imp.quotes
    assert q[["ts_recv", "ts_event", "seq", "bid_px", "ask_px"]].tolist() == [
        (77, 0, 9, 25001, 25002)
    ]
    assert imp.stats["binance"]["ts_event_unknown"] == 1
    assert imp.stats["binance"]["market ETHUSDT"] == SPOT
    assert imp.stats["latency_ns"]["quotes"]["count"] == 0  # no event time, no latency


def test_one_symbol_with_spot_and_futures_lines_is_refused():
    lines = [
        line(1, futures_ticker("ETHUSDT", 1, "1.0", "2.0")),
        line(2, spot_ticker("ETHUSDT", 2, "1.0", "2.0")),
    ]
    with pytest.raises(ValueError, match="cap: ETHUSDT has both spot messages"):
        bi.import_bytes("\n".join(lines).encode(), where="cap")


def test_usd_m_stays_usd_m():
    imp = bi.import_bytes(line(1, futures_ticker("ETHUSDT", 1, "1.0", "2.0")).encode())
    assert imp.stats["binance"]["market ETHUSDT"] == USDM
    assert next(iter(imp.instruments)).multiplier == 1
