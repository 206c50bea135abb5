"""The Prometheus endpoint: latency, rates, drops, misses, failovers, health.

One `Metrics` per graph, on its own CollectorRegistry (never the global
one, so two graphs in one process, or a test beside a graph, never
collide). Counters and gauges are updated by the graph on the control path;
the latency figures are read from `LatencyStats` (HDR) at scrape time, so
the hot path never touches prometheus-client.

Exposed (units: seconds, the Prometheus convention):

| metric | type | labels |
|---|---|---|
| redline_events_total | counter | |
| redline_decisions_total | counter | origin |
| redline_deadline_misses_total | counter | |
| redline_drops_total | counter | edge |
| redline_failovers_total | counter | |
| redline_refused_handshakes_total | counter | plane (control, data), endpoint |
| redline_worker_up | gauge (1 healthy, 0 not) | worker |
| redline_model_version | gauge | worker |
| redline_uptime_seconds | gauge (graph clock) | |
| redline_stage_latency_seconds | summary, quantile 0.5/0.99/0.999 | stage |
| redline_stage_latency_max_seconds | gauge | stage |

`stage` is `tick_to_decision` or a stage of `latency.SPANS`. Refused handshakes are peers
turned away without an allowed CURVE key (transport/zap.py): `endpoint` is `control` (the
control plane), a tcp edge's name, or a worker's name (the foreign peers its link refused).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable, Iterator
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.samples import Sample

from redline.feeds.clock import Clock
from redline.feeds.events import Origin
from redline.pipeline.observe.latency import LatencyStats, count_deadline_misses

DEFAULT_PORT = 9464
NS = 1e9

# Summary quantile label -> key of StageHistogram.percentiles().
QUANTILES: dict[str, str] = {"0.5": "p50", "0.99": "p99", "0.999": "p999"}


class Metrics:
    """Counters and gauges for one graph, plus its HTTP endpoint.

    `observe_decisions()` takes a batch of DECISION records (e.g. as a
    `Journal` on_flush listener) and updates decision counts, deadline misses
    and the latency histograms in one vectorised pass.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        edges: Iterable[str] = (),
        workers: Iterable[str] = (),
        latency: LatencyStats | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = latency if latency is not None else LatencyStats()
        r = self.registry
        self.events = Counter("redline_events", "Events taken in by the graph", registry=r)
        self.decisions = Counter(
            "redline_decisions", "Decisions emitted, by origin", ["origin"], registry=r
        )
        self.deadline_misses = Counter(
            "redline_deadline_misses", "Decisions emitted after their deadline", registry=r
        )
        self.drops = Counter(
            "redline_drops", "Messages dropped by backpressure, per edge", ["edge"], registry=r
        )
        self.failovers = Counter(
            "redline_failovers", "Answers taken from a backup after the primary failed", registry=r
        )
        self.refused = Counter(
            "redline_refused_handshakes",
            "Handshakes refused to peers without an allowed key",
            ["plane", "endpoint"],
            registry=r,
        )
        self.worker_up = Gauge(
            "redline_worker_up", "1 while the worker is healthy, 0 when not", ["worker"], registry=r
        )
        self.model_version = Gauge(
            "redline_model_version", "Model version each worker serves", ["worker"], registry=r
        )
        self._refused_seen: dict[tuple[str, str], int] = {}
        # Declared up front so a scrape shows zeros, not missing series.
        self._origin_children = [self.decisions.labels(o.name.lower()) for o in Origin]
        for edge in edges:
            self.drops.labels(edge)
        for worker in workers:
            self.worker_up.labels(worker).set(0)
        r.register(_LatencyCollector(self.latency, clock, clock.monotonic_ns()))
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    # -- updates (control path; each a few µs) ---------------------------------

    def observe_events(self, n: int = 1) -> None:
        self.events.inc(n)

    def observe_decisions(self, decisions: np.ndarray) -> None:
        """Count a batch of DECISION records by origin, count deadline misses,
        record their latencies."""
        self.latency.record(decisions)  # checks the dtype
        counts = np.bincount(decisions["origin"], minlength=len(Origin))
        for child, n in zip(self._origin_children, counts.tolist(), strict=False):
            if n:
                child.inc(n)
        misses = count_deadline_misses(decisions)
        if misses:
            self.deadline_misses.inc(misses)

    def drop(self, edge: str, n: int = 1) -> None:
        self.drops.labels(edge).inc(n)

    def failover(self, n: int = 1) -> None:
        self.failovers.inc(n)

    def refused_total(self, plane: str, endpoint: str, total: int) -> None:
        """`endpoint` of `plane` ("control" or "data") has refused `total` handshakes so far
        (its own count); the first call shows the series, at 0 when nothing was refused."""
        key = (plane, endpoint)
        child = self.refused.labels(plane, endpoint)
        if total > self._refused_seen.get(key, 0):
            child.inc(total - self._refused_seen.get(key, 0))
            self._refused_seen[key] = total

    def set_worker_health(self, worker: str, healthy: bool) -> None:
        self.worker_up.labels(worker).set(1 if healthy else 0)

    def set_model_version(self, worker: str, version: int) -> None:
        self.model_version.labels(worker).set(version)

    # -- endpoint ----------------------------------------------------------------

    def start(self, port: int = DEFAULT_PORT, addr: str = "127.0.0.1") -> int:
        """Serve /metrics on a daemon thread; port 0 picks a free one.
        Returns the bound port."""
        if self._server is not None:
            raise RuntimeError(f"Metrics endpoint already serving on port {self.port}")
        server_cls = _IPv6Server if ":" in addr else _Server
        self._server = make_server(
            addr, port, make_wsgi_app(self.registry), server_cls, handler_class=_QuietHandler
        )
        # prometheus_client's start_http_server polls for shutdown every 0.5 s;
        # 50 ms keeps a graceful stop (and each test) from waiting on it.
        thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="redline-metrics", daemon=True
        )
        thread.start()
        self._thread = thread
        self.port = int(self._server.server_port)
        return self.port

    def stop(self) -> None:
        """Stop serving and free the port (safe when not started)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self) -> Metrics:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow scraper never blocks shutdown


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # no stderr line per scrape
        pass


class _LatencyCollector:
    """Reads the HDR histograms at scrape time (under the stats lock)."""

    def __init__(self, latency: LatencyStats, clock: Clock, start_ns: int) -> None:
        self._latency = latency
        self._clock = clock
        self._start_ns = start_ns

    def describe(self) -> list[Metric]:
        # Static names: lets the registry catch a clash at register time.
        return [
            GaugeMetricFamily("redline_uptime_seconds", ""),
            SummaryMetricFamily("redline_stage_latency_seconds", ""),
            GaugeMetricFamily("redline_stage_latency_max_seconds", ""),
        ]

    def collect(self) -> Iterator[Metric]:
        uptime = (self._clock.monotonic_ns() - self._start_ns) / NS
        yield GaugeMetricFamily(
            "redline_uptime_seconds", "Seconds since the metrics started (graph clock)", uptime
        )
        summary = SummaryMetricFamily(
            "redline_stage_latency_seconds",
            "Per-stage latency from HDR histograms; tick_to_decision is ts_recv to decision",
            labels=["stage"],
        )
        maxima = GaugeMetricFamily(
            "redline_stage_latency_max_seconds", "Largest latency seen per stage", labels=["stage"]
        )
        with self._latency.lock():
            for stage, hist in self._latency.histograms().items():
                pct = hist.percentiles()
                for q, key in QUANTILES.items():
                    if pct[key] is not None:
                        summary.samples.append(
                            Sample(summary.name, {"stage": stage, "quantile": q}, pct[key] / NS)
                        )
                summary.add_metric([stage], hist.count, hist.sum_ns / NS)
                if pct["max"] is not None:
                    maxima.add_metric([stage], pct["max"] / NS)
        yield summary
        yield maxima
