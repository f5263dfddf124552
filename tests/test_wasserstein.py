"""genconv's wGCN formulation: Gaussian JKO oracles (spec oracle 12), the transport and gradient penalties."""

import itertools
import math

import pytest
import torch
from scipy.optimize import minimize

from genconv.engine.wasserstein import (
    exact_assignment,
    gaussian_jko_step,
    gaussian_w2_squared,
    gradient_penalty,
    mean_squared_displacement,
    transport_penalty,
)

from support import ARCHITECTURES, build, random_input


def jko_objective(parameters, mean_before: float, std_before: float, tau: float, sigma: float, dim: int) -> float:
    """F(rho) + W2^2(rho, rho_k) / (2 tau) for rho = N(m 1, s^2 I_D), U = ||x||^2 / (2 sigma^2)."""
    mean, std = parameters
    if std <= 0:
        return float("inf")
    potential = dim * (mean**2 + std**2) / (2 * sigma**2)
    negative_entropy = -dim / 2 * math.log(2 * math.pi * math.e * std**2)
    transport = dim * ((mean - mean_before) ** 2 + (std - std_before) ** 2) / (2 * tau)
    return potential + negative_entropy + transport


@pytest.mark.parametrize("mean,std,tau,sigma", [(2.0, 0.5, 0.1, 1.0), (-1.0, 3.0, 0.5, 2.0), (0.3, 1.0, 0.02, 0.5)])
def test_jko_closed_form_minimises_the_jko_objective(mean: float, std: float, tau: float, sigma: float) -> None:
    dim = 3
    closed_mean, closed_std = gaussian_jko_step(torch.full((dim,), mean), std, tau, sigma)
    numeric = minimize(jko_objective, x0=[mean, std], args=(mean, std, tau, sigma, dim), method="Nelder-Mead",
                       options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 10_000})  # fmt: skip
    assert float(closed_mean[0]) == pytest.approx(numeric.x[0], abs=1e-6)
    assert closed_std == pytest.approx(numeric.x[1], abs=1e-6)


def test_jko_iterates_converge_to_the_reference() -> None:
    mean, std = torch.tensor([3.0, -2.0]), 0.1
    for _ in range(200):
        mean, std = gaussian_jko_step(mean, std, tau=0.2, sigma=1.5)
    assert float(mean.abs().max()) < 1e-6
    assert std == pytest.approx(1.5, abs=1e-6)
    fixed_mean, fixed_std = gaussian_jko_step(torch.zeros(4), 1.5, tau=0.3, sigma=1.5)
    assert float(fixed_mean.abs().max()) == 0.0 and fixed_std == pytest.approx(1.5, abs=1e-12)


def test_one_langevin_step_agrees_with_the_jko_step_to_first_order() -> None:
    """For U = ||x||^2/(2 sigma^2) the ULA step and the JKO step agree up to O(tau^2) (spec 3.1-3.2)."""
    sigma, mean, std = 1.0, 2.0, 0.7
    gaps = []
    for tau in (0.04, 0.02, 0.01):
        ula_mean = mean * (1 - tau / sigma**2)
        ula_std = math.sqrt((1 - tau / sigma**2) ** 2 * std**2 + 2 * tau)
        jko_mean, jko_std = gaussian_jko_step(torch.tensor([mean]), std, tau, sigma)
        gaps.append(abs(ula_mean - float(jko_mean[0])) + abs(ula_std - jko_std))
    assert gaps[0] / gaps[1] == pytest.approx(4, rel=0.1) and gaps[1] / gaps[2] == pytest.approx(4, rel=0.1)


def test_gaussian_w2_and_its_particle_estimates() -> None:
    generator = torch.Generator().manual_seed(0)
    mean_a, mean_b = torch.tensor([0.0, 1.0]), torch.tensor([2.0, -1.0])
    exact = gaussian_w2_squared(mean_a, 1.0, mean_b, 2.0)
    assert exact == pytest.approx(8.0 + 2 * 1.0)
    a = mean_a + 1.0 * torch.randn(256, 2, generator=generator, dtype=torch.float64)
    b = mean_b + 2.0 * torch.randn(256, 2, generator=generator, dtype=torch.float64)
    assignment = mean_squared_displacement(a, b[exact_assignment(a, b)])
    coupling = mean_squared_displacement(a, b)
    assert float(assignment) == pytest.approx(exact, rel=0.1)
    assert float(coupling) > float(assignment)


