"""One real `redline worker` process spoken to over its protocol, and its CLI errors."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from redline import kernels
from redline.feeds.events import QUOTE_DTYPE, RecordType
from redline.feeds.wire.frames import SLOT, pack_slots
from redline.kernels.feature_names import window_feature_names
from redline.pipeline.cli.main import main
from redline.pipeline.workers.engines import ROW_RING, CpuEngine
from redline.pipeline.workers.link import ProcessLink, close_all, ipc_endpoints
from redline.pipeline.workers.protocol import (
    ASK_FLAG,
    Kind,
    answer_array,
    header,
    pack_events,
    unpack_answers,
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    d = tmp_path_factory.mktemp("model")
    # an 8-wide event window, named so that "auto" feeds it one (kernels/plans/inputs.py)
    names = window_feature_names(8)
    kernels.compile(m, precision="fp32", device="cpu", input_features=names).save(d)
    return d


_backlog: list = []


def wait_for(link, kind, timeout=30.0):
    """The next message of `kind`, keeping any later ones for the next call."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        _backlog.extend(link.recv())
        for i, msg in enumerate(_backlog):
            if msg.kind == kind:
                del _backlog[: i + 1]
                return msg
        time.sleep(0.001)
    raise AssertionError(f"no {kind.name} from the worker in {timeout} s")


def quote(i):
    q = np.zeros((), QUOTE_DTYPE)
    q["instrument_id"], q["bid_px"], q["ask_px"], q["bid_sz"], q["ask_sz"] = i % 2, i, -i, 1, 2
    return q


def test_protocol_answers_stamps_snapshot_restore_fault_stop(model_dir, tmp_path):
    link = ProcessLink("A", ipc_endpoints(1, tmp_path)[0], model_dir)
    ref = CpuEngine(kernels.load(model_dir, device="cpu"))
    try:
        link.start()
        ready = wait_for(link, Kind.READY)
        assert ready.id == link.pid and ready.stamps[0] == 2 and ready.version == ref.version
        for no in range(1, 6):
            flags = ASK_FLAG if no in (2, 5) else 0
            q = quote(no)
            ref.apply(no, RecordType.QUOTE, q)
            assert link.send([header(Kind.EVENT, no, rtype=RecordType.QUOTE, flags=flags), q])
        want = np.zeros(2, np.float32)
        for no in (2, 5):
            ans = wait_for(link, Kind.ANSWER)
            assert ans.id == no and ans.version == ref.version
            t_recv, t_start, t_end, t_send = ans.stamps
            assert 0 < t_recv <= t_start <= t_end <= t_send
            ref.answer_into(no, want)
            np.testing.assert_allclose(answer_array(ans.payload), want, rtol=1e-6)
        link.send([header(Kind.ASK, 3)])  # a late ASK: the features as of event 3
        ref.answer_into(3, want)
        np.testing.assert_allclose(answer_array(wait_for(link, Kind.ANSWER).payload), want)
        link.send([header(Kind.SNAPSHOT)])
        state = wait_for(link, Kind.STATE)
        assert state.id == 5 and bytes(state.payload) == ref.snapshot()
        # restore someone else's state plus one replayed event, then answer on it
        other = CpuEngine(kernels.load(model_dir, device="cpu"))
        other.apply(1, RecordType.QUOTE, quote(40))
        slot = np.zeros((1, SLOT), np.uint8)
        slot[0, : QUOTE_DTYPE.itemsize] = np.frombuffer(quote(41).tobytes(), np.uint8)
        other.apply(2, RecordType.QUOTE, quote(41))
        rep = pack_slots(np.array([RecordType.QUOTE]), np.array([2]), slot)
        link.send([header(Kind.RESTORE, 1, s0=1), _snapshot_after_first(model_dir), *rep])
        link.send([header(Kind.ASK, 2)])
        other.answer_into(2, want)
        np.testing.assert_allclose(answer_array(wait_for(link, Kind.ANSWER).payload), want)
        hb = wait_for(link, Kind.HEARTBEAT)
        assert hb.id == 2  # last event applied
        link.send([header(Kind.FAULT), b"nan@1"])
        link.send([header(Kind.ASK, 2)])
        assert np.isnan(answer_array(wait_for(link, Kind.ANSWER).payload)).all()
        link.send([header(Kind.STOP)])
        assert link.proc.wait(timeout=10) == 0
    finally:
        close_all([link])


