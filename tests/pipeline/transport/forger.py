"""A process that is not part of the graph: pushes a forged DECISION and an end-of-stream to a
tcp edge for a while, as plain ZeroMQ or with a CURVE key of its own.

    python forger.py tcp://127.0.0.1:PORT SECONDS [GRAPH_PUBLIC_KEY]
"""

import contextlib
import sys
import time

import numpy as np
import zmq

from redline.feeds.events import DECISION_DTYPE
from redline.feeds.wire.frames import EDGE_EOS, EDGE_STAMPS, dtype_tag

FORGED_INSTRUMENT = 999


def main(address: str, seconds: float, server_key: str = "") -> None:
    ctx = zmq.Context()
    s = ctx.socket(zmq.PUSH)
    s.linger = 0
    if server_key:  # knows the graph's public key (it is public), holds a key of its own
        s.curve_publickey, s.curve_secretkey = zmq.curve_keypair()
        s.curve_serverkey = server_key.encode()
    s.connect(address)
    forged = np.zeros(1, DECISION_DTYPE)
    forged["instrument_id"] = FORGED_INSTRUMENT
    forged["side"], forged["qty"], forged["px"] = 1, 1_000_000, 1
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for parts in ([dtype_tag(forged.dtype), EDGE_STAMPS.pack(1, 1), forged.tobytes()],
                      [EDGE_EOS, b"", b""]):  # fmt: skip
            with contextlib.suppress(zmq.Again):
                s.send_multipart(parts, zmq.NOBLOCK)
        time.sleep(0.01)
    s.close()
    ctx.term()


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), *sys.argv[3:])
