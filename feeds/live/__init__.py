"""Live feeds: the ZeroMQ and UDP sources, the publisher that replays onto a socket, the recorder."""
