"""genconv.bindings: the surface other code uses.

``backends`` dispatches the hot operations to the PyTorch reference or the fused Triton kernels;
``ops`` registers them as ``torch.ops.genconv`` operators; ``sampler`` (with ``update_rules``) runs
Langevin chains on any energy, ``replay`` keeps persistent chains, ``torchebm_adapter`` plugs the
sampler into TorchEBM; ``graphs`` caches CUDA-graph captured chains; ``errors`` holds the
exceptions, ``cli`` the command line. This package imports no engine module at import time, so
the engine can build on it.
"""
