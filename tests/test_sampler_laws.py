"""The Langevin sampler against laws known exactly (GCN spec oracles 5, 6, 7 and 14).

Fixed seeds; tolerances are a few Monte Carlo standard errors plus the O(delta^2) ULA bias.
"""

import math

import pytest
import torch

from genconv.engine.langevin import langevin
from genconv.engine.model import GenerativeConvNet
from genconv.engine.network import ConvLayer, NetworkSpec
from genconv.kernels import reference


def _phi(value: float) -> float:
    return math.exp(-0.5 * value * value) / math.sqrt(2 * math.pi)


def _Phi(value: float) -> float:
    return 0.5 * (1.0 + math.erf(value / math.sqrt(2)))


def relu_1d_law(w: float, sigma: float) -> tuple[float, float]:
    """P(x < 0) and E[x] for p(x) ∝ exp(w max(0, x)) N(x; 0, sigma^2) (oracle 5)."""
    tilt = math.exp(w * w * sigma * sigma / 2)
    z = 0.5 + tilt * _Phi(w * sigma)
    mean = (-sigma / math.sqrt(2 * math.pi) + tilt * (w * sigma**2 * _Phi(w * sigma) + sigma * _phi(w * sigma))) / z
    return 1 / (2 * z), mean


def _collect(model, x, *, burn_in, keep, every, delta, seed):
    """States of every ``every``-th step after ``burn_in`` steps, stacked."""
    warm = langevin(model, x, steps=burn_in, delta=delta, seed=seed, backend="torch")
    kept = []
    langevin(
        model,
        warm.x,
        steps=keep,
        delta=delta,
        seed=seed,
        start_step=warm.next_step,
        backend="torch",
        callback=lambda step, state: kept.append(state.clone()) if step % every == 0 else None,
    )
    return torch.stack(kept)


def test_closed_form_matches_the_spec_values() -> None:
    probability, mean = relu_1d_law(1.3, 1.0)
    assert probability == pytest.approx(0.1921135, abs=1e-7)
    assert mean == pytest.approx(1.0502525, abs=1e-7)


def exact_relu_1d_samples(w: float, sigma: float, count: int, seed: int) -> torch.Tensor:
    """Independent draws from the oracle-5 law: a half normal below 0, a truncated N(w sigma^2, sigma^2) above."""
    generator = torch.Generator().manual_seed(seed)
    probability_negative, _ = relu_1d_law(w, sigma)
    negative = torch.rand(count, generator=generator, dtype=torch.float64) < probability_negative
    mean = w * sigma**2
    below_zero = torch.special.ndtr(torch.tensor(-mean / sigma, dtype=torch.float64))
    uniform = torch.rand(count, generator=generator, dtype=torch.float64)
    positive = mean + sigma * torch.special.ndtri(below_zero + uniform * (1 - below_zero))
    half_normal = -sigma * torch.randn(count, generator=generator, dtype=torch.float64).abs()
    return torch.where(negative, half_normal, positive).float().view(count, 1, 1, 1)


@pytest.mark.parametrize("w,sigma", [(1.3, 1.0), (0.6, 2.0)])
def test_one_dimensional_relu_law(w: float, sigma: float) -> None:
    """f(x) = w relu(x) on one pixel: ULA with delta = 0.1 sigma keeps P(x<0) and E[x] (oracle 5).

    Chains start from exact draws, so a short burn-in only lets them settle into the ULA law.
    Over seeds the errors were at most 1.3e-3 for P and 5e-3 sigma for the mean (standard errors
    about 8e-4 and 1.8e-3 sigma, plus a ULA bias near +2.5e-3 sigma); the bounds leave room for
    that and still fail on any drift/noise scale error.
    """
    spec = NetworkSpec(1, (ConvLayer(1, 1, 1, 0),), top="sum", bias=False)
    model = GenerativeConvNet(spec, sigma=sigma)
    with torch.no_grad():
        model.convs[0].weight.fill_(w)
    start = exact_relu_1d_samples(w, sigma, 20_000, seed=7)
    states = _collect(model, start, burn_in=200, keep=2000, every=20, delta=0.1 * sigma, seed=11)
    probability, mean = relu_1d_law(w, sigma)
    assert float((states < 0).double().mean()) == pytest.approx(probability, abs=5e-3)
    assert float(states.double().mean()) == pytest.approx(mean, abs=0.012 * sigma)


def _linear_model(weights: torch.Tensor, sigma: float) -> GenerativeConvNet:
    """f(x) = <weights, x> + 1e4: a ReLU unit whose bias keeps it on, i.e. a linear f (oracle 6)."""
    channels, height, width = weights.shape
    spec = NetworkSpec(channels, (ConvLayer(1, height, 1, 0),), top="sum", bias=True, image_size=(height, width))
    model = GenerativeConvNet(spec, sigma=sigma)
    with torch.no_grad():
        model.convs[0].weight.copy_(weights.unsqueeze(0))
        model.convs[0].bias.fill_(1e4)
    return model


