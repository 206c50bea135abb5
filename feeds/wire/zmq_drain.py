"""A compiled ZeroMQ receive loop: one call takes every frame waiting on a socket.

Why compiled: through pyzmq a `recv()` costs ~0.5 µs, learning that nothing is
waiting costs ~6 µs (`zmq.Again` is an exception), and judging and stamping a
frame in Python ~2 µs more (FLOORS.md, bench_feeds). Here numba calls libzmq's
`zmq_recv` directly: ~0.2 µs a frame with the check, the move and the
stamp (bench_feeds), and an empty socket is a return code (libzmq still polls
its mailbox for it: one syscall, ~1.5 µs here). Each frame is stamped with
the clock read right after its own `zmq_recv` returned.

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

from redline.feeds.events import QUOTE_DTYPE, TsSource
from redline.feeds.wire.frames import HEADER_SIZE, IS_DATA, IS_END, Malformed, check_frame

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


# A run's row in the flat `runs` array (1-D: numba unboxes a 2-D array ~0.5 µs slower).
RUN_CODE, RUN_AT, RUN_COUNT, RUN_SOURCE, RUN_FIRST_SEQ, RUN_LAST_SEQ, RUN_IN_ORDER = range(7)
RUN_FIELDS = 7

# Byte offsets of the header fields the loop reads and writes (the same in every record
# type). Passed as an argument, not read as globals: numba would freeze globals into its
# cache, which only notices when this file changes, not events.py.
HEADER_AT = np.array(
    [QUOTE_DTYPE.fields[f][1] for f in ("ts_recv", "seq", "source_id", "ts_recv_source")],
    np.int64,
)
_USER = int(TsSource.USER)  # ZeroMQ hides the kernel's receive time


@nb.njit(cache=True, inline="always")
def _u16(buf, at):
    return np.int64(buf[at]) | np.int64(buf[at + 1]) << 8


@nb.njit(cache=True, nogil=True)
def drain(sock, out, off, cap, max_frames, wait, now, sizes, header_at, counts, runs, ts):
    """Receive up to `max_frames` frames of at most `cap` bytes from `sock`.

    With `wait`, the first receive blocks inside libzmq (up to the socket's
    ZMQ_RCVTIMEO; the GIL is released); every other one, and all without
    `wait`, return at once when nothing is waiting.

    Records land in `out` from byte `off` on, back to back: each frame is
    received at `off` (free space: nothing handed out is ever written, since
    libzmq's I/O thread may still be reading a batch sent without a copy),
    judged by `check_frame` against `sizes` (which counts it in `counts`), and
    its records are moved down over its header. A frame longer than `cap` is
    counted OVERSIZE. Every record of a good frame gets `ts_recv` = the clock
    read after its receive (`ts` is scratch for it), or `now` if >= 0, and
    `ts_recv_source` USER (header offsets in `header_at`: see HEADER_AT).

    Consecutive frames of one record type form a run, a row of RUN_FIELDS in
    `runs`: record type, byte offset in `out`, records, then the first
    record's source_id and seq, the last record's seq, and whether every
    record came from that source numbered one after the other (the sequence
    tracker's fast path, decided here while the records are hot). Stops early
    at an END frame, when nothing is waiting, or when `out` has no room left
    for a frame of `cap` bytes.

    Returns (runs, new off, frames taken, errno or 0, stopped at END).
    """
    ts_recv_at, seq_at, source_id_at, ts_source_at = header_at
    base = out.ctypes.data
    tsp = ts.ctypes.data
    out64 = out.view(np.int64)  # `out` is 8-byte aligned and so is every int64 in it
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
        source = _u16(out, off + source_id_at)
        first = out64[(off + seq_at) >> 3]
        seq = first - 1
        in_order = True
        for r in range(off, off + nbytes, size):
            out64[(r + ts_recv_at) >> 3] = stamp
            out[r + ts_source_at] = _USER
            in_order &= _u16(out, r + source_id_at) == source
            in_order &= out64[(r + seq_at) >> 3] == seq + 1
            seq = out64[(r + seq_at) >> 3]
        row = (n_runs - 1) * RUN_FIELDS
        if n_runs and runs[row + RUN_CODE] == code:  # the same run goes on
            runs[row + RUN_IN_ORDER] &= (
                in_order
                and runs[row + RUN_SOURCE] == source
                and runs[row + RUN_LAST_SEQ] + 1 == first
            )
            runs[row + RUN_COUNT] += count
            runs[row + RUN_LAST_SEQ] = seq
        else:
            row += RUN_FIELDS
            runs[row + RUN_CODE] = code
            runs[row + RUN_AT] = off
            runs[row + RUN_COUNT] = count
            runs[row + RUN_SOURCE] = source
            runs[row + RUN_FIRST_SEQ] = first
            runs[row + RUN_LAST_SEQ] = seq
            runs[row + RUN_IN_ORDER] = in_order
            n_runs += 1
        off += nbytes
    return n_runs, off, taken, err, ended
