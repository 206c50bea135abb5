"""Receive buffers that records can be handed out of without a copy.

A transport receives each frame into the next free slice of a large
bytearray and the decoder returns numpy views of it, so a batch costs no
allocation and its records are writable (the feed stamps `ts_recv` in
place). Space is never reused: when an arena runs low a fresh one is taken,
and the old one lives exactly as long as some batch still views it.
"""

from __future__ import annotations

_ALIGN = 8  # keep every frame 8-byte aligned so int64 fields load aligned


class Arena:
    __slots__ = ("_buf", "_off", "_view", "max_frame", "size")

    def __init__(self, max_frame: int, size: int | None = None) -> None:
        if max_frame < 16:
            raise ValueError(f"Arena: max_frame must be >= 16 bytes, got {max_frame}")
        self.max_frame = max_frame
        self.size = max(size or 4 << 20, 4 * max_frame)
        self._fresh()

    def _fresh(self) -> None:
        self._buf = bytearray(self.size)
        self._view = memoryview(self._buf)
        self._off = 0

    def slot(self) -> memoryview:
        """A writable slice of `max_frame` bytes to receive the next frame into."""
        if self.size - self._off < self.max_frame:
            self._fresh()
        return self._view[self._off : self._off + self.max_frame]

    def keep(self, nbytes: int) -> None:
        """Commit the first `nbytes` of the last slot (handed out, never reused)."""
        self._off += (nbytes + _ALIGN - 1) & ~(_ALIGN - 1)
