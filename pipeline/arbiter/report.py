"""What an arbiter reports: its counters with the stable keys of the --json reports, decisions
by origin and by model version, and each worker's health (arbiter.py's `stats()`)."""

from __future__ import annotations

from typing import Any


def arbiter_stats(arb: Any) -> dict:
    """`arb.stats()`: read-only over the arbiter's counters, policy, versions and breakers."""
    out = {**arb.counts, **arb.recovery.counts, "audits": arb.policy.audits}
    out["decisions_by_origin"] = {o.name.lower(): n for o, n in arb.by_origin.items()}
    out["policy"] = str(arb.cfg.policy)
    out["hedge_delay_ns"] = arb.policy.delay_ns
    out["decisions_by_version"] = {
        arb.models.label(v): n for v, n in sorted(arb.by_version.items())
    }
    out["wrong_version_answers"] = arb.models.wrong_version
    out["workers"] = {
        link.name: {
            **b.stats(),
            "pid": link.pid,
            "model_version": arb.models.current or arb.versions[w],
        }
        for w, (link, b) in enumerate(zip(arb.links, arb.breakers, strict=True))
    }
    return out
