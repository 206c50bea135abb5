"""The streaming graph: its config, its nodes and the runtime that drives them."""