def test_events_batch_is_applied_in_order_and_its_asks_answered_in_one_message(model_dir, tmp_path):
    link = ProcessLink("A", ipc_endpoints(1, tmp_path)[0], model_dir)
    ref = CpuEngine(kernels.load(model_dir, device="cpu"))
    try:
        link.start()
        wait_for(link, Kind.READY)
        n = 7
        slots = np.zeros((n, SLOT), np.uint8)
        for i in range(n):
            q = quote(10 + i)
            slots[i, : QUOTE_DTYPE.itemsize] = np.frombuffer(q.tobytes(), np.uint8)
            ref.apply(i + 1, RecordType.QUOTE, q)
        flags = np.array([0, ASK_FLAG, 0, 0, ASK_FLAG, ASK_FLAG, 0], np.uint8)
        nos = np.arange(1, n + 1, dtype=np.uint64)
        assert link.send(pack_events(np.full(n, RecordType.QUOTE), nos, slots, flags))
        msg = wait_for(link, Kind.ANSWERS)
        ans = unpack_answers(msg, 2)
        assert msg.version == ref.version and ans["id"].tolist() == [2, 5, 6]
        want = np.zeros(2, np.float32)
        for row in ans:
            ref.answer_into(int(row["id"]), want)
            np.testing.assert_allclose(row["out"], want, rtol=1e-6)
            t_recv, t_start, t_end, t_send = row["stamps"].tolist()
            assert 0 < t_recv <= t_start <= t_end <= t_send
        assert wait_for(link, Kind.HEARTBEAT).id == n  # every event applied
        # a malformed batch is refused with an ERROR, and the worker carries on
        bad = pack_events(np.full(n, RecordType.QUOTE), nos + n, slots, flags)
        assert link.send(bad[:4])  # no flags frame
        assert b"EVENTS has 3 payload frames" in bytes(wait_for(link, Kind.ERROR).payload)
        link.send([header(Kind.ASK, 6)])
        ref.answer_into(6, want)
        np.testing.assert_allclose(answer_array(wait_for(link, Kind.ANSWER).payload), want)

        # A batch longer than the engine's row ring, asking its first event (whose row the
        # batch itself overwrote: an ERROR names it) and its last 100 (one message, in
        # model calls of up to 64 rows)
        m = ROW_RING + 3
        nos = np.arange(n + 1, n + m + 1, dtype=np.uint64)
        slots = np.zeros((m, SLOT), np.uint8)
        for i, no in enumerate(nos.tolist()):
            q = quote(no)
            slots[i, : QUOTE_DTYPE.itemsize] = np.frombuffer(q.tobytes(), np.uint8)
            ref.apply(no, RecordType.QUOTE, q)
        flags = np.zeros(m, np.uint8)
        flags[0] = flags[-100:] = ASK_FLAG
        assert link.send(pack_events(np.full(m, RecordType.QUOTE), nos, slots, flags))
        err = wait_for(link, Kind.ERROR)
        assert err.id == n + 1 and b"no longer held" in bytes(err.payload)
        ans = unpack_answers(wait_for(link, Kind.ANSWERS), 2)
        assert ans["id"].tolist() == nos[-100:].tolist()
        want = np.zeros((100, 2), np.float32)
        assert ref.answer_batch_into(nos[-100:], want).all()
        # the reference answers row by row: equal to float32 rounding (BLAS per batch size)
        np.testing.assert_allclose(ans["out"], want, rtol=1e-5, atol=1e-6)
    finally:
        close_all([link])


def _snapshot_after_first(model_dir) -> bytes:
    e = CpuEngine(kernels.load(model_dir, device="cpu"))
    e.apply(1, RecordType.QUOTE, quote(40))
    return e.snapshot()


def test_cli_errors_name_the_problem(tmp_path, capsys):
    ep = f"ipc://{tmp_path}/w"
    assert main(["worker", "--model", str(tmp_path / "none"), "--endpoint", ep]) == 2
    assert "no such plan directory" in capsys.readouterr().err
    assert main(["worker", "--model", str(tmp_path), "--endpoint", ep, "--fault", "x@1"]) == 2
    assert "fault spec 'x@1'" in capsys.readouterr().err


def test_module_entry_point_reports_errors_like_the_cli(tmp_path, capsys):
    from redline.pipeline.cli.worker import main as worker_main

    ep = f"ipc://{tmp_path}/w"
    assert worker_main(["--model", str(tmp_path / "none"), "--endpoint", ep]) == 2
    assert "redline worker: error:" in capsys.readouterr().err


def test_orphaned_worker_exits_when_its_parent_dies(model_dir, tmp_path):
    import subprocess
    import sys

    ep = ipc_endpoints(1, tmp_path)[0]
    # A parent that starts a worker and dies at once without STOP: the worker must not linger.
    code = (
        "import subprocess, sys;"
        f"p = subprocess.Popen([sys.executable, '-m', 'redline.pipeline.cli.worker', '--model', "
        f"'{model_dir}', '--endpoint', '{ep}', '--heartbeat-ms', '5', '--parent-pid', "
        "str(__import__('os').getpid())],"
        "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL);"
        "print(p.pid, flush=True)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    pid = int(out.stdout.split()[0])
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:  # gone, or a zombie (this container's init may not reap orphans)
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split()[2] == "Z":
                    return
        except FileNotFoundError:
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    raise AssertionError("orphaned worker still running after 60 s")
