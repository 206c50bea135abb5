"""redline.kernels: Triton kernels with their PyTorch references, model plans."""
