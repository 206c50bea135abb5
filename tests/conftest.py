import os

# Kernel tests run on the Triton interpreter on machines without a GPU.
os.environ.setdefault("TRITON_INTERPRET", "1")

from redline.feeds import jit_cache  # its import already ran the stamped check

# The precise check regardless of the stamp (~0.2-0.3 s), as before the stamp existed: a
# numba cache must not outlive an edit to a module it depends on.
jit_cache.drop_stale()