@pytest.mark.parametrize("delta,sigma", [(0.3, 1.0), (0.5, 2.0)])
def test_ula_stationary_law_for_linear_f(delta: float, sigma: float) -> None:
    """Stationary mean sigma^2 b and variance sigma^2 / (1 - delta^2 / (4 sigma^2)), exactly (oracle 6).

    A drift/noise scale mismatch (oracle 14) moves the variance by far more than the tolerance.
    """
    weights = torch.randn(1, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 0.5
    model = _linear_model(weights, sigma)
    states = _collect(model, torch.zeros(2000, 1, 4, 4), burn_in=400, keep=1600, every=4, delta=delta, seed=3)
    flat = states.flatten(0, 1).double()
    expected_variance = sigma**2 / (1 - delta**2 / (4 * sigma**2))
    mean_error = (flat.mean(dim=0) - sigma**2 * weights).abs().max()
    variance = flat.var(dim=0).mean()
    # About 4.5 standard errors each (time-correlated samples: 0.0045 sigma per mean, 1.1e-3 relative
    # for the variance); the ULA bias delta^2 / (4 sigma^2) is 1.6-2.3 %, three times the tolerance.
    assert float(mean_error) < 0.02 * sigma
    assert float(variance) == pytest.approx(expected_variance, rel=5e-3)
    assert abs(float(variance) - sigma**2) > 3 * 5e-3 * expected_variance


def _pattern(model: GenerativeConvNet, x: torch.Tensor) -> torch.Tensor:
    """Every layer's mask of each image, flattened into one boolean row per image."""
    return torch.cat([mask.flatten(1) for mask in model.bottom_up(x, "torch").masks], dim=1)


def _gradient_descent_path(model: GenerativeConvNet, x: torch.Tensor, steps: int, delta: float):
    """Energies [steps + 1, B] and activation patterns [steps + 1, B, units] along noise-free dynamics."""
    states = [x]
    langevin(
        model,
        x,
        steps=steps,
        delta=delta,
        noise_free=True,
        backend="torch",
        callback=lambda step, state: states.append(state),
    )
    energies = torch.stack([model.energy(state) for state in states]).detach()
    patterns = torch.stack([_pattern(model, state) for state in states])
    return states, energies, patterns


def test_gradient_descent_reaches_auto_encoding_fixed_points() -> None:
    """Oracle 7 on the paper's prototype model: one layer of K filters covering the whole image.

    f is convex there, so each noise-free step lowers the energy; every chain stops at an
    image with I = sigma^2 B(I) inside its piece, and different starts end in different pieces.
    """
    spec = NetworkSpec(1, (ConvLayer(6, 9, 1, 0),), top="sum", bias=True, image_size=(9, 9), init_std=0.3)
    model = GenerativeConvNet(spec, sigma=1.0, init_seed=0).double()
    with torch.no_grad():
        model.convs[0].bias.normal_(0.0, 3.0, generator=torch.Generator().manual_seed(0))
    x = 3 * torch.randn(12, 1, 9, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    states, energies, patterns = _gradient_descent_path(model, x, steps=500, delta=0.5)
    assert float((energies[1:] - energies[:-1]).max()) <= 1e-12 * float(energies.abs().max())
    final = states[-1]
    assert float((final - model.reconstruct(final, "torch")).abs().max()) < 1e-10
    assert float((x - model.reconstruct(x, "torch")).abs().max()) > 1.0
    assert bool((patterns[-100:] == patterns[-1]).all())
    assert len({tuple(row) for row in patterns[-1].int().tolist()}) >= 3
    assert int((patterns[0] != patterns[-1]).any(dim=1).sum()) >= 1


def _bfloat16_state_chain(x: torch.Tensor, bias: torch.Tensor, steps: int, delta: float, sigma: float) -> torch.Tensor:
    """The same ULA chain with its state rounded to bfloat16 after every step (what genconv avoids)."""
    state = x.bfloat16()
    for step in range(steps):
        noise = torch.randn(state.shape, generator=torch.Generator().manual_seed(step))
        state = reference.langevin_update(state, bias.expand_as(state), delta, sigma, noise=noise)
    return state.double()


def test_bfloat16_chain_keeps_the_exact_ula_variance() -> None:
    """A bfloat16 chain (bfloat16 convolutions, float32 state) samples the oracle-6 law of the
    float32 chain: variance sigma^2 / (1 - delta^2 / (4 sigma^2)) within 2 %. The mean sits at 100,
    where bfloat16's spacing is 0.5: a state rounded to bfloat16 each step adds about 0.02 of
    variance per step and settles 20-30 % too wide, which the same check rejects."""
    sigma, delta, level = 1.0, 0.3, 100.0
    weights = torch.full((1, 4, 4), level / sigma**2, dtype=torch.float64)
    model = _linear_model(weights, sigma)
    start = (level + torch.randn(1000, 1, 4, 4, generator=torch.Generator().manual_seed(4))).bfloat16()
    states = _collect(model, start, burn_in=100, keep=400, every=4, delta=delta, seed=5)
    assert states.dtype == torch.float32  # callbacks see the float32 state
    expected_variance = sigma**2 / (1 - delta**2 / (4 * sigma**2))
    flat = states.flatten(0, 1).double()
    assert float((flat.mean(dim=0) - level).abs().max()) < 0.05 * sigma
    assert float(flat.var(dim=0).mean()) == pytest.approx(expected_variance, rel=0.02)
    rounded = _bfloat16_state_chain(start.float(), torch.tensor(level), 200, delta, sigma)
    assert float(rounded.var(dim=0).mean()) > 1.1 * expected_variance
