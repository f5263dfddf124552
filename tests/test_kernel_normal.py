"""In-kernel noise: the Philox normals of the reference, N(0, 1), independent, reproducible."""

import math

import pytest
import torch
import triton
import triton.language as tl

from genconv.kernels import normal as kernel_module
from genconv.kernels import reference
from genconv.kernels.normal import cos_turns, philox_pair, standard_normal
from genconv.kernels.reference import philox_normal

from kernel_support import COMPILED, DEVICE

pytestmark = pytest.mark.interpreter


@pytest.mark.parametrize("seed,offset", [(0, 0), (123, 5), (2**40 + 17, 2**33 + 11)])
def test_matches_the_reference_generator(seed: int, offset: int) -> None:
    drawn = standard_normal(seed, offset, (7, 3, 11), DEVICE).cpu()
    expected = philox_normal(seed, offset, (7, 3, 11))
    # Identical Philox words; log and cos differ in the last bits: the reference rounds the angle 2 pi u
    # to float32 (up to 2.4e-7 rad at 2 pi, times a radius up to 5.7), the kernel reduces it exactly.
    torch.testing.assert_close(drawn, expected, rtol=1e-5 if COMPILED else 1e-6, atol=1e-5 if COMPILED else 2e-6)


def test_the_kernel_normal_is_box_muller_of_its_words_to_float_precision() -> None:
    count, seed, offset = 100_000, 31, 2**35 + 3
    drawn = standard_normal(seed, offset, (count,), DEVICE).double().cpu()
    counters = torch.arange(count, dtype=torch.int64) + offset
    word0, word1 = reference._philox_first_two_words(seed, counters)
    radius = torch.sqrt(-2.0 * torch.log(reference._uint_to_uniform(word0).clamp_min(1.0e-7).double()))
    exact = radius * torch.cos(2.0 * math.pi * reference._uint_to_uniform(word1).double())
    # a few float32 roundings of numbers below 6: 2e-6 (a GPU's sqrt and log may round differently)
    assert float((drawn - exact).abs().max()) < (2e-5 if COMPILED else 2e-6)


@triton.jit
def _philox_words_kernel(counter_ptr, seed, out_ptr, BLOCK: tl.constexpr, WIDE: tl.constexpr, NARROW: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    counter = tl.load(counter_ptr + offs)
    if NARROW:  # 32-bit counters, as a kernel may pass
        counter = counter.to(tl.int32)
    if WIDE:
        word0, word1 = philox_pair(seed, counter)
    else:
        word0, word1, _, _ = tl.randint4x(seed, counter)
    tl.store(out_ptr + 2 * offs, word0.to(tl.int32, bitcast=True))
    tl.store(out_ptr + 2 * offs + 1, word1.to(tl.int32, bitcast=True))


@pytest.mark.parametrize("narrow", [False, True], ids=["int64", "int32"])
@pytest.mark.parametrize("seed", [0, 7, 2**32 - 1, 2**40 + 12345, 2**63 - 1])
def test_the_wide_multiply_philox_is_tritons_bit_for_bit(seed: int, narrow: bool) -> None:
    generator = torch.Generator().manual_seed(seed % 1000)
    edges = torch.tensor([0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**62 - 1], dtype=torch.int64)
    drawn = torch.randint(0, 2**62, (121,), generator=generator, dtype=torch.int64)
    counters = torch.cat([edges, drawn]).to(DEVICE)
    words = {}
    for wide in (True, False):
        out = torch.empty(2 * counters.numel(), dtype=torch.int32, device=DEVICE)
        _philox_words_kernel[(1,)](counters, seed, out, BLOCK=counters.numel(), WIDE=wide, NARROW=narrow)
        words[wide] = out.cpu()
    assert torch.equal(words[True], words[False])
    assert words[True].unique().numel() > 250  # not a constant


@triton.jit
def _cos_turns_kernel(t_ptr, out_ptr, numel, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + offs, cos_turns(tl.load(t_ptr + offs, mask=offs < numel)), mask=offs < numel)


def test_cos_turns_is_the_cosine_of_the_turn_on_all_of_it() -> None:
    quarters = torch.arange(0.0, 1.0001, 0.125, dtype=torch.float64)  # every quadrant's ends and middle
    near = torch.cat([quarters + step for step in (-1e-7, 1e-7)]).clamp(0.0, 1.0)
    generator = torch.Generator().manual_seed(3)
    turns = torch.cat([quarters, near, torch.rand(20_000, generator=generator, dtype=torch.float64)]).float()
    out = torch.empty_like(turns, device=DEVICE)
    _cos_turns_kernel[(triton.cdiv(turns.numel(), 1024),)](turns.to(DEVICE), out, turns.numel(), BLOCK=1024)
    exact = torch.cos(2.0 * math.pi * turns.double())
    # Cephes' polynomials hold to 3e-8 relative; the angle's one rounding adds 0.5 ulp of pi / 4
    assert float((out.double().cpu() - exact).abs().max()) < 2.5e-7


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
