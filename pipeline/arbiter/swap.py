"""Hot model swap: load beside, warm, canary, flip between two requests, watch, roll back.

    swapper = SwapCoordinator(arb, registry, base_label="demo@1")
    await swapper.swap("demo", "2")   # {"ok": True, "flipped_at_event": ..., "canary": ...}
    await swapper.rollback()          # the same flip back, to the version still warm
    await swapper.confirm()           # the old version leaves the workers (or keep_warm_s does)

Runs on the graph's event loop, beside the node that polls the arbiter (it never polls itself:
the decisions a poll returns are the node's). A swap:

1. resolves MODEL@VERSION in the registry (checksum, pickles refused, input features) and
   loads it in the process for the fallback (in a thread: the loop keeps deciding);
2. sends LOAD to worker A, then to B once A has answered (one at a time: while one loads, the
   other answers every request, so no deadline waits on a load); each loads the version beside
   the serving one through its own plan check, warms it, and runs the canary: both versions on
   the last `canary_rows` real inputs it holds (workers/engines.py);
3. judges each canary (the workers' and the fallback's) with the precision gate's rule
   (kernels/plans/gate_core.py) against `bound`: a NaN, an infinity, outputs further than
   `max_abs_error` or decisions agreeing less than `min_agreement` refuse the version, the old
   one keeps serving, and the reply says why. A new version is meant to answer differently,
   so the bound is a drift bound, not fp32 equality (CANARY_BOUND);
4. flips: from the next event number on every request is answered by the new version, in
   both workers (USE) and the fallback, and every decision carries its tag (versions.py).
   It happens here, between two of the node's steps, so between two requests.

After the flip the old version stays loaded. For `watch.window_s` the new one is watched
(watch.py): a bad output (NaN, out of range) or a disagreement between the workers flips back
at once (automatic rollback), and so do deadline misses when the new version causes them,
judged against the old version timed beside it in the workers on the same requests in the
same window (a slower host slows both alike; that leaves a "kept" line, not a rollback). The
reason goes to the arbiter's events log (the worker log beside the journal). `confirm()`, or
`keep_warm_s` after the flip, drops every version but the serving one; after that there is
nothing to roll back to (swap to it again instead).
"""

from __future__ import annotations

import asyncio
import time

import numpy as np

from redline.kernels.plans.gate_core import PrecisionBound, measure_arrays
from redline.kernels.plans.registry import Registry, RegistryError
from redline.pipeline.arbiter.watch import Watch, WatchRules

# Outputs of order 1 (the demo model's score); the dead zone is the demo strategy's threshold.
CANARY_BOUND = PrecisionBound(max_abs_error=0.5, min_agreement=0.9, decision_threshold=0.2)
CANARY_ROWS = 256
LOAD_TIMEOUT_S = 30.0
WHO = "swap"  # the events log's "worker" column for what the swap does


