import os
import sys
from pathlib import Path

# Kernel tests run on the Triton interpreter on machines without a GPU.
os.environ.setdefault("TRITON_INTERPRET", "1")

sys.path.insert(0, str(Path(__file__).parent))  # test helpers (import-mode=importlib)
from numba_cache import drop_stale

# numba's cache misses changes in the modules a cached function depends on.
drop_stale(Path(__file__).resolve().parents[1])
