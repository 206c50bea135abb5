"""Inference worker processes: the process, its protocol, the link to it, its engines."""
