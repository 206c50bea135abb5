"""The control commands: what a request may say, and the table of handlers that carry them out.

A request is one JSON object, `{"verb": "swap", "args": ["demo@2"]}`; the answer is
`{"ok": true, "verb": ..., "result": {...}}` or `{"ok": false, "error": "one line"}`.

    status                      decisions, workers, faults, versions, refused handshakes
    swap MODEL@VERSION          load a registered model version beside the current one, flip
    rollback                    flip back to the version before the last swap
    drain                       stop intake; the graph drains what it accepted and exits
    kill-switch on|off          on: no decision adds risk (every one is still journaled)
    restart-worker A|B          take a worker out; recovery restarts it and rebuilds its state

The runtime registers what it can do (`Handlers.register`); a verb with no handler is answered
with an error naming it ("swap: this graph has no swap handler"), never a crash.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

# verb -> (argument names, the usage shown in errors)
VERBS: dict[str, tuple[tuple[str, ...], str]] = {
    "status": ((), "status"),
    "swap": (("model", "version"), "swap MODEL@VERSION"),
    "rollback": ((), "rollback"),
    "confirm": ((), "confirm"),  # after a swap: drop the old version (no rollback after this)
    "drain": ((), "drain"),
    "kill-switch": (("on",), "kill-switch on|off"),
    "restart-worker": (("worker",), "restart-worker A|B"),
}
MAX_REQUEST_BYTES = 64 << 10  # a command is a few words; anything larger is not one

Handler = Callable[..., Awaitable[dict[str, Any]]]


class Command(NamedTuple):
    verb: str
    args: tuple[str, ...]  # as given
    kwargs: dict[str, Any]  # as the handler takes them


class CommandError(ValueError):
    """A request that is not a command; the message is the one-line error reply."""


def parse(body: bytes) -> Command:
    """A request body -> Command, or CommandError saying what is wrong and what would be right."""
    if len(body) > MAX_REQUEST_BYTES:
        raise CommandError(f"request of {len(body)} bytes; a command is under {MAX_REQUEST_BYTES}")
    try:
        req = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CommandError(f'not JSON ({exc}); send {{"verb": "status", "args": []}}') from None
    if not isinstance(req, dict) or not isinstance(req.get("verb"), str):
        raise CommandError('expected a JSON object with a "verb" string')
    verb, args = req["verb"], req.get("args", [])
    if verb not in VERBS:
        raise CommandError(f"unknown verb {verb!r}; valid: {', '.join(VERBS)}")
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise CommandError(f'{verb}: "args" must be a list of strings')
    names, usage = VERBS[verb]
    want = 1 if names else 0  # swap's two names come from one MODEL@VERSION argument
    if len(args) != want:
        raise CommandError(f"{verb}: takes {want} argument(s), got {len(args)}; usage: {usage}")
    return Command(verb, tuple(args), _kwargs(verb, args, usage))


def _kwargs(verb: str, args: list[str], usage: str) -> dict[str, Any]:
    if verb == "swap":
        model, sep, version = args[0].partition("@")
        if not sep or not model or not version:
            raise CommandError(f"swap: {args[0]!r} is not MODEL@VERSION; usage: {usage}")
        return {"model": model, "version": version}
    if verb == "kill-switch":
        if args[0] not in ("on", "off"):
            raise CommandError(f"kill-switch: {args[0]!r}; usage: {usage}")
        return {"on": args[0] == "on"}
    if verb == "restart-worker":
        worker = args[0].upper()
        if worker not in ("A", "B"):
            raise CommandError(f"restart-worker: {args[0]!r}; usage: {usage}")
        return {"worker": worker}
    return {}


class Handlers:
    """What this graph can do, by verb: async callables taking the command's kwargs and
    returning the result dict of the reply (raise ValueError to answer with an error)."""

    def __init__(self) -> None:
        self._table: dict[str, Handler] = {}

    def register(self, verb: str, fn: Handler) -> None:
        if verb not in VERBS:
            raise ValueError(f"no control verb {verb!r} (verbs: {', '.join(VERBS)})")
        self._table[verb] = fn

    def __contains__(self, verb: str) -> bool:
        return verb in self._table

    async def run(self, cmd: Command) -> dict[str, Any]:
        fn = self._table.get(cmd.verb)
        if fn is None:
            raise ValueError(f"{cmd.verb}: this graph has no {cmd.verb} handler")
        return await fn(**cmd.kwargs)


def answer(verb: str | None, result: dict[str, Any] | None = None, error: str = "") -> bytes:
    """The reply body."""
    out: dict[str, Any] = {"ok": not error}
    if verb:
        out["verb"] = verb
    if error:
        out["error"] = error
    else:
        out["result"] = result or {}
    return json.dumps(out, default=str).encode()
