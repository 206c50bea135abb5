"""Fuzz: 100k random and mutated frames through the decoder (seeded, plain random).

Each frame's fate is predicted by a reference reading of the wire rules written
here, independently of the decoder: decoded exactly (same type, same bytes) or
skipped and counted under the predicted reason. Nothing may raise."""

import random
import struct

import numpy as np
import zmq

from redline.feeds import events as ev
from redline.feeds.live.zmq_feed import ZmqFeed
from redline.feeds.wire import frames as wire

N_FRAMES = 100_000
TYPES = list(ev.RecordType)


def _expected(buf: bytes):
    """('data', rtype) | ('end',) | ('bad', Malformed) by the documented rules."""
    M = wire.Malformed
    if len(buf) < 16:
        return ("bad", M.SHORT)
    magic, version, kind, code, _, count, size = struct.unpack("<4sBBBBII", buf[:16])
    if magic != b"RDLN":
        return ("bad", M.MAGIC)
    if version != 1:
        return ("bad", M.VERSION)
    if kind == 0:
        if code not in {int(t) for t in TYPES}:
            return ("bad", M.TYPE)
        if size != ev.DTYPES[ev.RecordType(code)].itemsize:
            return ("bad", M.RECORD_SIZE)
        payload = len(buf) - 16
        if payload % size:
            return ("bad", M.RAGGED)
        if count == 0 or payload // size != count:
            return ("bad", M.COUNT)
        return ("data", ev.RecordType(code))
    if kind == 1:
        return ("end",) if len(buf) == 16 and not (count or size or code) else ("bad", M.COUNT)
    return ("bad", M.KIND)


def _valid(rng: random.Random) -> bytes:
    if rng.random() < 0.03:
        return wire.encode_end()
    rtype = rng.choice(TYPES)
    n = rng.randint(1, 8)
    raw = rng.randbytes(n * ev.DTYPES[rtype].itemsize)
    return wire.encode(np.frombuffer(raw, ev.DTYPES[rtype]), rtype)


def _mutate(rng: random.Random, buf: bytes) -> bytes:
    op = rng.randrange(8)
    b = bytearray(buf)
    if op == 0:  # truncate anywhere
        return bytes(b[: rng.randint(0, len(b))])
    if op == 1:  # trailing junk
        return bytes(b) + rng.randbytes(rng.randint(1, 90))
    if op == 2:  # flip bytes anywhere
        for _ in range(rng.randint(1, 3)):
            b[rng.randrange(len(b))] ^= rng.randint(1, 255)
        return bytes(b)
    if op == 3:  # one header byte set to anything
        b[rng.randrange(16)] = rng.randrange(256)
        return bytes(b)
    if op == 4:  # count or record size set to anything, small or huge
        off = rng.choice((8, 12))
        b[off : off + 4] = struct.pack("<I", rng.choice((0, 1, 2, 63, 64, 65, 2**32 - 1)))
        return bytes(b)
    if op == 5:  # pure noise
        return rng.randbytes(rng.randint(0, 200))
    if op == 6:  # noise behind a plausible header prefix
        return bytes(b[:8]) + rng.randbytes(rng.randint(0, 200))
    return bytes(b)  # unchanged


def test_100k_random_and_mutated_frames_decode_exactly_or_are_counted():
    rng = random.Random(20261123)
    dec = wire.Decoder()
    want_bad = [0] * len(wire.Malformed)
    want_data = want_end = 0
    for _ in range(N_FRAMES):
        base = _valid(rng)
        buf = base if rng.random() < 0.2 else _mutate(rng, base)
        exp = _expected(buf)
        got = dec.decode(buf)
        if exp[0] == "data":
            want_data += 1
            assert got is not None and got is not wire.END_OF_STREAM, buf[:16]
            assert got.rtype == exp[1]
            assert got.records.tobytes() == buf[16:]  # exactly the bytes sent, as records
        elif exp[0] == "end":
            want_end += 1
            assert got is wire.END_OF_STREAM
        else:
            want_bad[exp[1]] += 1
            assert got is None, (exp, buf[:16])
    assert dec.malformed == want_bad
    assert (dec.frames, dec.ends) == (want_data, want_end)
    assert dec.frames + dec.ends + dec.malformed_total == N_FRAMES
    # the mix exercised every reason the decoder can see by itself
    assert all(want_bad[m] > 0 for m in wire.Malformed if m != wire.Malformed.OVERSIZE)


def test_mutated_messages_between_good_ones_never_disturb_the_feed():
    rng = random.Random(7)
    ctx = zmq.Context()
    try:
        feed = ZmqFeed("inproc://fuzz", kind="pull", bind=True, context=ctx)
        push = ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        push.setsockopt(zmq.SNDHWM, 0)  # all sends complete before the first receive
        push.connect("inproc://fuzz")
        good = ev.empty(ev.RecordType.QUOTE, 500)
        good["seq"] = np.arange(500)
        good["bid_px"] = np.random.default_rng(7).integers(0, 10**9, 500)
        for i in range(500):
            while _expected(bad := _mutate(rng, _valid(rng)))[0] != "bad":
                pass
            push.send(bad)
            frame = wire.encode(good[i : i + 1])
            push.send_multipart([frame, bad, frame[:-1]] if i % 2 else [frame])
        push.send(wire.encode_end())
        got = []
        while not feed.ended:
            b = feed.recv_batch(5.0)
            assert b is not None or feed.ended, "feed stalled"
            if b is not None:
                got.append(b.records)
        back = np.concatenate(got)
        np.testing.assert_array_equal(back["bid_px"], good["bid_px"])
        assert feed.stats()["malformed"] == 500 + 2 * 250
    finally:
        ctx.destroy(0)
