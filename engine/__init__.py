"""genconv.engine: models, the Langevin sampler, learning loops, data and checkpoints.

The engine calls the hot operations through ``genconv.bindings.backends``, never a kernel
directly, so every model runs on the PyTorch reference path and on the fused kernels alike.
"""
