"""`redline demo --driving`: the driving graph on the bundled drive, in closed loop.

A publisher process replays `--seconds` of the bundled driving recording (radar 20 Hz, wheel
speeds 50 Hz, camera, IMU), centred on the lead's emergency stop, over a real ZeroMQ socket
(tcp, PUSH) into the `driving` graph (pipeline/graph/presets/driving.toml): feed -> sync (radar
and wheel speeds aligned into fused frames, latest value with a maximum age, stale or missing
inputs flagged per frame) -> frame arbiter with two workers running the learned planner term
(kernels/plans/driving_model.py, its weights bundled in replay_data/driving_model) -> acc_aeb planner -> journal.
The loop is closed (venue/driving_loop.LiveLoop): the ego moves by the graph's commands, the
lead as recorded, and the sync hands the planner what the simulated ego sees, so the gap
depends on what the graph decided. Halfway, worker A is SIGKILLed (`--no-chaos` to skip).

Prints frames, commands by origin, minimal-risk causes, min TTC and gap, collisions and the
sensor-frame-to-command latency (p50/p99/p99.9); writes the journal and `driving.png` (gap,
speeds, commands over time). `--json PATH` keys: `frames`, `commands`, `commands_by_origin`
(CommandOrigin names: model, reference, emergency, minimal_risk, safe_default), `collisions`,
`min_ttc_s` (null: never closing in), `min_gap_m`, `latency_ns` (`p50`, `p99`, `p999`, `max`),
`decisions_by_origin` (who answered: worker_a, worker_b, fallback, default), `mrm_causes`,
`lost`, `deadline_misses`, `failovers`, `restarts`, `killed_worker_pids`, `sync`, `seconds`.
Exit 0 only when every frame got its command and nothing was lost (and no collision: 1).

`run_driving` takes the faults the tests cause for real: the radar going silent, both workers
killed, both workers made slow.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from redline.pipeline.graph import config as gc
from redline.pipeline.graph.runtime import Runtime

RECORDING = "driving_sensors.parquet"
FRAME_HZ = 50  # frames come with the wheel speeds (the preset's trigger)


class Faults(NamedTuple):
    """What to break during the run; frame counts are the sync's frames sent."""

    kill_a_at: int | None = None  # SIGKILL worker A (the trading demo's chaos)
    radar_stops_s: float | None = None  # the publisher stops sending radar this far in
    kill_all_at: int | None = None  # SIGKILL both workers
    slow_at: int | None = None  # both workers sleep `slow_s` before every answer from here
    slow_s: float = 0.05


def recording_path() -> Path:
    from redline.replay_data import DIR

    return DIR / RECORDING


