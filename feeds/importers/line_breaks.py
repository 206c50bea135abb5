"""Line breaks found eight bytes at a time, compiled: where a line ends and how many there are.

A capture is tens of MB of text; looking at it a byte at a time for line breaks was a large
share of the Binance scan. Here a 64-bit word is tested for a 0x0A byte in a few operations
(bytes XOR 0x0A are zero exactly where a line break is).
"""

from __future__ import annotations

import numba as nb
import numpy as np

_ONES = np.uint64(0x0101010101010101)
_HIGHS = np.uint64(0x8080808080808080)
_NEWLINES = np.uint64(0x0A0A0A0A0A0A0A0A)


@nb.njit(cache=True, inline="always")
def line_end(buf, words, pos, n):
    """Index of the first line break at or after `pos` (n: none). Eight bytes at a time
    (`words`: buf as uint64): a word holds a line break when one of its bytes XOR 0x0A is
    zero, which (x - 0x01..) & ~x & 0x80.. tells without a branch per byte; then the byte is
    found in that word."""
    while pos < n and pos & 7:
        if buf[pos] == 10:
            return pos
        pos += 1
    k = pos >> 3
    while k < words.shape[0]:
        x = words[k] ^ _NEWLINES
        if (x - _ONES) & ~x & _HIGHS:
            pos = k << 3
            while buf[pos] != 10:
                pos += 1
            return pos
        k += 1
    pos = max(pos, words.shape[0] << 3)
    while pos < n and buf[pos] != 10:
        pos += 1
    return pos


_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)


@nb.njit(cache=True, nogil=True)
def count_lines(buf):
    """1 + the line breaks in `buf`, eight bytes at a time: ~(((x & 0x7F..) + 0x7F..) | x |
    0x7F..) is 0x80 in exactly the bytes of x that are zero (no carry crosses a byte), and
    the multiply adds those bits up in the top byte."""
    n = buf.shape[0]
    words = buf[: n - n % 8].view(np.uint64)
    count = 0
    for k in range(words.shape[0]):
        x = words[k] ^ _NEWLINES
        zero = ~(((x & _LOW7) + _LOW7) | x | _LOW7)
        count += ((zero >> np.uint64(7)) * _ONES) >> np.uint64(56)
    for i in range(words.shape[0] * 8, n):
        count += buf[i] == 10
    return count + 1
