"""ModelVersions (which version answers which event) and the swap's watch flipping back through
it, on a fake arbiter: no worker processes, so the rules are exercised exactly."""

import asyncio

from redline.feeds.clock import LiveClock
from redline.pipeline.arbiter.swap import SwapCoordinator, WatchRules
from redline.pipeline.arbiter.versions import ModelVersions
from redline.pipeline.workers.protocol import Kind, decode_reply


def test_flips_are_points_in_the_event_numbers_and_a_restart_replays_them():
    links = (_Link(), _Link())
    m = ModelVersions(links)
    assert m.expected(5) == 0 and m.tag_ok(5, 123)  # no flip yet: the workers' own version
    m.loaded[22] = "/models/demo/2"
    m.flip(22, 100, base=11)
    m.flip(11, 200, base=11)  # the flip back
    assert [m.expected(n) for n in (1, 99, 100, 199, 200, 10**6)] == [11, 11, 22, 22, 11, 11]
    assert m.tags_ok(150, 160, 22) and m.tags_ok(150, 210, 22) is None  # spans a flip
    assert not m.tag_ok(150, 11) and m.wrong_version == 1
    links[0].sent.clear()
    m.replay(0, base=11)  # worker A restarted: LOAD demo@2, then the flips in order
    kinds = [(decode_reply(f).kind, decode_reply(f).id, decode_reply(f).version)
             for f in links[0].sent]  # fmt: skip
    assert kinds == [
        (Kind.LOAD, 0, 22),
        (Kind.USE, 0, 11),
        (Kind.USE, 100, 22),
        (Kind.USE, 200, 11),
    ]
    assert bytes(links[0].sent[0][1]) == b"/models/demo/2"


class _Link:
    name = "A"

    def __init__(self) -> None:
        self.sent: list = []

    def send(self, frames) -> bool:
        self.sent.append(frames)
        return True


class _Arb:
    """What the coordinator's watch reads and its rollback writes, without workers."""

    def __init__(self) -> None:
        self.links = (_Link(), _Link())
        self.models = ModelVersions(self.links)
        self.versions = [11, 11]
        self.counts = {"bad_outputs": 0, "disagreements": 0, "unanswered": 5, "decisions": 1000}
        self.event_no = 500
        self.fallback = None
        self.log: list = []
        self.clock = LiveClock()


def test_deadline_misses_roll_back_only_above_the_runs_own_rate():
    arb = _Arb()
    rules = WatchRules(window_s=30.0, max_miss_fraction=0.05, min_decisions=50)
    swapper = SwapCoordinator(arb, registry=None, watch=rules)

    async def run() -> None:
        arb.models.flip(22, 501, base=11)  # as a swap to version 22 leaves it
        swapper.previous = 11
        swapper._start_watch(22)
        await asyncio.sleep(0.02)
        arb.counts["decisions"] += 40  # 20 misses in 40: too few decisions to judge yet
        arb.counts["unanswered"] += 20
        await asyncio.sleep(0.02)
        assert arb.models.current == 22
        arb.counts["decisions"] += 60  # 20 in 100: 20% > 5%: back to 11
        arb.event_no = 600
        await asyncio.sleep(0.05)

    asyncio.run(run())
    assert arb.models.current == 11 and arb.models.expected(601) == 11
    assert arb.models.expected(550) == 22 and arb.models.expected(400) == 11
    (rollback,) = [e for e in arb.log if e[2] == "rollback"]
    assert "20 deadline misses in 100 decisions" in rollback[3]
    swapper.close()


def test_a_host_that_missed_as_often_before_the_swap_keeps_the_new_version():
    arb = _Arb()
    arb.counts["unanswered"] = 200  # 20% of decisions missed before the swap: the host
    swapper = SwapCoordinator(arb, registry=None, watch=WatchRules(window_s=30.0))

    async def run() -> None:
        arb.models.flip(22, 501, base=11)
        swapper.previous = 11
        swapper._start_watch(22)
        arb.counts["decisions"] += 100
        arb.counts["unanswered"] += 20
        await asyncio.sleep(0.05)

    asyncio.run(run())
    assert arb.models.current == 22 and not [e for e in arb.log if e[2] == "rollback"]
    swapper.close()
