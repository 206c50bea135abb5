"""`redline ctl VERB [ARGS]`: command a running graph over its control endpoint.

    redline demo                      # one terminal
    redline ctl status                # another: finds the running graph by itself
    redline ctl kill-switch on        # no decision adds risk; every one is still journaled
    redline ctl restart-worker B
    redline ctl drain                 # stop intake, drain, exit
    redline ctl --address tcp://host:7100 --server-key graph.public --client-key ops.secret status

Verbs: status, swap MODEL@VERSION, rollback, drain, kill-switch on|off, restart-worker A|B.
Prints the graph's answer. Exit 0: done; 1: the graph answered with an error; 2: bad input;
3: no answer within --timeout (one line says so).
"""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("ctl", help="command a running graph (status, swap, kill switch, ...)")
    p.add_argument("verb", metavar="VERB", help="status | swap | rollback | drain | "
                   "kill-switch | restart-worker")  # fmt: skip
    p.add_argument("args", nargs="*", metavar="ARGS", help="MODEL@VERSION, on|off, A|B")
    p.add_argument("--address", default="", help="the endpoint (default: the running graph's)")
    p.add_argument("--graph", default=None, help="which running graph, when several run")
    p.add_argument("--server-key", default="", metavar="FILE", help="tcp: the graph's public key")
    p.add_argument("--client-key", default="", metavar="FILE", help="tcp: your secret key")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S", help="wait this long")
    p.set_defaults(run=run)


def run(args) -> int:
    from redline.pipeline.control.client import call

    if args.timeout <= 0:
        raise ValueError(f"--timeout must be > 0, got {args.timeout:g}")
    code, text = call(
        [args.verb, *args.args], address=args.address, graph=args.graph,
        server_key=args.server_key, client_key=args.client_key, timeout_s=args.timeout,
    )  # fmt: skip
    print(text, file=sys.stdout if code == 0 else sys.stderr)
    return code
