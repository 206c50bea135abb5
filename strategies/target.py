"""Strategies: the API the live graph and the backtest both call, and their registry.

A target-position strategy module has:

    Params                         a Settings class: typed, validated, defaults in the types
    new_state(params, n) -> array  preallocated float64 state, one row per instrument
    step(row, p, bid, ask, pos)    compiled (numba): one quote of one instrument; returns the
                                   target position in lots; `p` is `params.vector()`, `pos`
                                   what the strategy has (filled and still in flight)

The runner turns target minus position into orders, so a strategy never tracks fills itself,
and its safe default (no answer in time, a halted venue) is to keep the position it has: no
step, no order. `step` is called from compiled loops only, never once per event from Python.

A quoting strategy module (market_maker) has `quote` in place of `step`:

    quote(row, p, bid, ask, bid_sz, ask_sz, pos)
                                   compiled: one quote of one instrument; writes the quotes it
                                   wants into row[0:4] (bid price, bid lots, ask price, ask
                                   lots; 0 lots: none on that side); `pos` what it has filled

The runner keeps one resting order per side to match: an order at another price (or on a side
no longer wanted) is cancelled, a side wanted and not resting gets a post-only order. Its safe
default is to quote nothing.
"""

from __future__ import annotations

import importlib
from types import ModuleType

STRATEGIES = {
    "ema_cross": "redline.strategies.ema_cross",
    "market_maker": "redline.strategies.market_maker",
    "model_signal": "redline.strategies.model_signal",
}


def strategy(name: str) -> ModuleType:
    """The strategy module called `name`; ValueError naming the known ones."""
    try:
        return importlib.import_module(STRATEGIES[name])
    except KeyError:
        raise ValueError(
            f"no strategy {name!r}; the strategies are {', '.join(STRATEGIES)}"
        ) from None


def params(name: str, pairs: list[str]):
    """`name`'s Params from `key=value` strings (as `--param` gives them), checked."""
    import msgspec

    module = strategy(name)
    fields = {f.encode_name: f for f in msgspec.structs.fields(module.Params)}
    values = {}
    for pair in pairs:
        key, eq, text = pair.partition("=")
        if not eq or key not in fields:
            raise ValueError(
                f"--param {pair!r}: give key=value with a key of {name}'s: {', '.join(fields)}"
            )
        values[key] = text
    try:
        return msgspec.convert(values, module.Params, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"--param: {name}: {exc}") from None
