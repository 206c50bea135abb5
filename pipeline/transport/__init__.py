"""Graph edges and worker channels behind one small interface (ZeroMQ today)."""