def test_any_pairing_costs_at_least_the_exact_assignment() -> None:
    generator = torch.Generator().manual_seed(1)
    for _ in range(5):
        a, b = torch.randn(6, 3, generator=generator), torch.randn(6, 3, generator=generator)
        costs = [float(mean_squared_displacement(a, b[list(p)])) for p in itertools.permutations(range(6))]
        assignment = float(mean_squared_displacement(a, b[exact_assignment(a, b)]))
        assert assignment == pytest.approx(min(costs), abs=1e-6)
        assert all(cost >= assignment - 1e-6 for cost in costs)


def test_transport_penalty_is_the_scaled_step_length_and_reaches_the_weights() -> None:
    model = build(ARCHITECTURES[1], dtype=torch.float32)
    x = random_input(model, batch=4)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    delta, sigma = 0.3, model.sigma
    penalty = transport_penalty(model, x, noise, delta, sigma, transport="coupling")
    step = (delta**2 / 2) * (model.grad_f_autograd(x) - x / sigma**2) + delta * noise
    assert float(penalty.detach()) == pytest.approx(float(step.pow(2).flatten(1).sum(1).mean() / delta**2), rel=1e-5)
    penalty.backward()
    weight_grad = model.convs[0].weight.grad
    assert weight_grad is not None and float(weight_grad.abs().max()) > 0
    model.zero_grad()
    assignment = transport_penalty(model, x, noise, delta, sigma, transport="assignment")
    assert float(assignment.detach()) <= float(penalty.detach()) + 1e-6


def test_expected_transport_is_the_coupling_averaged_over_the_noise() -> None:
    """The coupling cost is quadratic in eps, so the pair eps, -eps averages it exactly: the
    expected cost's weight gradient equals the pair's mean gradient, its value the pair's mean
    plus the known noise term."""
    model = build(ARCHITECTURES[1], dtype=torch.float32)
    x = random_input(model, batch=3)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    delta, sigma = 0.7, model.sigma
    parameters = list(model.parameters())

    def value_and_grads(penalty: torch.Tensor) -> tuple[float, list[torch.Tensor]]:
        return float(penalty.detach()), list(torch.autograd.grad(penalty, parameters))

    expected, expected_grads = value_and_grads(transport_penalty(model, x, noise, delta, sigma, "expected"))
    plus, plus_grads = value_and_grads(transport_penalty(model, x, noise, delta, sigma, "coupling"))
    minus, minus_grads = value_and_grads(transport_penalty(model, x, -noise, delta, sigma, "coupling"))
    noise_term = float(noise.pow(2).flatten(1).sum(1).mean())
    assert expected == pytest.approx((plus + minus) / 2 - noise_term + x[0].numel(), rel=1e-5)
    for mine, first, second in zip(expected_grads, plus_grads, minus_grads, strict=True):
        scale = float(first.abs().max() + second.abs().max())
        torch.testing.assert_close(mine, (first + second) / 2, rtol=1e-4, atol=1e-5 * scale)
    differences = [float((first - second).abs().max()) for first, second in zip(plus_grads, minus_grads, strict=True)]
    assert max(differences) > 1e-6  # the drawn noise does move the coupling's gradient


def test_gradient_penalty_by_hand() -> None:
    model = build(ARCHITECTURES[0], dtype=torch.float32)
    observed, synthesized = random_input(model, batch=2, seed=3), random_input(model, batch=3, seed=4)
    mixing = torch.tensor([0.2, 0.5, 0.9])
    value = gradient_penalty(model, observed, synthesized, mixing, target_norm=0.5)
    pairs = observed[[0, 1, 0]]
    mixed = mixing.view(-1, 1, 1, 1) * pairs + (1 - mixing.view(-1, 1, 1, 1)) * synthesized
    norms = model.grad_f_autograd(mixed).flatten(1).norm(dim=1)
    assert float(value.detach()) == pytest.approx(float((norms - 0.5).pow(2).mean()), rel=1e-5)
