"""The counter-based normal generator: exact Philox words, N(0, 1) statistics, independence."""

import math

import pytest
import torch

from genconv.kernels.reference import _philox_first_two_words, philox_normal

MASK = 0xFFFFFFFF


def philox_words_python(seed: int, counter: int) -> tuple[int, int]:
    """Philox-4x32-10 in plain Python integers (no wrap-around tricks): an independent oracle."""
    c = [counter & MASK, (counter >> 32) & MASK, 0, 0]
    k0, k1 = seed & MASK, (seed >> 32) & MASK
    for _ in range(10):
        product_b = 0xCD9E8D57 * c[2]
        product_a = 0xD2511F53 * c[0]
        c = [(product_b >> 32) ^ c[1] ^ k0, product_b & MASK, (product_a >> 32) ^ c[3] ^ k1, product_a & MASK]
        k0, k1 = (k0 + 0x9E3779B9) & MASK, (k1 + 0xBB67AE85) & MASK
    return c[0], c[1]


@pytest.mark.parametrize("seed", [0, 1, 123456789, 2**40 + 17, 2**63 - 1])
def test_philox_words_match_a_plain_integer_implementation(seed: int) -> None:
    counters = [0, 1, 2, 3, 1000, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**33 + 11, 2**62 + 5]
    words0, words1 = _philox_first_two_words(seed, torch.tensor(counters, dtype=torch.int64))
    for index, counter in enumerate(counters):
        assert (int(words0[index]), int(words1[index])) == philox_words_python(seed, counter)


def test_normals_have_unit_gaussian_moments_and_distribution() -> None:
    count = 1_000_000
    z = philox_normal(seed=2024, offset=0, shape=(count,)).double()
    error = 1 / math.sqrt(count)
    assert abs(float(z.mean())) < 5 * error
    assert abs(float(z.var()) - 1) < 5 * math.sqrt(2) * error
    assert abs(float((z**3).mean())) < 5 * math.sqrt(15) * error
    assert abs(float((z**4).mean()) - 3) < 5 * math.sqrt(96) * error
    sorted_z, _ = torch.sort(z)
    cdf = 0.5 * (1 + torch.erf(sorted_z / math.sqrt(2)))
    empirical = torch.arange(1, count + 1, dtype=torch.float64) / count
    kolmogorov_smirnov = float((cdf - empirical).abs().max())
    assert kolmogorov_smirnov < 1.95 / math.sqrt(count)  # 0.1 % level


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).mean() / (a.std() * b.std()))


def test_no_correlation_between_neighbours_steps_and_chains() -> None:
    batch, channels, size = 64, 3, 32
    numel = batch * channels * size * size
    step0 = philox_normal(7, 0, (batch, channels, size, size))
    step1 = philox_normal(7, numel, (batch, channels, size, size))
    bound = 5 / math.sqrt(numel)
    assert abs(_correlation(step0[..., 1:], step0[..., :-1])) < bound
    assert abs(_correlation(step0[..., 1:, :], step0[..., :-1, :])) < bound
    assert abs(_correlation(step0[:, 1:], step0[:, :-1])) < bound
    assert abs(_correlation(step0[1:], step0[:-1])) < bound
    assert abs(_correlation(step0, step1)) < bound


def test_reproducible_and_distinct_across_seeds_and_offsets() -> None:
    shape = (4, 5, 6)
    first = philox_normal(99, 10, shape)
    assert torch.equal(first, philox_normal(99, 10, shape))
    assert not torch.allclose(first, philox_normal(100, 10, shape))
    assert not torch.allclose(first, philox_normal(99, 11, shape))
    # Element e is drawn at counter offset + e, whatever the tensor's shape.
    assert torch.equal(philox_normal(99, 13, (20,)), first.flatten()[3:23])


def test_rejects_out_of_range_seeds_and_offsets() -> None:
    with pytest.raises(ValueError, match="seed"):
        philox_normal(-1, 0, (3,))
    with pytest.raises(ValueError, match="seed"):
        philox_normal(2**63, 0, (3,))
    with pytest.raises(ValueError, match="offset"):
        philox_normal(0, -5, (3,))
