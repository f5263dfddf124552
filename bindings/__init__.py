"""genconv.bindings: the surface other code uses.

``backends`` dispatches the hot operations to the PyTorch reference or the fused Triton kernels,
``errors`` holds the exceptions, ``cli`` the command line. This package imports no engine module
at import time, so the engine can build on it.
"""
