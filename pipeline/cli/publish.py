"""`redline publish FILE... --endpoint ADDR [--speed 1|10|max]`: replay recordings
onto a real ZeroMQ or UDP socket and report the pacing error."""

from __future__ import annotations

import sys

from redline.feeds.live.publisher import publish
from redline.pipeline.cli.json_out import add_json_arg, write_json


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"--speed must be a positive number or 'max', got {text!r}")
    return value


def register(sub) -> None:
    p = sub.add_parser("publish", help="replay recordings onto a ZeroMQ or UDP socket")
    p.add_argument("files", nargs="+", metavar="FILE", help="Parquet recordings")
    p.add_argument("--endpoint", required=True, help="tcp://, ipc:// or udp://HOST:PORT")
    p.add_argument("--speed", default="1", help="1 = recorded pace, 10 = ten times faster, max")
    p.add_argument("--socket", choices=("pub", "push"), default="pub", help="ZeroMQ socket kind")
    p.add_argument("--connect", action="store_true", help="connect instead of binding (ZeroMQ)")
    p.add_argument("--batch", type=int, default=64, help="most records per frame")
    p.add_argument(
        "--subscribers", type=int, default=1, help="pub: subscribers to wait for before sending"
    )
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for subscribers")
    p.add_argument("--interface", help="udp multicast: IPv4 address of the sending interface")
    p.add_argument(
        "--linger",
        type=float,
        default=5.0,
        help="at the end, seconds to wait for a reader that stopped reading before giving up",
    )
    add_json_arg(p)
    p.set_defaults(run=run)


def run(args) -> int:
    try:
        stats = publish(
            args.files,
            args.endpoint,
            speed=_speed(args.speed),
            socket=args.socket,
            bind=not args.connect,
            max_batch=args.batch,
            wait_subscribers=args.subscribers,
            wait_timeout_s=args.wait,
            interface=args.interface,
            linger_s=args.linger,
        )
    except TimeoutError as exc:
        print(f"redline publish: {exc}", file=sys.stderr)
        return 1
    err = stats.pacing_error_ns
    pacing = (
        f"pacing error p50 {err['p50'] / 1e3:.1f} µs p99 {err['p99'] / 1e3:.1f} µs"
        if err
        else "pacing: none (max speed)"
    )
    print(
        f"redline publish: {stats.events} events in {stats.frames} frames to {stats.endpoint} "
        f"in {stats.seconds:.3f} s ({stats.events_per_s:,.0f} events/s); {pacing}"
    )
    write_json(args.json, stats.as_dict())
    if stats.undelivered:
        print(f"redline publish: error: {stats.undelivered}", file=sys.stderr)
        return 1
    return 0
