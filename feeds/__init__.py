"""redline.feeds: the event model, instruments, replay and live feeds."""
