"""A worker's wait for a CPU, read from Linux's schedstat: processes actually held off their
core show it, a sleeping or stopped one does not."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from redline.pipeline.arbiter.run_queue import RunQueueWait

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/schedstat").exists(), reason="no /proc/PID/schedstat (not Linux)"
)


def test_processes_sharing_one_core_show_their_wait_and_idle_ones_none():
    spin = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    idle = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            for _ in range(2)]  # fmt: skip
    try:
        for p in spin:  # two spinning on one core: each waits about half the time
            os.sched_setaffinity(p.pid, {0})
        time.sleep(0.5)  # the idle ones past their start-up
        os.kill(idle[1].pid, signal.SIGSTOP)  # stopped: not runnable, never waiting for a CPU
        rq = RunQueueWait(4)
        t0 = time.monotonic_ns()
        for w, p in enumerate([*spin, *idle]):
            rq.sample(w, p.pid, t0)
        time.sleep(0.6)
        waited = [rq.waited_since(w, t0) for w in range(4)]
        assert min(waited[:2]) > 100_000_000, waited  # > 0.1 s of the 0.6 s
        assert max(waited[2:]) < 20_000_000, waited
        # before its first sample nothing is known, so nothing is excused
        assert rq.waited_since(0, t0 - 1) == 0
    finally:
        for p in [*spin, *idle]:
            p.kill()
            p.wait()


def test_a_gone_process_or_no_pid_excuses_nothing():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    rq = RunQueueWait(2)
    rq.sample(0, p.pid, 1)  # exited (and reaped): no file to read
    rq.sample(1, None, 1)  # a link without a process
    assert rq.waited_since(0, 2) == rq.waited_since(1, 2) == 0
    rq.close()
