"""Edge addresses: which transport an address names, and whether it is well formed.

    mem://NAME        in-memory queue between nodes of one process (tests, one-process graphs)
    inproc://NAME     ZeroMQ between threads of one process
    ipc://PATH        ZeroMQ over a Unix socket between processes of one host
    tcp://HOST:PORT   ZeroMQ over TCP, across hosts

Checked when a graph loads, so a bad address is one line naming the edge, never a ZeroMQ
traceback on the first bind.
"""

from __future__ import annotations

SCHEMES = ("mem://", "inproc://", "ipc://", "tcp://")
ZMQ_SCHEMES = ("inproc://", "ipc://", "tcp://")


def address_problem(address: str) -> str | None:
    """Why `address` cannot be used as an edge (one phrase), or None when it can."""
    scheme = next((s for s in SCHEMES if address.startswith(s)), None)
    if scheme is None:
        return f"it must start with one of {', '.join(SCHEMES)}"
    rest = address[len(scheme) :]
    if not rest:
        return f"{scheme} needs a name or path after it"
    if scheme == "tcp://":
        host, sep, port = rest.rpartition(":")
        if not sep or not host or not (port == "*" or (port.isdigit() and 0 < int(port) < 65536)):
            return "a tcp address needs HOST:PORT with a port in 1..65535 (or * to bind any)"
    return None


def is_process_local(address: str) -> bool:
    """mem:// and inproc:// edges join nodes of one process only."""
    return address.startswith(("mem://", "inproc://"))


def feed_source_problem(address: str) -> str | None:
    """Why a graph's feed cannot read `address` (one phrase), or None when it can: a ZeroMQ
    publisher (tcp, ipc, inproc) or a UDP feed (udp://HOST:PORT)."""
    if address.startswith("udp://"):
        host, sep, port = address[len("udp://") :].rpartition(":")
        if not sep or not host or not (port.isdigit() and 0 < int(port) < 65536):
            return "a udp address needs HOST:PORT with a port in 1..65535"
        return None
    if address.startswith("mem://"):
        return "a feed reads a publisher: use tcp://, ipc://, inproc:// or udp://"
    return address_problem(address)
