"""`redline ctl`'s side: find the graph, send one command, read the answer.

    code, text = call(["status"])                       # the running graph found by discovery
    code, text = call(["kill-switch", "on"], address="tcp://10.0.0.5:7100",
                      server_key="keys/graph.public", client_key="keys/ops.secret")

Exit codes: 0 the graph did it; 1 the graph answered with an error; 2 bad input (checked here,
before anything is sent: the same parser as the graph's); 3 no answer within the timeout.
"""

from __future__ import annotations

import json

from redline.pipeline.control.commands import CommandError, parse
from redline.pipeline.control.discovery import find
from redline.pipeline.transport.control_socket import request
from redline.pipeline.transport.curve import Curve, read_public, read_secret

OK, ERROR_REPLY, BAD_INPUT, NO_ANSWER = 0, 1, 2, 3


def call(
    argv: list[str],
    *,
    address: str = "",
    graph: str | None = None,
    server_key: str = "",
    client_key: str = "",
    timeout_s: float = 5.0,
) -> tuple[int, str]:
    """(exit code, the line(s) to print) for `redline ctl VERB ARGS...`. Bad input raises
    ValueError (or FileNotFoundError) with its one line."""
    if not argv:
        raise ValueError("give a command: status, swap MODEL@VERSION, rollback, drain, "
                         "kill-switch on|off, restart-worker A|B")  # fmt: skip
    body = json.dumps({"verb": argv[0], "args": argv[1:]}).encode()
    try:
        parse(body)  # the graph's own parser: a typo is caught here, not after a round trip
    except CommandError as exc:
        raise ValueError(str(exc)) from None
    if not address:
        found = find(graph)
        address, server_key = found["address"], server_key or found.get("server_key", "")
    curve, server_public = None, None
    if address.startswith("tcp://"):
        if not server_key or not client_key:
            raise ValueError(f"--address {address}: tcp needs --server-key FILE (the graph's "
                             "public key) and --client-key FILE (your secret key)")  # fmt: skip
        public, secret = read_secret(client_key)
        curve, server_public = Curve(public, secret, frozenset()), read_public(server_key)
    raw = request(address, body, timeout_s, curve, server_public)
    if raw is None:
        hint = " (or it refused this client's key)" if curve else ""
        return (
            NO_ANSWER,
            f"no answer from {address} within {timeout_s:g} s: is the graph running{hint}?",
        )
    reply = json.loads(raw)
    if not reply.get("ok"):
        return ERROR_REPLY, f"error: {reply.get('error', 'the graph gave no reason')}"
    return OK, json.dumps(reply.get("result", {}), indent=2, sort_keys=True)
