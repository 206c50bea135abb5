"""The grid a file's prices (or sizes) sit on: the greatest common divisor of all of them.

Never the printed decimals: a contract printed `61800.20` whose tick is 0.10 has every
price a multiple of 0.10, and that is its tick here (0.01 would make every range of ticks
ten times wider). Exact, and maybe coarser than the venue's tick when a file is short
(every price seen a multiple of 0.50): the instrument table says the tick was inferred.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numba as nb
import numpy as np

POW10 = 10 ** np.arange(19, dtype=np.int64)


def plain(d: Decimal) -> Decimal:
    """Shortest exact form, never exponent notation ('50', not '5E+1'; '0.1', not '0.10')."""
    d = d.normalize()
    return d.quantize(Decimal(1)) if d.as_tuple().exponent > 0 else d


def decimals_of(d: Decimal) -> int:
    """Decimals `d` is written with in its shortest form."""
    return max(0, -plain(d).as_tuple().exponent)


def common_step(values: np.ndarray) -> int:
    """Largest integer dividing every value (1 when there is none but 0)."""
    v = np.abs(values[values != 0])
    return int(np.gcd.reduce(v)) if len(v) else 1


@dataclass(frozen=True)
class Grid:
    """Decimal mantissas -> integer steps: scale to 10^-`decimals`, divide by `step`."""

    decimals: int
    step: int

    @property
    def size(self) -> Decimal:
        """One step as a decimal (the tick, or the lot)."""
        return plain(Decimal(self.step).scaleb(-self.decimals))

    def steps(self, mantissa: np.ndarray, dec: np.ndarray) -> np.ndarray:
        """Exact steps of values `mantissa * 10^-dec` (the caller checked the grid)."""
        return mantissa * POW10[self.decimals - dec] // self.step


def scaled(mantissa: np.ndarray, dec: np.ndarray, decimals: int) -> np.ndarray:
    """Values as integers of 10^-decimals (exact; `decimals` >= every `dec`)."""
    return mantissa * POW10[decimals - dec]


def inferred(mantissa: np.ndarray, dec: np.ndarray) -> Grid:
    """The coarsest grid every value sits on."""
    return inferred_of([(mantissa, dec)])


def inferred_of(values: list[tuple[np.ndarray, np.ndarray]]) -> Grid:
    """The coarsest grid every value of several (mantissa, decimals) arrays sits on: what
    `inferred` gives on them joined, without joining them."""
    d = max((int(dec.max(initial=0)) for _, dec in values), default=0)
    if d > 12:
        raise ValueError(f"values with {d} decimals do not fit int64 steps")
    g = 0
    for mantissa, dec in values:
        g = _scaled_gcd(mantissa, dec, d, g)
    return Grid(d, g or 1)


@nb.njit(cache=True, nogil=True)
def _scaled_gcd(mantissa, dec, decimals, g):
    """gcd of `g` and every non-zero |mantissa * 10^(decimals - dec)|, in one pass that stops
    at 1 (a fine-grained price series gets there within a few values)."""
    for i in range(mantissa.shape[0]):
        if g == 1:
            break
        v = abs(mantissa[i] * POW10[decimals - dec[i]])
        while v:
            g, v = v, g % v
    return g


def given(size: Decimal, mantissa: np.ndarray, dec: np.ndarray, what: str) -> Grid:
    """The grid of a venue's own step `size`; a value off it is a ValueError naming it
    (`what` says whose values, from which file)."""
    return given_of(size, [(mantissa, dec)], what)


def given_of(size: Decimal, values: list[tuple[np.ndarray, np.ndarray]], what: str) -> Grid:
    """`given` on several (mantissa, decimals) arrays, as if joined in order."""
    d = max([decimals_of(size)] + [int(dec.max(initial=0)) for _, dec in values])
    grid = Grid(d, int(size.scaleb(d)))
    offs = [(m, dc, scaled(m, dc, d) % grid.step != 0) for m, dc in values]
    first = next(((m, dc, off) for m, dc, off in offs if off.any()), None)
    if first is not None:
        mantissa, dec, off = first
        i = int(np.flatnonzero(off)[0])
        value = Decimal(int(mantissa[i])).scaleb(-int(dec[i]))
        n_off = sum(int(o.sum()) for _, _, o in offs)
        raise ValueError(
            f"{what}: {value} is not a multiple of {plain(size)} ({n_off:,} values "
            f"off it); check that the definition is this instrument's"
        )
    return grid
