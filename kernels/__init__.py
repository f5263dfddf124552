"""genconv.kernels: the hot operations of a Generative ConvNet, each with a pure-PyTorch twin.

``reference`` holds the twins (the CPU path, the test oracle and the benchmark baseline). The
Triton kernels sit beside them, one concern per module. This package knows torch and triton
only; the engine reaches it through ``genconv.bindings``.
"""

import os

# The kernels are written and checked with fused multiply-adds on, Triton's default up to 3.9
# (which warns that 3.10 turns it off unless this is set); a user's own setting wins.
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
