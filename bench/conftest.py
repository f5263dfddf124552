"""pytest-benchmark configuration: ``pytest bench --benchmark-only`` (``make bench-pytest``).

Benchmarks run on CUDA when there is a device, else on the CPU with the torch reference; the
Triton kernels and genconv-triton run only on CUDA (Triton's CPU interpreter is a test tool, not
a benchmark). Every timed call synchronises the device.
"""

from collections.abc import Callable
from typing import Any

import pytest
import torch


@pytest.fixture(scope="session")
def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def synchronised(fn: Callable[[], Any], device: torch.device) -> Callable[[], Any]:
    """``fn`` followed by a device synchronisation, so the benchmark clock sees the whole call."""

    def call() -> Any:
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return out

    return call
