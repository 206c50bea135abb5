"""Waiting for input on anything a node reads: edges, feeds, worker channels.

Every readable end is a `Waitable`: `ready()` says whether input is waiting now and `fileno()`
gives a file descriptor that becomes readable when input may have arrived. A ZeroMQ socket's
descriptor is edge-triggered (it signals only what arrives after `ready()` was last asked), so
the rule everywhere is: ask `ready()`, and only when nothing is ready wait on the descriptors.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable, Sequence
from typing import Protocol


class Waitable(Protocol):
    def fileno(self) -> int:
        """A descriptor that becomes readable when input may have arrived."""
        ...

    def ready(self) -> bool:
        """Input is waiting now."""
        ...


def any_ready(waitables: Sequence[Waitable]) -> bool:
    return any(w.ready() for w in waitables)


def wait_any(waitables: Sequence[Waitable], timeout_s: float | None) -> None:
    """Return when one of `waitables` may have input, or after `timeout_s` (None: no limit).

    `select` takes µs: zmq_poll counts whole milliseconds, too coarse for an arbiter that
    waits on deadlines ~1 ms apart at 10k events/s."""
    if any_ready(waitables):
        return
    fds = [w.fileno() for w in waitables]
    if not fds:
        time.sleep(0.001 if timeout_s is None else timeout_s)
    elif max(fds) < 1024:  # select's FD_SETSIZE
        select.select(fds, [], [], timeout_s)
    else:
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        poller.poll(None if timeout_s is None else max(1, int(timeout_s * 1000)))


def watch(loop, waitables: Sequence[Waitable], callback: Callable[[], None]) -> list[int]:
    """Call `callback` from the asyncio `loop` when any of `waitables` may have input; returns
    what `unwatch` needs. Watches duplicates of the descriptors: libzmq closes a socket's
    descriptor when it reaps the socket (a restarted worker's), at a moment of its choosing,
    and libuv aborts the process if a watched descriptor is closed under it (epoll_ctl EBADF)."""
    fds = [os.dup(w.fileno()) for w in waitables]
    for fd in fds:
        loop.add_reader(fd, callback)
    return fds


def unwatch(loop, fds: list[int]) -> None:
    for fd in fds:
        loop.remove_reader(fd)
        os.close(fd)
