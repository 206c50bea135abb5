"""The control endpoint of a running graph: requests in, handlers run, answers out, journaled.

    server = ControlServer(ControlSocket(ctx, address), handlers, CommandJournal(path), clock)
    task = asyncio.create_task(server.serve())     # on the runtime's loop, until cancelled

A request that is not a command (not JSON, an unknown verb, a missing argument) is answered
with an error and counted in `malformed`; a handler that fails is answered with its error.
Neither reaches the graph: the nodes keep deciding. Every accepted command is journaled with
the key id of whoever sent it, whether it succeeded or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from typing import Any

from redline.feeds.clock import Clock
from redline.pipeline.control.commands import CommandError, Handlers, answer, parse
from redline.pipeline.control.journal import CommandJournal
from redline.pipeline.transport.control_socket import ControlSocket, Request
from redline.pipeline.transport.waiting import unwatch, watch

_RECHECK_S = 0.5  # a missed edge-triggered wake-up costs at most this long


class ControlServer:
    """Serves one ControlSocket with a Handlers table."""

    def __init__(
        self, sock: ControlSocket, handlers: Handlers, journal: CommandJournal, clock: Clock
    ) -> None:
        self.sock = sock
        self.handlers = handlers
        self.journal = journal
        self.clock = clock
        self.accepted = 0  # commands parsed and run (journaled)
        self.failed = 0  # of which answered with an error
        self.malformed = 0  # requests that were not commands
        self._on_serve: list[Callable[[], None]] = []
        self._on_close: list[Callable[[], None]] = []

    @property
    def refused(self) -> int:
        """Handshakes the endpoint turned away (tcp: clients without an allowed key)."""
        return self.sock.refused.count

    def stats(self) -> dict[str, Any]:
        return {
            "address": self.sock.address,
            "accepted": self.accepted,
            "failed": self.failed,
            "malformed": self.malformed,
            "refused": self.refused,
            "journal": str(self.journal.path),
        }

    async def serve(self) -> None:
        """Answer requests until cancelled."""
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        fds = watch(loop, [self.sock], wake.set)
        for fn in self._on_serve:
            fn()
        try:
            while True:
                req = self.sock.recv()
                if req is not None:
                    await self.handle(req)
                    continue
                wake.clear()
                if self.sock.ready():  # edge-triggered: ask again before sleeping (waiting.py)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), _RECHECK_S)
        finally:
            unwatch(loop, fds)

    async def handle(self, req: Request) -> None:
        try:
            cmd = parse(req.body)
        except CommandError as exc:
            self.malformed += 1
            self.sock.reply(req.envelope, answer(None, error=str(exc)))
            return
        self.accepted += 1
        error = ""
        result: dict[str, Any] = {}
        try:
            result = await self.handlers.run(cmd)
        except ValueError as exc:  # the handler's own one-line refusal
            error = str(exc)
        except Exception as exc:  # a bug in a handler must not take the graph down with it
            error = f"{cmd.verb}: failed: {type(exc).__name__}: {exc}"
            print(f"redline control: {error}", file=sys.stderr)
        if error:
            self.failed += 1
        self.journal.append(self.clock.now_ns(), req.key_id, cmd.verb, cmd.args, error)
        self.sock.reply(req.envelope, answer(cmd.verb, result, error))

    def on_serve(self, fn: Callable[[], None]) -> None:
        """Run `fn` when answering starts (publish the address: only a serving graph is found)."""
        self._on_serve.append(fn)

    def on_close(self, fn: Callable[[], None]) -> None:
        """Run `fn` when the endpoint closes (e.g. withdraw its published address)."""
        self._on_close.append(fn)

    def close(self) -> None:
        for fn in self._on_close:
            fn()
        self.sock.close()
