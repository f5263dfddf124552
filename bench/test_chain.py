"""pytest-benchmark of the K-step chain and one learning iteration, for every registered provider.

CPU: the texture preset at 64 px, batch 4, 5 steps; CUDA: 64 px, batch 256, 30 steps. Providers
that cannot run here (genconv-triton without CUDA, torchebm when not installed) are skipped.
"""

import pytest
import torch

from bench.conftest import synchronised
from bench.providers import PROVIDERS
from bench.run import timed_call
from bench.workloads import Workload, build_setup


def _workload(kind: str, device: torch.device) -> Workload:
    batch, steps = (256, 30) if device.type == "cuda" else (4, 5)
    return Workload(kind, "texture", 64, 3, batch, "float32", steps)


@pytest.mark.parametrize("kind", ["chain", "train"])
@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_texture_64px(benchmark, device, provider: str, kind: str) -> None:
    reason = PROVIDERS[provider].unavailable(device)
    if reason is not None:
        pytest.skip(reason)
    workload = _workload(kind, device)
    setup = build_setup(workload, device)
    sampler = PROVIDERS[provider].build(setup)
    try:
        call = synchronised(timed_call(setup, sampler), device)
        benchmark.group = workload.group
        benchmark.extra_info["image_steps"] = workload.image_steps
        rounds = 10 if device.type == "cuda" else 3
        result = benchmark.pedantic(call, rounds=rounds, warmup_rounds=1, iterations=1)
    finally:
        sampler.close()
    assert bool(torch.isfinite(result.float()).all())
