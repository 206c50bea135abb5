"""Wire protocol between the arbiter and an inference worker (ZeroMQ DEALER <-> DEALER).

Every message is a multipart ZeroMQ message: one fixed 48-byte header frame, then payload frames.

    header  kind u1 | rtype u1 | flags u1 | pad | version u4 | id u8 | s0 s1 s2 s3 i8

arbiter -> worker
    EVENT     id = event number, rtype = RecordType, flags & ASK: answer it; [hdr, record bytes]
    EVENTS    a batch: id = first event number, s0 = n;
              [hdr, rtypes u1[n], event numbers u8[n], records [n, SLOT] bytes, flags u1[n]]
              (the RESTORE replay layout plus per-event flags; flags & ASK: answer it)
    ASK       id = event number to answer (hedge, verification) ; [hdr]
    SNAPSHOT  send your resident state                          ; [hdr]
    RESTORE   id = event number the state is as of, s0 = n replayed events;
              [hdr, state blob, rtypes u1[n], event numbers u8[n], records [n, SLOT] bytes]
    FAULT     inject a fault (faults.FaultSpec text)            ; [hdr, utf-8 spec]
    STOP      exit cleanly                                      ; [hdr]
    LOAD      load a model version beside the serving one, warm it, run the canary on the last
              id rows held; version = the expected version id (0: any) ; [hdr, plan dir utf-8]
    USE       from event number id on, answer with model version `version` (the swap's flip)
                                                                ; [hdr]
    DROP      unload model version `version` (not the serving one) ; [hdr]
    SHADOW    time model version `version` beside the serving one on the rows of each answer,
              report every id ns (workers/versions.py); version 0: stop ; [hdr, u4 every]
worker -> arbiter
    READY     version = model version, id = pid, s0 = out_features ; [hdr]
    HEARTBEAT id = last event number applied, s0 = wall time     ; [hdr]
    ANSWER    id = event number, version, s0..s3 = worker wall-clock stamps (received,
              compute start, compute end, sent)                  ; [hdr, float32[out_features]]
    ANSWERS   the asked events of one EVENTS batch, s0 = k, version;
              [hdr, answers_dtype(out_features)[k]: id, the four stamps, outputs]
    STATE     id = event number the state is as of               ; [hdr, state blob]
    ERROR     id = event number or 0                             ; [hdr, utf-8 message]
    LOADED    the LOAD's outcome: version = the loaded version id, id = m canary rows, s0 = load
              and warm ns, s1 = canary ns; [hdr, float32 [2, m, out_features]: the serving
              version's outputs, then the new one's]. s3 = 1: refused; [hdr, utf-8 reason]
    SHADOWED  paired times since the last: version = the shadow version, id = m model calls,
              s0 = the serving version; [hdr, int64 [m, 3]: rows, serving ns, shadow ns]

Every ANSWER and ANSWERS carries in `version` the id of the model version that computed it
(the version serving its event number: engines.py), which the arbiter checks against its own
record of the flips.

The header layout and the slots events travel in are framing, kept with every other framing in
feeds/wire/frames.py; this module says what each kind of message means. Frames go out without
a copy where the transport can (ZeroMQ itself copies frames under 64 KiB, which is cheaper
than tracking them, so only state blobs and replays travel zero-copy).
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

import numpy as np

from redline.feeds.wire.frames import WORKER_HEADER, pack_slots, unpack_slots


class Kind(IntEnum):
    EVENT = 1
    ASK = 2
    SNAPSHOT = 3
    RESTORE = 4
    FAULT = 5
    STOP = 6
    EVENTS = 7
    LOAD = 8
    USE = 9
    DROP = 10
    SHADOW = 11
    READY = 16
    HEARTBEAT = 17
    ANSWER = 18
    STATE = 19
    ERROR = 20
    ANSWERS = 21
    LOADED = 22
    SHADOWED = 23


ASK_FLAG = 1

HEADER = WORKER_HEADER


class Reply(NamedTuple):
    """A decoded worker -> arbiter message."""

    kind: Kind
    id: int
    version: int
    stamps: tuple[int, int, int, int]
    payload: memoryview | None


def header(
    kind: Kind,
    id_: int = 0,
    *,
    rtype: int = 0,
    flags: int = 0,
    version: int = 0,
    s0: int = 0,
    s1: int = 0,
    s2: int = 0,
    s3: int = 0,
) -> bytes:
    return HEADER.pack(kind, rtype, flags, version, id_, s0, s1, s2, s3)


def decode_reply(frames: list) -> Reply:
    """Frames (zmq.Frame or bytes) from a worker -> Reply; a malformed message raises ValueError."""
    head = frames[0].buffer if hasattr(frames[0], "buffer") else memoryview(frames[0])
    if len(head) != HEADER.size:
        raise ValueError(f"worker message header is {len(head)} bytes, expected {HEADER.size}")
    kind, _rtype, _flags, version, id_, s0, s1, s2, s3 = HEADER.unpack(head)
    try:
        kind = Kind(kind)
    except ValueError:
        raise ValueError(f"worker message has unknown kind {kind}") from None
    payload = None
    if len(frames) > 1:
        f = frames[1]
        payload = f.buffer if hasattr(f, "buffer") else memoryview(f)
    return Reply(kind, id_, version, (s0, s1, s2, s3), payload)


def answer_array(payload: memoryview) -> np.ndarray:
    """ANSWER payload -> float32 [N] view (no copy)."""
    return np.frombuffer(payload, dtype=np.float32)


def answers_dtype(out_features: int) -> np.dtype:
    """One answer in an ANSWERS frame: event number, worker stamps, outputs."""
    return np.dtype([("id", "<u8"), ("stamps", "<i8", (4,)), ("out", "<f4", (out_features,))])


def unpack_answers(reply: Reply, out_features: int) -> np.ndarray:
    """ANSWERS payload -> answers_dtype [k] view (no copy); a wrong size raises ValueError."""
    dt = answers_dtype(out_features)
    k = reply.stamps[0]
    if reply.payload is None or len(reply.payload) != k * dt.itemsize:
        size = 0 if reply.payload is None else len(reply.payload)
        raise ValueError(f"ANSWERS of {k} carries {size} bytes, expected {k * dt.itemsize}")
    return np.frombuffer(reply.payload, dt)


def pack_events(
    rtypes: np.ndarray, event_nos: np.ndarray, slots: np.ndarray, flags: np.ndarray
) -> list:
    """An EVENTS message: the slot parts (feeds/wire/frames.py) plus flags u1[n]."""
    assert len(flags) == len(event_nos) > 0
    frames = pack_slots(rtypes, event_nos, slots)
    head = header(Kind.EVENTS, int(frames[1][0]), s0=len(event_nos))
    return [head, *frames, np.ascontiguousarray(flags, np.uint8)]


def unpack_events(frames: list) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """EVENTS frames (after the header) -> rtypes, event numbers, slots, flags (views)."""
    if len(frames) != 4:
        raise ValueError(f"EVENTS has {len(frames)} payload frames, expected 4")
    rtypes, nos, slots = unpack_slots(*frames[:3])
    flags = np.frombuffer(frames[3], np.uint8)
    if len(flags) != len(nos):
        raise ValueError(f"EVENTS flags: {len(flags)} for {len(nos)} events")
    return rtypes, nos, slots, flags
