"""The one small interface behind every feed edge, and the factory that picks one.

A feed source hands out `Batch(rtype, records)` with `ts_recv` stamped:

    batch = feed.recv_batch(timeout=0.0)   # busy-poll loop: None at once if nothing
    batch = feed.recv_batch(timeout=0.5)   # wait up to 0.5 s
    batch = await feed.arecv_batch()       # asyncio; None only at end of stream
    for batch in feed: ...                 # blocking, until end of stream

`feed.ended` turns True once the expected END frames arrived; after that
`recv_batch` returns None at once. ZeroMQ (`zmq_feed`) and UDP (`udp_feed`)
implement it today; a shared-memory ring is planned behind the same calls.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any, Protocol

from redline.feeds.events import Batch


class FeedSource(Protocol):
    """What a graph's ingress needs from a feed; see the module docstring."""

    ended: bool  # the expected END frames have arrived

    def recv_batch(self, timeout: float | None = 0.0) -> Batch | None: ...

    async def arecv_batch(self) -> Batch | None: ...

    def __iter__(self) -> Iterator[Batch]: ...

    def stats(self) -> dict[str, Any]: ...

    def ready(self) -> bool:
        """A batch can be had now without waiting."""
        ...

    def fileno(self) -> int:
        """A descriptor readable when input may have arrived (ask `ready()` first)."""
        ...

    def close(self) -> None: ...


async def wait_readable(fd: int, recheck_s: float) -> None:
    """Wait until `fd` is readable or `recheck_s` passed (covers edge-triggered fds)."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    loop.add_reader(fd, lambda: fut.done() or fut.set_result(None))
    try:
        await asyncio.wait_for(fut, recheck_s)
    except TimeoutError:
        pass
    finally:
        loop.remove_reader(fd)


def is_udp(endpoint: str) -> bool:
    return endpoint.startswith("udp://")


def parse_udp(endpoint: str) -> tuple[str, int, bool]:
    """`udp://HOST:PORT` -> (host, port, is_multicast); a clear error otherwise."""
    rest = endpoint.removeprefix("udp://")
    host, sep, port_s = rest.rpartition(":")
    if not sep or not host or not port_s.isdigit() or not 0 <= int(port_s) < 65536:
        raise ValueError(
            f"UDP endpoint {endpoint!r}: expected udp://HOST:PORT, e.g. udp://127.0.0.1:9000"
        )
    try:
        first = int(socket.inet_aton(host)[0])
    except OSError:
        raise ValueError(f"UDP endpoint {endpoint!r}: {host!r} is not an IPv4 address") from None
    return host, int(port_s), 224 <= first <= 239


def open_feed(endpoint: str, **kwargs: Any) -> FeedSource:
    """A feed on `endpoint`: `udp://HOST:PORT` is a UDP feed, anything else
    (`tcp://`, `ipc://`, `inproc://`) a ZeroMQ one. `kwargs` go to its constructor."""
    if is_udp(endpoint):
        from redline.feeds.live.udp_feed import UdpFeed

        return UdpFeed(endpoint, **kwargs)
    from redline.feeds.live.zmq_feed import ZmqFeed

    return ZmqFeed(endpoint, **kwargs)
