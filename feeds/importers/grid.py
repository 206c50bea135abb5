"""The grid a file's prices (or sizes) sit on: the greatest common divisor of all of them.

Never the printed decimals: a contract printed `61800.20` whose tick is 0.10 has every
price a multiple of 0.10, and that is its tick here (0.01 would make every range of ticks
ten times wider). Exact, and maybe coarser than the venue's tick when a file is short
(every price seen a multiple of 0.50): the instrument table says the tick was inferred.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

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
    d = int(dec.max(initial=0))
    if d > 12:
        raise ValueError(f"values with {d} decimals do not fit int64 steps")
    return Grid(d, common_step(scaled(mantissa, dec, d)))


def given(size: Decimal, mantissa: np.ndarray, dec: np.ndarray, what: str) -> Grid:
    """The grid of a venue's own step `size`; a value off it is a ValueError naming it
    (`what` says whose values, from which file)."""
    d = max(int(dec.max(initial=0)), decimals_of(size))
    grid = Grid(d, int(size.scaleb(d)))
    off = scaled(mantissa, dec, d) % grid.step != 0
    if off.any():
        i = int(np.flatnonzero(off)[0])
        value = Decimal(int(mantissa[i])).scaleb(-int(dec[i]))
        raise ValueError(
            f"{what}: {value} is not a multiple of {plain(size)} ({int(off.sum()):,} values "
            f"off it); check that the definition is this instrument's"
        )
    return grid
