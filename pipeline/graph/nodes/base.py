"""What every node kind is: a small loop body over its edges.

A node never blocks inside `step()`: it takes what is waiting on its input
edges, does its stage, sends downstream and returns how much it did. The
runtime decides how the node waits between steps (await, busy-poll or block;
see runtime.py). Each node stamps its stage with the graph's clock:

    feed      ts_recv (ZmqFeed, on arrival), ts_feed (handed to the graph)
    features  ts_features (the instrument's features updated; optional node)
    arbiter   ts_features (taken off its edge, when no features node is
              upstream), ts_request, ts_worker_start/end, ts_answer (the
              workers and the arbiter)
    strategy  ts_decision (decision emitted)

Stopping is by end of stream: the feed sends EOS when its source ends (or on
`stop_intake()`); every other node forwards EOS once everything it accepted
has gone downstream, so a drain loses nothing.
"""

from __future__ import annotations

import sys
from typing import Any

from redline.feeds.clock import Clock
from redline.pipeline.graph import config as gc
from redline.pipeline.transport.edge import Receiver, Sender
from redline.pipeline.transport.waiting import Waitable


class Node:
    """What the runtime drives. Subclasses set `inputs`, `output` and `step`."""

    kind = ""

    def __init__(self, name: str, spec: gc.BaseNodeSpec, clock: Clock) -> None:
        self.name = name
        self.spec = spec
        self.clock = clock
        self.inputs: list[Receiver] = []
        self.output: Sender | None = None
        self.ending = False  # EOS queued downstream (or, for a sink, consumed)
        self.events = 0  # records taken in
        self.warnings: list[str] = []  # said once each on stderr, kept for stats and --json

    def warn(self, message: str) -> None:
        """One line on stderr, once per message: something the user should know, not a fault."""
        if message not in self.warnings:
            self.warnings.append(message)
            print(f"redline: {self.name}: {message}", file=sys.stderr, flush=True)

    @property
    def done(self) -> bool:
        """EOS delivered downstream (or consumed): the node's loop may end."""
        return self.ending and (self.output is None or self.output.flush())

    def held_back(self) -> bool:
        """The output edge is full: take in nothing until it drains (backpressure)."""
        return self.output is not None and self.output.blocked and not self.output.flush()

    def step(self) -> int:
        """Do what is waiting; never blocks. Returns the number of records handled."""
        raise NotImplementedError

    def timeout_s(self) -> float | None:
        """How long the node may wait for input before it must step again (None: until input)."""
        if self.output is not None and self.output.blocked:
            return 0.001  # waiting for room downstream: retry soon
        return None

    def waitables(self) -> list[Waitable]:
        """What wakes the node when input arrives (transport/waiting.py); may change between
        steps (a restarted worker brings a new channel)."""
        return list(self.inputs)

    def intake(self) -> list[Waitable]:
        """The waitables that bring new work: a node held back by a full output must not
        wake on them (see Runtime._block_loop), only on what can make room."""
        return list(self.inputs)

    def stop_intake(self) -> None:
        """SIGINT/SIGTERM: only the feed takes in new work; others drain by EOS."""

    def finish(self) -> None:
        """End now (drain timed out): forward EOS so downstream can finish too."""
        if not self.ending:
            self._end()

    def _end(self) -> None:
        if self.output is not None:
            self.output.send_eos()
        self.ending = True

    def held(self) -> int:
        """Records taken in and not yet handed on (what a forced stop would lose)."""
        return 0

    def close(self) -> None:
        pass

    def stats(self) -> dict[str, Any]:
        return {"kind": self.kind, "events": self.events, "warnings": list(self.warnings)}
