"""What a run leaves to look at: latency accounting, the journal, Prometheus metrics."""
