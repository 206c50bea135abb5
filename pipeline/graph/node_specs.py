"""The node kinds of a graph file: each `[nodes.NAME]` table is one of these structs, picked by
its `kind` (msgspec's tagged union). config.py reads the file and checks the graph as a whole;
this module says what each kind of node takes. A new node kind is a struct here, a line in
`_KIND_TYPES`, and its node class in nodes/ (built by runtime.py)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from redline.feeds.settings import (
    DurationMs,
    DurationUs,
    InstrumentId,
    NonNegativeFloat,
    Settings,
)
from redline.kernels.plans.signing import PUBLIC_KEY_PATTERN, Trust
from redline.pipeline.arbiter.config import ArbiterConfig, ArbiterSettings
from redline.strategies.acc_aeb import PlannerSettings
from redline.strategies.signal_trader import SignalTraderConfig

Wait = Literal["await", "busy", "block"]  # how a node waits for input; see runtime.py
MaxInstruments = Annotated[int, msgspec.Meta(gt=0, le=1 << 20)]  # rows preallocated per state
PublicKey = Annotated[str, msgspec.Meta(pattern=PUBLIC_KEY_PATTERN)]  # ed25519, hex (keygen)


class BaseNodeSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True,
                tag_field="kind"):  # fmt: skip
    """What every node kind has: its edges (`in`, `out`) and how it waits (`wait`). No fields
    here: a node kind's fields come from its own declaration and, where the stage has settings
    of its own, from that stage's settings struct (a Struct may inherit fields from one base)."""

    @property
    def inputs(self) -> tuple[str, ...]:
        src = getattr(self, "in_", None)
        return (src,) if src else ()

    @property
    def outputs(self) -> tuple[str, ...]:
        dst = getattr(self, "out", None)
        return (dst,) if dst else ()


class FeedSpec(BaseNodeSpec, tag="feed", kw_only=True):
    """Ingress: subscribes to a publisher (stamps `ts_recv`), checks sequence
    numbers (flags gaps) and stamps `ts_feed` as it hands events on.

    The ingress follows the out edge's policy (see nodes/feed.py):
    `conflate` drains eagerly and keeps the latest quote per instrument;
    `block` queues at most `hwm` messages (RCVHWM) and stops reading while
    downstream is full, so a PUSH publisher with a send HWM blocks. A SUB
    socket cannot push back (a full queue drops at the publisher), so `block`
    needs `socket = "pull"`."""

    source: str  # the publisher's address: ZeroMQ (tcp, ipc, inproc) or udp://HOST:PORT
    out: str
    socket: Literal["sub", "pull"] = "sub"  # sub: XPUB/PUB publisher; pull: PUSH publisher
    wait: Wait = "await"


class FeaturesSpec(BaseNodeSpec, tag="features", kw_only=True):
    """Keeps every instrument's features current as events pass (the kernels'
    feature state) and stamps `ts_features`; optional, between feed and arbiter."""

    in_: str = msgspec.field(name="in")
    out: str
    max_instruments: MaxInstruments = 1024  # rows of feature state
    wait: Wait = "await"


class WorkerSpec(Settings):
    """One inference worker process of an arbiter node."""

    name: str
    device: str = "auto"  # auto: CUDA when present, else CPU; or "cpu", "cuda:N"
    heartbeat_us: DurationUs = 5_000  # idle heartbeat period (answers count as heartbeats)
    max_instruments: MaxInstruments = 1024  # rows of resident feature state
    # auto: the state the plan's input_features name, else kernel features (14 wide)
    features: Literal["auto", "kernels", "book", "window"] = "auto"
    scale: Annotated[float, msgspec.Meta(gt=0.0)] = 1.0  # multiplies window feature values


class ArbiterSpec(ArbiterSettings, BaseNodeSpec, tag="arbiter", kw_only=True):
    """Sends every event of `instruments` (all when empty) to both workers (hot
    standby: their feature state is resident and current), asks for a decision
    on each of their quotes and picks an answer by the deadline (budget).

    The arbiter's own settings (policy, tolerances, output range, breaker ...) are
    `ArbiterSettings` fields, set in this table and in `[nodes.NAME.breaker]`."""

    in_: str = msgspec.field(name="in")
    out: str
    workers: tuple[WorkerSpec, ...] = (WorkerSpec(name="a"), WorkerSpec(name="b"))
    model: str = ""  # model folder; empty = the bundled demo model
    instruments: tuple[InstrumentId, ...] = ()  # whose events go to the workers; empty = all
    fallback: bool = True  # in-process CPU fallback before the safe default
    require_signed: bool = False  # refuse a model plan not signed by one of trusted_keys
    trusted_keys: tuple[PublicKey, ...] = ()  # public keys (hex lines of `redline keygen`)
    wait: Wait = "await"

    def check(self) -> None:
        super().check()
        self.plan_trust()  # require_signed needs a key to check against

    def plan_trust(self) -> Trust:
        """Whose model plans the workers and the fallback accept (kernels/plans/signing.py)."""
        return Trust(self.require_signed, tuple(self.trusted_keys))

    def arbiter_config(self, budget_ns: int) -> ArbiterConfig:
        """The arbiter's settings with the graph's budget."""
        fields = {f: getattr(self, f) for f in ArbiterSettings.__struct_fields__}
        return ArbiterConfig(budget_ns=budget_ns, **fields)


