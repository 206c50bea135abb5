"""redline.pipeline: clocks, the streaming graph, workers, arbiter and the CLI."""
