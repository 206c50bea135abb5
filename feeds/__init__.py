"""redline.feeds: the event model, instruments, replay and live feeds."""

from redline.feeds import jit_cache as _jit_cache

_jit_cache.check()  # numba caches outdated by an edit to a module they use go before any loads
