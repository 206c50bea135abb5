"""One cached compiled loop per venue and strategy.

numba keys its on-disk cache by argument types. A loop that takes the strategy's compiled step
as an argument is typed by that dispatcher, which is a new object in every process: it never hit
the cache, compiled afresh on every `redline backtest` (~4 s of the 5 s on the bundled data) and
grew the cache index until a stale entry crashed a later process. Each entry below takes only
arrays and names its strategy as a global, so it compiles once per machine. A strategy module
not listed here (a user's own) runs the same loop compiled in-process.

numba checks only this file's stamp before it reuses a cached entry; feeds/jit_cache.py drops
these entries when l1.py, l2.py, a listed strategy or anything they import is edited.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType, SimpleNamespace

import numba as nb

from redline.strategies import ema_cross, market_maker, model_signal
from redline.venue import l1, l2


@nb.njit(cache=True, nogil=True)
def l1_ema_cross(args) -> int:
    return l1.run_chunk(False, ema_cross.step, l1.no_quote, args)


@nb.njit(cache=True, nogil=True)
def l1_model_signal(args) -> int:
    return l1.run_chunk(False, model_signal.step, l1.no_quote, args)


@nb.njit(cache=True, nogil=True)
def l1_market_maker(args) -> int:
    return l1.run_chunk(True, l1.no_step, market_maker.quote, args)


@nb.njit(cache=True, nogil=True)
def l2_ema_cross(args) -> int:
    return l2.run_chunk(False, ema_cross.step, l1.no_quote, args)


@nb.njit(cache=True, nogil=True)
def l2_model_signal(args) -> int:
    return l2.run_chunk(False, model_signal.step, l1.no_quote, args)


@nb.njit(cache=True, nogil=True)
def l2_market_maker(args) -> int:
    return l2.run_chunk(True, l1.no_step, market_maker.quote, args)


_CACHED = {
    ("l1", ema_cross.__name__): l1_ema_cross,
    ("l1", model_signal.__name__): l1_model_signal,
    ("l1", market_maker.__name__): l1_market_maker,
    ("l2", ema_cross.__name__): l2_ema_cross,
    ("l2", model_signal.__name__): l2_model_signal,
    ("l2", market_maker.__name__): l2_market_maker,
}


def loop(venue: str, module: ModuleType | SimpleNamespace) -> Callable[[tuple], int]:
    """The chunk loop of `venue` ("l1" or "l2") for the strategy `module` (strategies/target.py:
    `step` for a target-position strategy, `quote` for a quoting one)."""
    cached = _CACHED.get((venue, getattr(module, "__name__", None)))
    if cached is not None:
        return cached
    run = {"l1": l1.run_chunk, "l2": l2.run_chunk}[venue]
    if hasattr(module, "quote"):
        return lambda args: run(True, l1.no_step, module.quote, args)
    return lambda args: run(False, module.step, l1.no_quote, args)
