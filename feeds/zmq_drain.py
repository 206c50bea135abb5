"""A compiled ZeroMQ receive loop: one call takes every frame waiting on a socket.

Why compiled: through pyzmq a `recv()` costs ~0.5 µs, learning that nothing is
waiting costs ~6 µs (`zmq.Again` is an exception), and judging and stamping a
frame in Python ~2 µs more (FLOORS.md, bench_feeds). Here numba calls libzmq's
`zmq_recv` directly: ~0.15 µs a frame with the check, the move and the
stamp, and an empty socket is a return code. Each frame is stamped with the clock read
right after its own `zmq_recv` returned.

libzmq is bound by symbol, not by address, so numba can cache the loop: the
library pyzmq itself loaded is made visible to LLVM's linker at import. A
socket is passed as its handle (`zmq.Socket.underlying`); the caller owns it
and must not pass a closed one.
"""

from __future__ import annotations

import errno
import os

import llvmlite.binding as llvm
import numba as nb
import numpy as np
import zmq
from numba import types

from redline.feeds.wire import HEADER_SIZE, IS_DATA, IS_END, Malformed, check_frame

ZMQ_DONTWAIT = 1
CLOCK_REALTIME = 0
EAGAIN = errno.EAGAIN
EINTR = errno.EINTR
_OVERSIZE = int(Malformed.OVERSIZE)


def _libzmq_path() -> str:
    """The libzmq that pyzmq loaded (its own bundled copy or the system's)."""
    zmq.zmq_version()  # make sure the backend, and so libzmq, is loaded
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if "libzmq" in os.path.basename(path):
                return path
    # Built with libzmq linked statically: the symbols live in pyzmq's extension.
    from zmq.backend.cython import _zmq

    return _zmq.__file__


llvm.load_library_permanently(_libzmq_path())
# Pointers travel as intp: same register, same width on every 64-bit ABI.
_zmq_recv = types.ExternalFunction(
    "zmq_recv", types.intc(types.intp, types.intp, types.intp, types.intc)
)
_zmq_errno = types.ExternalFunction("zmq_errno", types.intc())
_clock_gettime = types.ExternalFunction("clock_gettime", types.intc(types.intc, types.intp))
_memmove = types.ExternalFunction("memmove", types.intp(types.intp, types.intp, types.intp))


@nb.njit(cache=True, nogil=True)
def drain(
    sock, cap, out, off, max_frames, sizes, stamp_at, source_at, source, now, counts, runs, ts, wait
):
    """Receive up to `max_frames` frames of at most `cap` bytes from `sock`.

    With `wait`, the first receive blocks inside libzmq (up to the socket's
    ZMQ_RCVTIMEO; the GIL is released); every other one, and all without
    `wait`, return at once when nothing is waiting.

    Records land in `out` from byte `off` on, back to back: each frame is
    received at `off` (free space: nothing handed out is ever written, since
    libzmq's I/O thread may still be reading a batch sent without a copy),
    judged by `check_frame` (which counts it in `counts`), and its records are
    moved down over its header. A frame longer than `cap`
    is counted OVERSIZE. Every record of a good frame gets `ts_recv` (int64 at
    `stamp_at`) = the clock read after its receive, or `now` if >= 0, and the
    byte at `source_at` = `source`. Consecutive frames of one record type form
    a run: `runs[i] = (record_type, byte offset in out, records)`. Stops early
    at an END frame, when nothing is waiting, or when `out` has no room left
    for a frame of `cap` bytes.

    Returns (runs, new off, frames taken, errno or 0, stopped at END).
    """
    base = out.ctypes.data
    tsp = ts.ctypes.data
    out64 = out.view(np.int64)  # `out` is 8-byte aligned and so is every stamp in it
    n_runs = 0
    taken = 0
    err = 0
    ended = False
    flags = 0 if wait else ZMQ_DONTWAIT
    while taken < max_frames and off + cap <= out.size:
        n = _zmq_recv(sock, base + off, cap, flags)
        flags = ZMQ_DONTWAIT
        if n < 0:
            err = _zmq_errno()
            break
        stamp = now
        if stamp < 0:
            _clock_gettime(CLOCK_REALTIME, tsp)
            stamp = ts[0] * 1_000_000_000 + ts[1]
        taken += 1
        if n > cap:  # zmq_recv truncated it
            verdict = _OVERSIZE
            counts[_OVERSIZE] += 1
        else:
            verdict, code, count = check_frame(out[off:], n, sizes, counts)
        if verdict == IS_END:
            ended = True
            break
        if verdict != IS_DATA:
            continue
        size = sizes[code]
        nbytes = count * size
        _memmove(base + off, base + off + HEADER_SIZE, nbytes)
        for r in range(off, off + nbytes, size):
            out64[(r + stamp_at) >> 3] = stamp
            out[r + source_at] = source
        if n_runs and runs[n_runs - 1, 0] == code:
            runs[n_runs - 1, 2] += count
        else:
            runs[n_runs, 0] = code
            runs[n_runs, 1] = off
            runs[n_runs, 2] = count
            n_runs += 1
        off += nbytes
    return n_runs, off, taken, err, ended
