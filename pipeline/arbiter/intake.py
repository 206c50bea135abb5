"""Intake and fan-out: every event numbered, kept, applied to the fallback, sent to both workers.

Each event gets the next event number, goes into the `EventRing` (to rebuild a restarted
worker), updates the fallback's own feature state (a third replica), and goes to every worker
that holds live state (UP or VERIFYING), flagged ASK where that worker should answer. An event
that asks for a decision opens a request (inflight.py) through `open_request`, with one
deadline from the moment the system saw the event (`seen`: its `ts_recv`), not from the moment
the arbiter took it: time spent queued before the arbiter counts against the budget.

A feed batch goes to each worker as one EVENTS message (the replay layout plus per-event ASK
flags): the same decisions as one EVENT each, for ~1/n of the messages (on 2 vCPU a message
costs ~20 µs to send and as much to wake for).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from redline.feeds.events import Flag, record_type_of
from redline.pipeline.arbiter.breaker import Breaker
from redline.pipeline.arbiter.config import WorkerLink
from redline.pipeline.arbiter.event_ring import EventRing
from redline.pipeline.arbiter.fallback import CpuFallback
from redline.pipeline.arbiter.inflight import InflightTable, Request
from redline.pipeline.arbiter.policy import AskPolicy
from redline.pipeline.workers.protocol import ASK_FLAG, Kind, header, pack_events


class Intake:
    def __init__(
        self,
        links: tuple[WorkerLink, WorkerLink],
        breakers: tuple[Breaker, Breaker],
        ring: EventRing,
        table: InflightTable,
        policy: AskPolicy,
        fallback: CpuFallback | None,
        open_request: Callable[[int, int, int], Request],
        wall_offset: int,
    ) -> None:
        self.links = links
        self.breakers = breakers
        self.ring = ring
        self.table = table
        self.policy = policy
        self.fallback = fallback
        self.open_request = open_request  # (event_no, now, seen) -> its request, opened
        self.wall_offset = wall_offset  # the clock's wall time minus its monotonic time
        self.event_no = 0  # events taken in so far; event numbers start at 1
        self._rtypes: dict[np.dtype, int] = {}

    def rtype(self, dtype: np.dtype) -> int:
        rtype = self._rtypes.get(dtype)
        if rtype is None:  # structured dtype equality is slow: look each dtype up once
            rtype = self._rtypes[dtype] = int(record_type_of(dtype))
        return rtype

    def seen(self, records: np.ndarray, now: int) -> np.ndarray:
        """When the system saw each record, on the monotonic clock: its `ts_recv` (stamped by
        the feed on arrival), or `now` where that stamp is missing, flagged untrustworthy, or
        later than now (a clock stepped back). One deadline per decision starts there."""
        ts = records["ts_recv"].astype(np.int64)
        mono = ts - self.wall_offset
        ok = (ts > 0) & ((records["flags"] & int(Flag.BAD_TS_RECV)) == 0) & (mono <= now)
        return np.where(ok, mono, now)

    def one(
        self,
        record: np.ndarray,
        decide: bool,
        ts_feed: int,
        ts_features: int,
        rtype: int,
        raw: memoryview | bytes,
        now: int,
    ) -> tuple[int, list[Request], list[int]]:
        """One event -> (its event number, the request it opened, workers whose send failed)."""
        self.event_no = no = self.event_no + 1
        self.ring.push(no, rtype, raw)
        if self.fallback is not None:
            self.fallback.apply(no, rtype, record)
        flags, reqs = (0, 0), []
        if decide:
            rec1 = np.asarray(record).reshape(1)
            req = self.open_request(no, now, int(self.seen(rec1, now)[0]))
            ask = self.policy.targets(no)
            req.asked, req.shadow = self.policy.ask_bits(ask)
            flags = (ASK_FLAG if ask[0] else 0, ASK_FLAG if ask[1] else 0)
            slot = self.table.slot(no)
            self.table.fill(slice(slot, slot + 1), rec1, (req.deadline,), now, ts_feed, ts_features)
            reqs.append(req)
        heads: dict[int, bytes] = {}  # flags -> header, packed once per event
        failed = []
        for w, b in enumerate(self.breakers):
            if not b.receives_events:
                continue
            head = heads.get(flags[w])
            if head is None:
                head = heads[flags[w]] = header(Kind.EVENT, no, rtype=rtype, flags=flags[w])
            if not self.links[w].send([head, raw]):
                failed.append(w)
        return no, reqs, failed

    def batch(
        self,
        records: np.ndarray,
        decides: list[bool],
        ts_feed: int,
        ts_features: int,
        rtype: int,
        now: int,
    ) -> tuple[int, list[Request], list[int]]:
        """n > 1 events of one type (n <= the in-flight capacity) -> (first event number, the
        requests opened, workers whose send failed)."""
        n = len(records)
        records = np.ascontiguousarray(records)
        first = self.event_no + 1
        self.ring.push_many(first, rtype, records.view(np.uint8).reshape(n, -1))
        flags = np.zeros((2, n), np.uint8)  # [worker, event]: ASK_FLAG where asked
        reqs = []
        # `one`'s work, with what cannot change within the batch looked up once (~30% of
        # the per-event cost here): nothing in this loop changes a breaker or sends
        fb, policy = self.fallback, self.policy
        seen = self.seen(records, now).tolist()
        if not policy.hedge:  # race, compare: every request asks the same workers
            ask = policy.targets(0)
            bits = policy.ask_bits(ask)
            asked_at = []
        for i in range(n):
            self.event_no = no = self.event_no + 1
            if fb is not None:
                fb.apply(no, rtype, records[i : i + 1])
            if not decides[i]:
                continue
            req = self.open_request(no, now, seen[i])
            if policy.hedge:
                ask = policy.targets(no)
                bits = policy.ask_bits(ask)
                flags[0, i], flags[1, i] = ask
            else:
                asked_at.append(i)
            req.asked, req.shadow = bits
            reqs.append(req)
        if not policy.hedge and asked_at:
            flags[0, asked_at], flags[1, asked_at] = ask
        flags *= ASK_FLAG
        if reqs:
            mine = records if len(reqs) == n else records[np.array(decides)]
            slots = np.array([r.event_no for r in reqs]) % self.table.capacity
            deadlines = [r.deadline for r in reqs]
            self.table.fill(slots, mine, deadlines, now, ts_feed, ts_features)
        rtypes, nos, slots_ = self.ring.since(first - 1)  # the replay layout, as RESTORE sends
        failed = [
            w
            for w, b in enumerate(self.breakers)
            if b.receives_events
            and not self.links[w].send(pack_events(rtypes, nos, slots_, flags[w]))
        ]
        return first, reqs, failed