SIGNAL_TRADER = "signal_trader"  # a strategy node's default: strategies/signal_trader.py


class StrategySpec(SignalTraderConfig, BaseNodeSpec, tag="strategy", kw_only=True):
    """Model answer -> order decision with risk checks; stamps `ts_decision`. By default the
    signal trader, its settings the `SignalTraderConfig` fields (strategies/signal_trader.py);
    `strategy = "ema_cross"` (or another of strategies/target.py) runs that strategy against
    the simulated L1 venue instead, as `redline backtest` does (nodes/paper_trader.py), with
    its `params` and the venue's `instruments`, latency legs, orders, risk and fees."""

    in_: str = msgspec.field(name="in")
    out: str = ""  # empty: decisions end here (counted, not forwarded)
    wait: Wait = "await"
    strategy: str = SIGNAL_TRADER  # or a registered strategy: ema_cross, market_maker, ...
    params: dict[str, str | int | float | bool] = {}  # its Params, as `--param` gives them
    instruments: tuple[InstrumentId, ...] = ()  # the venue's (every one the answers bring)
    latency: str = ""  # constant legs in µs, as `--latency`: "decision=50,entry=100,ack=80"
    orders: str = ""  # as `--orders`: "kind=limit,offset=1" (default market; quoting: post-only)
    risk: str = ""  # pre-trade limits, as `--risk`: "max_position=5,max_orders_per_s=20"
    fee_bps: NonNegativeFloat = 0.0  # taker fee
    maker_bps: float = 0.0  # maker fee (< 0: a rebate)

    def check(self) -> None:
        super().check()
        if self.strategy == SIGNAL_TRADER:
            return
        from redline.pipeline.graph.nodes.paper_trader import parts
        from redline.strategies.target import STRATEGIES

        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"field 'strategy' is {self.strategy!r}; valid: {SIGNAL_TRADER}, "
                f"{', '.join(STRATEGIES)}"
            )
        parts(self)  # the strategy, its params and the venue's settings, or the one-line error
        if not self.instruments:
            raise ValueError(
                f"field 'instruments' is empty; strategy {self.strategy!r} trades the simulated "
                "venue, which needs the instrument ids up front (e.g. instruments = [1, 2])"
            )


class JournalSpec(BaseNodeSpec, tag="journal", kw_only=True):
    """Sink: appends every decision to the journal, flushed on an interval."""

    in_: str = msgspec.field(name="in")
    path: str = ""  # empty: count decisions, write nothing
    flush_interval_ms: DurationMs = 100
    wait: Wait = "await"


class FrameArbiterSpec(ArbiterSpec, tag="frame_arbiter", kw_only=True):
    """An arbiter node that asks for a decision on every fused sensor frame (the driving graph:
    nodes/frame_arbiter.py); its fields are the arbiter node's."""


class SyncSpec(BaseNodeSpec, tag="sync", kw_only=True):
    """Sensor streams -> fused frames for the driving planner (nodes/sync.py, feeds/sync.py):
    the range sensor's gap and closing speed with the speed sensor's ego speed. `latest`: one
    frame per `trigger` record, an input older than its `max_age_ms` (range, speed) flagged
    stale; `approximate`: sets matched by source time within `slop_ms`."""

    in_: str = msgspec.field(name="in")
    out: str
    policy: Literal["latest", "approximate"] = "latest"
    range_sensor: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 1  # radar (range, closing)
    speed_sensor: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 4  # wheel speeds
    trigger: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 4  # latest: frames on this sensor
    max_age_ms: tuple[DurationMs, DurationMs] = (150, 60)  # latest: (range, speed)
    slop_ms: DurationMs = 25  # approximate
    # Closed loop, frames waiting for the planner: "wait" sends each in turn (lockstep, a
    # replay's outcome never depends on speed); "latest" sends only the newest and counts the
    # others as superseded (a live planner acts on the world as it is now, never falls behind).
    behind: Literal["wait", "latest"] = "wait"
    wait: Wait = "await"

    def check(self) -> None:
        if self.range_sensor == self.speed_sensor:
            raise ValueError(f"range_sensor and speed_sensor are both {self.range_sensor}")
        if self.trigger not in (self.range_sensor, self.speed_sensor):
            raise ValueError(
                f"field 'trigger' is {self.trigger}; expected range_sensor "
                f"({self.range_sensor}) or speed_sensor ({self.speed_sensor})"
            )


class PlannerSpec(PlannerSettings, BaseNodeSpec, tag="planner", kw_only=True):
    """Frame answers -> control commands (strategies/acc_aeb.py; nodes/planner.py); stamps
    `ts_decision`. The planner's settings are `PlannerSettings` fields."""

    in_: str = msgspec.field(name="in")
    out: str = ""  # empty: commands end here (counted, not forwarded)
    wait: Wait = "await"


NodeSpec = (FeedSpec | FeaturesSpec | ArbiterSpec | StrategySpec | JournalSpec
            | FrameArbiterSpec | SyncSpec | PlannerSpec)  # fmt: skip
_KIND_TYPES: dict[str, type] = {
    "feed": FeedSpec,
    "features": FeaturesSpec,
    "arbiter": ArbiterSpec,
    "strategy": StrategySpec,
    "journal": JournalSpec,
    "frame_arbiter": FrameArbiterSpec,
    "sync": SyncSpec,
    "planner": PlannerSpec,
}
KINDS: tuple[str, ...] = tuple(_KIND_TYPES)
