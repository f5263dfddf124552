"""genconv.kernels: the hot operations of a Generative ConvNet, each with a pure-PyTorch twin.

``reference`` holds the twins (the CPU path, the test oracle and the benchmark baseline). The
Triton kernels sit beside them, one concern per module. This package knows torch and triton
only; the engine reaches it through ``genconv.bindings``.
"""
