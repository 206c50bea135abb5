"""redline.strategies: turn model answers into decisions inside a budget."""
