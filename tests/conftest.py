import os

# Kernel tests run on the Triton interpreter on machines without a GPU.
os.environ.setdefault("TRITON_INTERPRET", "1")
