"""In-kernel noise: the Philox normals of the reference, N(0, 1), independent, reproducible."""

import math

import pytest
import torch

from genconv.kernels import normal as kernel_module
from genconv.kernels.normal import standard_normal
from genconv.kernels.reference import philox_normal

from kernel_support import COMPILED, DEVICE

pytestmark = pytest.mark.interpreter


@pytest.mark.parametrize("seed,offset", [(0, 0), (123, 5), (2**40 + 17, 2**33 + 11)])
def test_matches_the_reference_generator(seed: int, offset: int) -> None:
    drawn = standard_normal(seed, offset, (7, 3, 11), DEVICE).cpu()
    expected = philox_normal(seed, offset, (7, 3, 11))
    # Identical Philox words; only log/cos may differ in the last bits (fast math on a GPU).
    torch.testing.assert_close(drawn, expected, rtol=1e-5 if COMPILED else 1e-6, atol=1e-5 if COMPILED else 1e-6)


def test_moments_and_correlations() -> None:
    batch, channels, size = 32, 2, 32
    numel = batch * channels * size * size
    step0 = standard_normal(9, 0, (batch, channels, size, size), DEVICE).double().cpu()
    step1 = standard_normal(9, numel, (batch, channels, size, size), DEVICE).double().cpu()
    error = 1 / math.sqrt(numel)
    assert abs(float(step0.mean())) < 5 * error
    assert abs(float(step0.var()) - 1) < 5 * math.sqrt(2) * error

    def correlation(a, b):
        a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
        return float((a * b).mean() / (a.std() * b.std()))

    bound = 5 * error
    assert abs(correlation(step0[..., 1:], step0[..., :-1])) < bound  # neighbouring pixels
    assert abs(correlation(step0[1:], step0[:-1])) < bound  # neighbouring chains
    assert abs(correlation(step0, step1)) < bound  # consecutive steps


def test_reproducible_distinct_and_independent_of_the_launch(monkeypatch) -> None:
    first = standard_normal(5, 100, (4000,), DEVICE)
    assert torch.equal(first, standard_normal(5, 100, (4000,), DEVICE))
    assert not torch.allclose(first, standard_normal(6, 100, (4000,), DEVICE))
    assert torch.equal(standard_normal(5, 101, (10,), DEVICE), first[1:11])
    monkeypatch.setattr(kernel_module, "_configs", lambda: [kernel_module.triton.Config({"BLOCK": 128})])
    assert torch.equal(standard_normal(5, 100, (4000,), DEVICE), first)