class SwapCoordinator:
    def __init__(
        self,
        arb,
        registry: Registry,
        *,
        base_label: str = "",
        features: str | None = "auto",
        trust=None,
        canary_rows: int = CANARY_ROWS,
        bound: PrecisionBound = CANARY_BOUND,
        watch: WatchRules | None = None,
        keep_warm_s: float = 60.0,
        load_timeout_s: float = LOAD_TIMEOUT_S,
    ) -> None:
        self.arb = arb
        self.registry = registry
        self.features = features
        self.trust = trust
        self.canary_rows = canary_rows
        self.bound = bound
        self.watch = watch or WatchRules()
        self.keep_warm_s = keep_warm_s
        self.load_timeout_s = load_timeout_s
        self.previous = 0  # the version a rollback returns to (0: none warm)
        self.history: list[dict] = []  # every swap, rollback and confirm, as returned
        self.base_label = base_label  # the name of the version the workers started with
        self._busy = False
        self._watcher: asyncio.Task | None = None
        self._confirmer: asyncio.TimerHandle | None = None

    # -- the control plane's calls --------------------------------------------------------------

    async def swap(self, model: str, version: str) -> dict:
        """Load MODEL@VERSION beside the serving version, canary it, flip to it."""
        if self._busy:
            return self._refused("a swap or rollback is in progress; wait for its reply")
        self._busy = True
        try:
            return await self._swap(f"{model}@{version}")
        finally:
            self._busy = False

    async def rollback(self, reason: str = "operator") -> dict:
        """Flip back to the previous version, still warm; refused when none is."""
        if self._busy and reason == "operator":
            return self._refused("a swap is in progress; wait for its reply")
        if not self.previous:
            return self._refused(
                "no previous version is warm (never swapped, or confirmed since); swap to it"
            )
        t0 = time.perf_counter_ns()
        back, self.previous = self.previous, self.arb.models.current
        first = self._flip(back)
        self._stop_watch()
        self._schedule_confirm()
        label = self.arb.models.label(back)
        self._log("rollback", f"to {label} from event {first}: {reason}")
        return self._record({
            "ok": True, "action": "rollback", "serving": label, "reason": reason,
            "flipped_at_event": first, "flipped_at_seq": self.arb.counts["decisions"],
            "command_to_flip_ms": (time.perf_counter_ns() - t0) / 1e6,
        })  # fmt: skip

    async def confirm(self) -> dict:
        """Keep the serving version: every other one leaves the workers and the fallback."""
        models = self.arb.models
        if not models.current:
            return self._refused("nothing to confirm: no swap yet")
        self._stop_watch(confirming=True)
        dropped = [v for v in {*models.loaded, *self.arb.versions} if v and v != models.current]
        for v in dropped:
            models.drop(v)
            if self.arb.fallback is not None:
                self.arb.fallback.engine.drop(v)
        self.previous = 0
        labels = [models.label(v) for v in sorted(dropped)]
        self._log("confirm", f"serving {models.label(models.current)}; dropped {labels}")
        return self._record({"ok": True, "action": "confirm", "dropped": labels})

    def close(self) -> None:
        """Stop watching and the keep-warm timer (the graph is ending)."""
        self._stop_watch(confirming=True)

    def status(self) -> dict:
        m = self.arb.models
        return {
            "serving": m.label(m.current or self.arb.versions[0]),
            "previous": m.label(self.previous) if self.previous else None,
            "history": list(self.history),
        }

    # -- the swap -------------------------------------------------------------------------------

    async def _swap(self, ref: str) -> dict:
        t0 = time.perf_counter_ns()
        arb, models = self.arb, self.arb.models
        if self.base_label and arb.versions[0]:
            models.labels.setdefault(arb.versions[0], self.base_label)
        out = [b.name for b in arb.breakers if not b.serving]
        if out:
            return self._refused(f"worker(s) {out} not in service; swap when both serve")
        fb = arb.fallback
        if fb is not None and not hasattr(fb.engine, "add_plan"):
            return self._refused("the fallback's engine cannot hold two model versions")
        try:
            path = self.registry.resolve(ref, features=self.features, trust=self.trust)
            plan = await asyncio.to_thread(_load, path, self.features, self.trust)
        except (RegistryError, ValueError, OSError) as exc:
            return self._refused(f"{ref}: {exc}")
        vid = int(plan.version_id)
        serving = models.current or arb.versions[0]
        if vid == serving:
            return self._refused(f"{ref} is the serving version")
        models.labels[vid] = ref
        canary: dict[str, dict] = {}
        canary_ns = 0
        if fb is not None:  # the fallback answers too: it must hold the version and pass
            try:
                fb.engine.add_plan(plan)
                fb.engine.warm(plan)
                c0 = time.perf_counter_ns()
                _, old, new = fb.engine.canary(plan, self.canary_rows)
                canary["fallback"] = self._judge(old, new)
                canary_ns += time.perf_counter_ns() - c0
            except ValueError as exc:
                canary["fallback"] = {"passed": False, "reason": str(exc)}
        for w, link in enumerate(arb.links):  # one worker at a time: the other keeps serving
            if any(not c["passed"] for c in canary.values()):
                break
            result, ns = await self._load_one(w, str(path), vid)
            canary[link.name] = result
            canary_ns += ns
        failed = {k: c["reason"] for k, c in canary.items() if not c["passed"]}
        if failed:
            reason = "; ".join(f"{k}: {why}" for k, why in failed.items())
            models.drop(vid)  # from the workers that loaded it; the old one never stopped
            if fb is not None:
                fb.engine.drop(vid)
            self._log("canary failed", f"{ref} refused, {models.label(serving)} serving: {reason}")
            return self._record({
                "ok": False, "action": "swap", "version": ref, "flipped": False,
                "serving": models.label(serving), "reason": f"canary failed: {reason}",
                "canary": canary, "canary_ms": canary_ns / 1e6,
            })  # fmt: skip
        models.loaded[vid] = str(path)
        self.previous = serving
        first = self._flip(vid)
        t_flip = time.perf_counter_ns()
        self._log("flip", f"{models.label(serving)} -> {ref} from event {first}")
        self._start_watch(vid)
        self._schedule_confirm()
        return self._record({
            "ok": True, "action": "swap", "version": ref, "flipped": True,
            "previous": models.label(serving), "flipped_at_event": first,
            "flipped_at_seq": arb.counts["decisions"],
            "command_to_flip_ms": (t_flip - t0 - canary_ns) / 1e6,
            "canary_ms": canary_ns / 1e6, "canary": canary,
        })  # fmt: skip

    async def _load_one(self, w: int, path: str, vid: int) -> tuple[dict, int]:
        """LOAD to worker w and wait for its LOADED: (canary verdict, worker canary ns)."""
        arb, models = self.arb, self.arb.models
        name = arb.links[w].name
        if not models.load(w, path, vid, self.canary_rows):
            return {"passed": False, "reason": f"worker {name} did not take the LOAD"}, 0
        end = time.monotonic() + self.load_timeout_s
        while (msg := models.loads[w]) is None:
            if not arb.breakers[w].serving:
                return {"passed": False, "reason": f"worker {name} left service while loading"}, 0
            if time.monotonic() > end:
                return {"passed": False, "reason": f"no LOADED in {self.load_timeout_s} s"}, 0
            await asyncio.sleep(0.0005)
        if msg.stamps[3]:  # refused by the worker
            return {"passed": False, "reason": bytes(msg.payload or b"").decode()}, 0
        rows = msg.id
        both = np.frombuffer(msg.payload, np.float32).reshape(2, rows, arb.n_out)
        c0 = time.perf_counter_ns()
        verdict = self._judge(both[0], both[1])
        verdict["load_ms"] = msg.stamps[0] / 1e6
        return verdict, msg.stamps[1] + time.perf_counter_ns() - c0

    def _judge(self, old: np.ndarray, new: np.ndarray) -> dict:
        """The gate's verdict on `new` against `old` (the serving version, same inputs)."""
        if not len(old):
            return {"passed": False, "reason": "no real inputs seen yet; swap once events flow"}
        report = measure_arrays(new, old, "canary", self.bound)
        verdict = {**report.as_dict(), "reason": ""}
        if not report.passed:
            verdict["reason"] = (
                f"max abs error {report.max_abs_error:.3g} (bound {self.bound.max_abs_error:g}), "
                f"decision agreement {report.agreement:.3f} (bound {self.bound.min_agreement:g}) "
                f"on {report.rows} inputs"
            )
        return verdict

    def _flip(self, vid: int) -> int:
        """The flip: from the next event on, `vid` answers everywhere. Returns that event."""
        arb = self.arb
        first = arb.event_no + 1
        arb.models.flip(vid, first, base=arb.versions[0])
        if arb.fallback is not None:
            arb.fallback.engine.use(first, vid)
        return first

    # -- after the flip -------------------------------------------------------------------------

    def _start_watch(self, vid: int) -> None:
        self._stop_watch()
        rules = self.watch
        if self.previous:  # the old version answers in shadow until the watch ends
            self.arb.models.shadow(self.previous, rules.shadow_every, int(rules.report_ms * 1e6))
        self._watcher = asyncio.get_running_loop().create_task(self._watch(vid))

    def _stop_watch(self, confirming: bool = False) -> None:
        task, self._watcher = self._watcher, None
        if task is not None and not task.done() and task is not _current_task():
            task.cancel()
        if self.arb.models.shadowing[0]:
            self.arb.models.shadow(0)
        if confirming and self._confirmer is not None:
            self._confirmer.cancel()
            self._confirmer = None

    def _schedule_confirm(self) -> None:
        if self._confirmer is not None:
            self._confirmer.cancel()
        loop = asyncio.get_running_loop()
        self._confirmer = loop.call_later(
            self.keep_warm_s, lambda: loop.create_task(self.confirm())
        )

    async def _watch(self, vid: int) -> None:
        """Roll back when the new version raises alarms within the watch window (watch.py)."""
        watch = Watch(self.arb, self.watch, vid, self.previous)
        end = time.monotonic() + self.watch.window_s
        try:
            while time.monotonic() < end and self.arb.models.current == vid:
                why, kept = watch.verdict()
                if kept:
                    self._log("kept", kept)
                if why:
                    self._watcher = None
                    await self.rollback(reason=f"automatic: {why}")
                    return
                await asyncio.sleep(0.002)
        finally:
            if self._watcher is _current_task() and self.arb.models.shadowing[0]:
                self._watcher = None
                self.arb.models.shadow(0)  # the window is over: the workers stop timing

    # -- records --------------------------------------------------------------------------------

    def _refused(self, why: str) -> dict:
        return self._record({"ok": False, "error": why})

    def _record(self, reply: dict) -> dict:
        self.history.append({k: v for k, v in reply.items() if k != "canary"})
        return reply

    def _log(self, what: str, why: str) -> None:
        self.arb.log.append((self.arb.clock.monotonic_ns(), WHO, what, why))


