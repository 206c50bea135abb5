"""Bytes on the wire: the frame format, receive arenas, the compiled ZeroMQ drain, socket timestamping."""
