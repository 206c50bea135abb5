"""The simulated venue: orders in, fills out, after the latency the live graph really has."""