def window(path: Path, seconds: float) -> tuple[int, int]:
    """[start, end) ts_event of `seconds` of the recording centred on the lead's stop."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from redline.feeds.synthetic.driving import BRAKE_AT_FRACTION

    ts = pq.read_table(path, columns=["ts_event"])["ts_event"]
    first, last = pc.min(ts).as_py(), pc.max(ts).as_py()
    if seconds * 1e9 > last - first:
        raise ValueError(f"--seconds {seconds:g}: the recording is {(last - first) / 1e9:.0f} s")
    centre = first + BRAKE_AT_FRACTION * (last - first)
    start = int(max(first, centre - seconds * 1e9 / 2))
    return start, start + int(seconds * 1e9)


def _publish(path: str, endpoint: str, start: int, end: int, speed: float | None,
             radar_stop: int | None) -> None:  # fmt: skip
    """Publisher process: the recording's [start, end), radar records after `radar_stop` left
    out (a radar gone silent), paced."""
    from redline.feeds.live.publisher import publish_batches
    from redline.feeds.replay.reader import replay
    from redline.feeds.synthetic.driving import RADAR_ID

    batches = []
    for rtype, recs in replay([path], batch_rows=4096):
        keep = recs[(recs["ts_event"] >= start) & (recs["ts_event"] < end)]
        if radar_stop is not None:
            keep = keep[(keep["sensor_id"] != RADAR_ID) | (keep["ts_event"] < radar_stop)]
        if len(keep):
            batches.append((rtype, keep))
    stats = publish_batches(batches, endpoint, speed=speed, socket="push", sndhwm=64,
                            wait_timeout_s=120)  # fmt: skip
    if stats.undelivered:
        raise SystemExit(f"redline demo --driving: publisher: {stats.undelivered}")


def driving_graph(port: int, journal: Path, model: Path, fallback: bool = True,
                  paced: bool = False) -> gc.GraphSpec:  # fmt: skip
    """The bundled `driving` preset, pointed at this run's publisher, model and journal.
    Unpaced (`--speed max`) the sync keeps lockstep, so the outcome never depends on the host;
    paced it supersedes frames the planner fell behind on, as the live preset does."""
    spec = gc.load("driving")
    nodes = dict(spec.nodes)
    nodes["sync"] = msgspec.structs.replace(nodes["sync"], behind="latest" if paced else "wait")
    nodes["feed"] = msgspec.structs.replace(nodes["feed"], source=f"tcp://127.0.0.1:{port}")
    nodes["arbiter"] = msgspec.structs.replace(nodes["arbiter"], model=str(model),
                                               fallback=fallback)  # fmt: skip
    nodes["journal"] = msgspec.structs.replace(nodes["journal"], path=str(journal))
    return msgspec.structs.replace(spec, nodes=nodes)


def run_driving(seconds: float, speed: float | None, out: Path, faults: Faults | None = None,
                fallback: bool = True, model: Path | None = None,
                log=print) -> tuple[dict[str, Any], Runtime, Any]:  # fmt: skip
    """One closed-loop run; returns (the figures, the finished runtime, the loop). `model`: a
    driving plan folder (None: the bundled one)."""
    import uvloop

    from redline.kernels.plans import driving_model
    from redline.pipeline.cli.demo import _free_port
    from redline.pipeline.observe.worker_log import worker_log_path
    from redline.venue.driving_loop import LiveLoop, lead_from_recording

    faults = faults or Faults()
    path = recording_path()
    start, end = window(path, seconds)
    out.mkdir(parents=True, exist_ok=True)
    journal = out / "journal.arrow"
    journal.unlink(missing_ok=True)
    worker_log_path(journal).unlink(missing_ok=True)
    if model is None:
        model = driving_model.bundled_dir()
    port = _free_port()
    spec = driving_graph(port, journal, model, fallback, paced=speed is not None)
    loop = LiveLoop(lead_from_recording(path), start_ns=start)
    t0 = time.monotonic()
    rt = Runtime(spec, metrics_port=0)  # starts both workers and waits until they are warm
    for name in ("sync", "planner"):
        rt.nodes[name].attach(loop)
    radar_stop = None if faults.radar_stops_s is None else start + int(faults.radar_stops_s * 1e9)
    pub = multiprocessing.get_context("spawn").Process(
        target=_publish, args=(str(path), f"tcp://127.0.0.1:{port}", start, end, speed, radar_stop)
    )
    pub.start()
    killed: list[int] = []
    try:
        code = uvloop.run(_run(rt, pub, faults, killed, log))
    finally:
        pub.join(30)
        if pub.is_alive():
            pub.kill()
    if pub.exitcode:
        raise RuntimeError(
            f"the publisher process failed (exit {pub.exitcode}; its error is above)"
        )
    assert code == 0 or rt.lost, code  # a drain that lost input counts it in rt.lost
    return summary(rt, loop, time.monotonic() - t0, killed), rt, loop


async def _run(rt: Runtime, pub, faults: Faults, killed: list[int], log) -> int:
    """Run the graph; cause the faults as frames pass; stop if the publisher dies."""
    sync, arb = rt.nodes["sync"], rt.nodes["arbiter"]
    graph = asyncio.create_task(rt.run_async())
    pending = {"a": faults.kill_a_at, "all": faults.kill_all_at, "slow": faults.slow_at}
    while True:
        frames = sync.frames
        if pending["a"] is not None and frames >= pending["a"]:
            pending["a"] = None
            killed.append(arb.kill_worker(0))
            log(f"chaos: worker A (pid {killed[-1]}) killed at frame {frames:,}")
        if pending["all"] is not None and frames >= pending["all"]:
            pending["all"] = None
            killed += [arb.kill_worker(0), arb.kill_worker(1)]
            log(f"chaos: both workers (pids {killed[-2]}, {killed[-1]}) killed at frame {frames:,}")
        if pending["slow"] is not None and frames >= pending["slow"]:
            pending["slow"] = None
            for w in (0, 1):
                arb.arb.inject(w, f"delay@0:{faults.slow_s}")
            log(f"chaos: both workers answer {faults.slow_s * 1e3:g} ms late from frame {frames:,}")
        if graph.done():
            return graph.result()
        if pub.exitcode:  # nothing more will come: end the graph now
            rt.stop()
        await asyncio.wait({graph}, timeout=0.005)


def summary(rt: Runtime, loop, wall_s: float, killed: list[int]) -> dict[str, Any]:
    """The contract figures of a finished run."""
    stats = rt.stats()
    nodes = stats["nodes"]
    sync, arb, planner, sink = (nodes[n] for n in ("sync", "arbiter", "planner", "journal"))
    arb_stats = arb["arbiter"]
    lost = (sync["frames"] - planner["commands"]) + (arb["asked"] - sink["decisions"])
    lost += sum(stats["lost"].values())
    return {
        "frames": sync["frames"],
        "commands": planner["commands"],
        "commands_by_origin": planner["commands_by_origin"],
        "collisions": loop.collisions,
        "min_ttc_s": None if math.isinf(loop.min_ttc_s) else float(loop.min_ttc_s),
        "min_gap_m": None if math.isinf(loop.min_gap_m) else float(loop.min_gap_m),
        "latency_ns": sink["latency_ns"],
        "decisions_by_origin": sink["decisions_by_origin"],
        "mrm_causes": planner["mrm_causes"],
        "lost": lost,
        "deadline_misses": sink["deadline_misses"],
        "failovers": arb_stats.get("failovers", 0),
        "restarts": arb_stats.get("restarts", 0),
        "killed_worker_pids": killed,
        "sync": {k: sync[k] for k in ("stale", "missing", "out_of_order", "ignored", "superseded")},
        "seconds": wall_s,
    }


def plot(planner_log, loop_log, path: Path) -> Path:
    """Gap, speeds and commands (coloured by origin) over time, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from redline.strategies.acc_aeb import CommandOrigin

    world = np.array(loop_log, float).reshape(-1, 4)  # t, gap, ego speed, lead speed
    cmds = np.array([row[:3] for row in planner_log], float).reshape(-1, 3)  # t, cmd, origin
    t_world = world[:, 0] - world[0, 0] if len(world) else world[:, 0]
    fig, ax = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    ax[0].plot(t_world, world[:, 1], color="k")
    ax[0].set_ylabel("gap (m)")
    ax[1].plot(t_world, world[:, 2], label="ego")
    ax[1].plot(t_world, world[:, 3], label="lead (recorded)")
    ax[1].set_ylabel("speed (m/s)")
    ax[1].legend(loc="upper right")
    for o in CommandOrigin:
        mine = cmds[:, 2] == o
        if mine.any():
            ax[2].scatter(cmds[mine, 0], cmds[mine, 1], s=4, label=o.name.lower())
    ax[2].set_ylabel("command (m/s²)")
    ax[2].set_xlabel("time (s)")
    ax[2].legend(loc="lower right", markerscale=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run(args) -> int:
    """`redline demo --driving` with the demo's --seconds, --speed, --no-chaos, --model (a
    driving plan folder; default: the shipped weights), --out and --json."""
    from redline.pipeline.cli.folders import output_folder
    from redline.pipeline.cli.json_out import write_json

    if args.out is not None:
        output_folder(args.out)
    out = Path(args.out or tempfile.mkdtemp(prefix="redline-driving-"))
    frames = int(args.seconds * FRAME_HZ)
    faults = Faults(kill_a_at=None if args.no_chaos else max(1, frames // 2))
    speed = "max" if args.speed is None else f"{args.speed:g}x"
    print(f"redline demo --driving: {args.seconds:g} s of the drive around the lead's stop at "
          f"{speed}, closed loop, chaos {'off' if args.no_chaos else 'on'}; output in {out}")  # fmt: skip
    model = Path(args.model) if args.model else None  # --model: a driving plan folder
    f, rt, loop = run_driving(args.seconds, args.speed, out, faults, model=model)
    png = plot(rt.nodes["planner"].log, loop.log, out / "driving.png")
    _print_summary(f)
    print(f"report: {out / 'journal.arrow'} and {png.name} in {out}")
    write_json(args.json, f)
    if f["lost"]:
        print(f"redline demo --driving: {f['lost']} frames or commands lost (see the figures)")
    if f["collisions"]:
        print(f"redline demo --driving: {f['collisions']} collision(s) in closed loop")
    return 0 if f["lost"] == 0 and f["collisions"] == 0 else 1


def _print_summary(f: dict[str, Any]) -> None:
    lat = f["latency_ns"]
    us = ", ".join(f"{k} {'-' if lat[k] is None else f'{lat[k] / 1e3:,.1f}'}"
                   for k in ("p50", "p99", "p999", "max"))  # fmt: skip
    origins = ", ".join(f"{k} {v:,}" for k, v in f["commands_by_origin"].items())
    answers = ", ".join(f"{k} {v:,}" for k, v in f["decisions_by_origin"].items())
    ttc = "inf" if f["min_ttc_s"] is None else f"{f['min_ttc_s']:.2f} s"
    print(f"frames {f['frames']:,}, commands {f['commands']:,} ({origins})")
    print(f"answers by ({answers}); minimal-risk causes {f['mrm_causes']}")
    print(f"collisions {f['collisions']}, min TTC {ttc}, min gap {f['min_gap_m'] or 0:.2f} m")
    print(f"sensor frame to command (µs): {us}")
    print(f"lost {f['lost']}, deadline misses {f['deadline_misses']}, failovers "
          f"{f['failovers']}, worker restarts {f['restarts']}, {f['seconds']:.1f} s")  # fmt: skip
    if f["sync"]["superseded"]:
        print(f"frames superseded by newer ones while the planner was behind: "
              f"{f['sync']['superseded']:,} (paced: the sync's behind = latest)")  # fmt: skip
