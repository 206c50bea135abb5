"""The arbiter's end of a worker: its process and the channel to it.

    a, b = spawn_pair(model_dir)                       # two CPU workers on fresh ipc paths
    a, b = spawn_pair(model_dir, backend="cuda", devices=(0, 1))
    arb = Arbiter((a, b), cfg, clock, safe_default=...)  # the arbiter starts them

`ProcessLink.start()` launches `python -m redline.pipeline.cli.worker ...` (= `redline worker`)
as a child process (a fresh interpreter, not a fork: forked zmq processes hung intermittently
here, see FLOORS.md) and connects a channel (transport/channel.py) whose sends fail at once to a
dead worker, which is how a crash is detected within one event. `stop()` SIGKILLs: a worker
taken out is not trusted to shut down cleanly. `close_all` stops every link and removes their
ipc files.

A tcp endpoint needs the graph's CURVE key (`curve_file`, a `redline keys` secret file): the
worker lets in only that key and the link proves it (transport/channel.py). `refused` is the
worker's count of foreign peers turned away, as its last HEARTBEAT said.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from redline.pipeline.transport.channel import Channel
from redline.pipeline.transport.curve import Curve, read_secret
from redline.pipeline.transport.run_dir import run_dir
from redline.pipeline.workers.protocol import Kind, Reply, decode_reply


class ProcessLink:
    """One worker process and the channel to it; satisfies arbiter.config.WorkerLink."""

    def __init__(
        self,
        name: str,
        endpoint: str,
        model_dir: str | Path,
        backend: str = "cpu",
        device: int = 0,
        fault: str = "",
        heartbeat_ms: float = 5.0,
        extra_args: tuple[str, ...] = (),
        ctx: Any = None,
        curve_file: str = "",
        insecure: bool = False,
    ) -> None:
        if not Path(model_dir).is_dir():
            raise FileNotFoundError(f"worker {name}: {model_dir} is not a plan directory")
        self.name = name
        self.endpoint = endpoint
        self.cmd = [
            sys.executable,
            "-m",
            "redline.pipeline.cli.worker",
            "--backend",
            backend,
            "--device",
            str(device),
            "--model",
            str(model_dir),
            "--endpoint",
            endpoint,
            "--heartbeat-ms",
            str(heartbeat_ms),
            "--parent-pid",
            str(os.getpid()),
            *extra_args,
        ]
        self._first_fault = fault  # only the first start gets the configured fault
        self.ctx = ctx  # a zmq.Context to share; None: the process-wide one
        self.proc: subprocess.Popen | None = None
        self.channel: Channel | None = None
        self.curve: Curve | None = None
        self._env: dict[str, str] = {}  # the worker's own CURVE settings, on top of ours
        if curve_file:
            public, secret = read_secret(curve_file)  # a bad file fails here, not in the child
            self.curve = Curve(public, secret, frozenset({public}))
            self._env["REDLINE_WORKER_CURVE_SECRET_FILE"] = str(Path(curve_file).resolve())
        self.insecure = insecure
        if insecure:
            self._env["REDLINE_WORKER_INSECURE"] = "1"
        self.refused = 0  # foreign peers the worker refused (its last HEARTBEAT's s1)

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self) -> None:
        self.stop()
        cmd = list(self.cmd)
        if self._first_fault:
            cmd += ["--fault", self._first_fault]
            self._first_fault = ""
        env = {**os.environ, **self._env} if self._env else None
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, env=env)
        self.channel = Channel.connect(self.endpoint, self.ctx, self.curve, self.insecure)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def exited(self) -> bool:
        return self.proc is None or self.proc.poll() is not None

    def send(self, frames: list) -> bool:
        return self.channel is not None and self.channel.send(frames)

    def ready(self) -> bool:
        return self.channel is not None and self.channel.ready()

    def recv(self) -> list[Reply]:
        out: list[Reply] = []
        ch = self.channel
        while ch is not None and (parts := ch.recv()) is not None:
            reply = decode_reply(parts)
            if reply.kind == Kind.HEARTBEAT:
                self.refused = max(self.refused, reply.stamps[1])  # a restart counts from 0
            out.append(reply)
        return out

    def waitable(self) -> Channel | None:
        return self.channel


def ipc_endpoints(n: int = 2, folder: str | Path | None = None) -> list[str]:
    """Fresh, unique ipc addresses (paths under `folder` or this run's private directory,
    which goes at exit: transport/run_dir.py)."""
    base = Path(folder) if folder else run_dir()
    tag = uuid.uuid4().hex[:8]
    return [f"ipc://{base}/redline-w{i}-{tag}" for i in range(n)]


def spawn_pair(
    model_dir: str | Path,
    endpoints: tuple[str, str] | None = None,
    backend: str = "cpu",
    devices: tuple[int, int] = (0, 0),
    faults: tuple[str, str] = ("", ""),
    heartbeat_ms: float = 5.0,
    extra_args: tuple[str, ...] = (),
) -> tuple[ProcessLink, ProcessLink]:
    """Links for workers A and B (not started: the Arbiter starts them)."""
    eps = endpoints or tuple(ipc_endpoints(2))
    return tuple(  # type: ignore[return-value]
        ProcessLink(
            name,
            eps[i],
            model_dir,
            backend,
            devices[i],
            faults[i],
            heartbeat_ms,
            extra_args,
        )
        for i, name in enumerate("AB")
    )


def close_all(links) -> None:
    """Kill every worker and remove its ipc socket file."""
    for link in links:
        link.stop()
        if link.endpoint.startswith("ipc://"):
            Path(link.endpoint[len("ipc://") :]).unlink(missing_ok=True)
