"""The requests in flight: one per event that asks for a decision, with its deadline.

Preallocated in a ring of `max_inflight` slots and reused (slot = event number % capacity), so
nothing is made per request. Each slot holds the request's bookkeeping (`Request`), its DECISION
record row, both workers' answers and stamps, and the output it was decided on. Two queues in
deadline order drive the timers: requests still undecided (`due`), and decided ones whose other
answers are still expected (`lingering`, so a late or missing answer still counts against its
worker). Entries whose slot was reused are skipped lazily.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import numpy as np

from redline.feeds.events import DECISION_DTYPE

NONE = -1  # no origin / no worker yet


class Request:
    """One in-flight decision. Worker sets are bit masks: bit w = worker w."""

    __slots__ = (
        "alarm",  # 2oo2 tripped on it
        "answered",  # workers that answered (or will never: taken out)
        "asked",  # workers in service asked to answer
        "checked",  # used for a readmission check already
        "deadline",  # monotonic ns; after it only the safe default
        "decide_by",  # deadline minus the fallback's reserve
        "decided",
        "event_no",
        "first",  # first worker with a valid answer, NONE
        "hedge_at",  # when the standby is asked (hedge)
        "linger_until",  # answers still checked until then (0: not lingering)
        "origin",
        "rec",  # its DECISION record: a 0-d view of the table's row
        "shadow",  # workers being readmitted, asked only to be checked
        "t0",  # when it was opened (monotonic ns)
        "valid",  # workers whose answer was valid
    )

    def __init__(self) -> None:
        self.event_no = 0


class InflightTable:
    """The ring of requests and the arrays behind them; see the module docstring."""

    def __init__(self, capacity: int, n_out: int, budget_ns: int, wall_offset: int) -> None:
        self.capacity = capacity
        self.budget_ns = budget_ns
        self.wall_offset = wall_offset  # stamps: wall = monotonic + offset
        self.reqs = [Request() for _ in range(capacity)]
        # Each request's DECISION record is a row here (req.rec: a 0-d view of it), so a
        # batch of requests is filled with one assignment per field, not one per event.
        self.recs = np.zeros(capacity, DECISION_DTYPE)
        for i, r in enumerate(self.reqs):
            r.rec = self.recs[i, ...]
        self.answers = np.zeros((capacity, 2, n_out), np.float32)  # [slot, worker, N]
        self.stamps = np.zeros((capacity, 2, 5), np.int64)  # worker stamps + our receive time
        self.decided_out = np.zeros((capacity, n_out), np.float32)  # [slot, N]
        self._due: deque[tuple[int, Request]] = deque()  # undecided, deadline order
        self._lingering: deque[tuple[int, Request]] = deque()  # decided, answers expected

    def slot(self, event_no: int) -> int:
        return event_no % self.capacity

    def current(self, event_no: int) -> Request | None:
        """The request of `event_no` while its slot still holds it."""
        req = self.reqs[event_no % self.capacity]
        return req if req.event_no == event_no else None

    def occupant(self, event_no: int) -> Request | None:
        """The undecided request that opening `event_no` would overwrite (the ring wrapped)."""
        req = self.reqs[event_no % self.capacity]
        return req if req.event_no and req.decided is False else None

    def open(self, event_no: int, now: int, seen: int, reserve: int, hedge_delay: int) -> Request:
        """A fresh request for `event_no`, whose event the system saw at `seen` (monotonic ns):
        its deadline is `seen + budget`, decided by the deadline minus `reserve`. Its slot must
        be free (`occupant` is None)."""
        req = self.reqs[event_no % self.capacity]
        req.event_no = event_no
        req.t0 = now
        req.deadline = seen + self.budget_ns
        req.decide_by = max(now, req.deadline - reserve)
        req.hedge_at = now + hedge_delay
        req.asked = req.answered = req.valid = req.shadow = 0
        req.first = NONE
        req.decided = False
        req.origin = NONE
        req.alarm = False
        req.checked = False
        req.linger_until = 0
        self._due.append((event_no, req))
        return req

    def fill(
        self, slots, records: np.ndarray, deadlines, now: int, ts_feed: int, ts_features: int
    ) -> None:
        """The DECISION records of requests just opened at `slots` (a slice, or an array
        matching `records`), whose deadlines (monotonic ns) are `deadlines`: what is known
        before any answer."""
        recs, wall = self.recs, self.wall_offset
        recs[slots] = 0
        for f in ("ts_event", "ts_recv", "instrument_id"):
            recs[f][slots] = records[f]
        recs["input_seq"][slots] = records["seq"]
        recs["input_source_id"][slots] = records["source_id"]
        recs["ts_feed"][slots] = ts_feed
        recs["ts_features"][slots] = ts_features
        recs["deadline"][slots] = np.asarray(deadlines, np.int64) + wall
        recs["ts_request"][slots] = now + wall

    # -- the timers' queues ----------------------------------------------------------------------

    def undecided(self) -> list[Request]:
        return [r for no, r in self._due if r.event_no == no and not r.decided]

    def next_undecided(self) -> Request | None:
        """The undecided request due first."""
        for no, req in self._due:
            if req.event_no == no and not req.decided:
                return req
        return None

    def waiting_for_hedge(self, now: int, hedge_delay: int) -> Iterator[Request]:
        """Undecided requests opened at least `hedge_delay` ago, oldest first."""
        for no, req in self._due:
            if req.event_no != no or req.decided:
                continue
            if req.t0 + hedge_delay > now:
                return
            yield req

    def pop_due(self, now: int) -> Iterator[Request]:
        """Undecided requests whose `decide_by` has come, removed from the queue."""
        due = self._due
        while due:
            no, req = due[0]
            if req.event_no != no or req.decided:
                due.popleft()
                continue
            if req.decide_by > now:
                return
            due.popleft()
            yield req

    def clear_undecided(self) -> None:
        self._due.clear()

    def linger(self, req: Request, until: int) -> None:
        """Keep checking `req`'s missing answers until `until`."""
        req.linger_until = until
        self._lingering.append((req.event_no, req))

    def pop_lingered(self, now: int) -> Iterator[Request]:
        """Decided requests whose answers stopped being waited for by `now`."""
        q = self._lingering
        while q:
            no, req = q[0]
            if req.event_no != no or not req.linger_until:
                q.popleft()
                continue
            if req.linger_until > now:
                return
            q.popleft()
            req.linger_until = 0
            yield req
