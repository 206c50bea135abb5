import numpy as np
import pytest

from redline.feeds.wire.arena import Arena


def test_slots_are_aligned_never_reused_and_outlive_their_arena():
    arena = Arena(max_frame=64, size=256)
    views = []
    for i in range(20):
        slot = arena.slot()
        assert len(slot) == 64 and not slot.readonly
        slot[:13] = bytes([i]) * 13
        views.append(np.frombuffer(slot, np.uint8, 13))
        arena.keep(13)  # rounds up to 16: the next frame starts 8-byte aligned
    # 20 frames of 16 B through 256-byte arenas: a fresh one whenever fewer than 64 B are left
    for i, v in enumerate(views):
        assert (v == i).all(), f"frame {i} was overwritten"
        assert v.ctypes.data % 8 == 0


def test_arena_refuses_frames_smaller_than_a_header():
    with pytest.raises(ValueError, match="max_frame must be >= 16"):
        Arena(max_frame=8)