class ScheduledSwap:
    """A swap started once a run reaches `at` events (`redline demo --swap`), asked again while
    a worker is out (the host's load, not the swap, can trip one); `reply` is its answer."""

    def __init__(self, model: str, version: str, at: int) -> None:
        self.model, self.version, self.at = model, version, at
        self.task: asyncio.Task | None = None
        self.reply: dict = {"ok": False, "error": "the run ended before the swap point"}

    def maybe_start(self, target, events: int, say) -> None:
        """`target`: what has `async swap(model, version)`; `say`: prints one line."""
        if self.task is None and events >= self.at:
            self.task = asyncio.get_running_loop().create_task(self._run(target, events, say))

    async def _run(self, target, events: int, say) -> None:
        while "not in service" in (r := await target.swap(self.model, self.version)).get(
            "error", ""
        ):
            await asyncio.sleep(0.05)
        self.reply = r
        if not r.get("flipped"):
            say(f"swap: refused: {r.get('reason') or r.get('error')}")
            return
        say(
            f"swap: {r['previous']} -> {r['version']} from the arbiter's event "
            f"{r['flipped_at_event']:,} (asked when the feed had {events:,}): "
            f"{r['command_to_flip_ms']:.1f} ms from command to flip, canary {r['canary_ms']:.1f} ms"
        )


def _current_task() -> asyncio.Task | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no loop running (the graph has ended)
        return None


def _load(path, features, trust):
    from redline.kernels.plans.numpy_loader import load_cpu_plan

    return load_cpu_plan(path, features=features, trust=trust)
