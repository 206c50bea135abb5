"""ModelVersions (which version answers which event), on fake links: no worker processes."""

import numpy as np

from redline.pipeline.arbiter.versions import ModelVersions
from redline.pipeline.workers.protocol import Kind, decode_reply, header


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


def test_the_watch_s_shadow_reaches_both_workers_and_a_restarted_one_and_stops():
    links = (_Link(), _Link())
    m = ModelVersions(links)
    m.loaded[22] = "/models/demo/2"
    m.flip(22, 100, base=11)
    m.shadow(11, every=2, period_ns=5_000_000)  # time 11 beside 22
    for link in links:
        head = decode_reply(link.sent[-1])
        assert (head.kind, head.version, head.id) == (Kind.SHADOW, 11, 5_000_000)
        assert np.frombuffer(link.sent[-1][1], np.uint32).tolist() == [2]
    links[1].sent.clear()
    m.replay(1, base=11)  # B restarted mid-watch: it times 11 again, after the flips
    assert [decode_reply(f).kind for f in links[1].sent][-2:] == [Kind.USE, Kind.SHADOW]
    pairs = np.array([[1, 300, 100], [2, 500, 250]], np.int64)
    report = decode_reply([header(Kind.SHADOWED, 2, version=11, s0=22), pairs.tobytes()])
    assert m.on_loaded(1, report) == "" and m.replaying == [0, 1]  # not a replayed LOAD's
    ((w, shadow, serving, got),) = m.take_shadowed()
    assert (w, shadow, serving) == (1, 11, 22) and got.tolist() == pairs.tolist()
    bad = decode_reply([header(Kind.SHADOWED, 3, version=11, s0=22), pairs.tobytes()])
    assert m.on_loaded(0, bad) == "" and m.take_shadowed() == []  # 3 said, 2 sent: dropped
    m.shadow(0)
    assert decode_reply(links[0].sent[-1]).version == 0
    assert m.on_loaded(0, report) == "" and m.take_shadowed() == []  # after the stop: dropped


class _Link:
    name = "A"

    def __init__(self) -> None:
        self.sent: list = []

    def send(self, frames) -> bool:
        self.sent.append(frames)
        return True
