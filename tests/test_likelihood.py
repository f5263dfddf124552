"""AIS log Z and held-out log-likelihood against exact answers: a linear f (Gaussian target, log Z
in closed form) and one-layer GCNs in 1-D and 2-D whose Z comes from quadrature."""

import json
import math

import numpy as np
import pytest
import torch
from scipy import integrate

from genconv.bindings.errors import ConfigError
from genconv.engine.likelihood import (
    MixtureBase,
    adaptive_betas,
    annealed_log_z,
    beta_schedule,
    chain_mixture,
    equilibrate,
    log_likelihood,
    log_mean_exp_with_se,
)
from genconv.engine.model import GenerativeConvNet
from genconv.engine.network import ConvLayer, NetworkSpec


def _linear(dimension: int, sigma: float, seed: int = 0):
    """f(x) = <a, x> + b: p = N(sigma^2 a, sigma^2 I) and log Z = b + sigma^2 ||a||^2 / 2."""
    generator = torch.Generator().manual_seed(seed)
    a = 0.6 * torch.randn(dimension, generator=generator, dtype=torch.float64)
    b = 0.7

    def score_and_grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = x.to(torch.float64).flatten(1)
        return flat @ a + b, a.to(x.dtype).expand_as(flat).reshape(x.shape)

    return score_and_grad, a, b + sigma**2 * float(a.pow(2).sum()) / 2


def _one_layer_gcn(channels: int, weights: list[list[float]], biases: list[float], sigma: float) -> GenerativeConvNet:
    """f(x) = sum_k relu(<w_k, x> + b_k) for x in R^channels: a 1 x 1 image, one 1 x 1 conv, summed top."""
    spec = NetworkSpec(channels, (ConvLayer(len(biases), 1, 1, 0),), top="sum", image_size=(1, 1))
    model = GenerativeConvNet(spec, sigma=sigma)
    with torch.no_grad():
        model.convs[0].weight.copy_(torch.tensor(weights).view(len(biases), channels, 1, 1))
        model.convs[0].bias.copy_(torch.tensor(biases))
    return model


def _gcn_log_z_by_quadrature(weights: np.ndarray, biases: np.ndarray, sigma: float) -> float:
    """log of the integral of exp(f) N(0, sigma^2 I): adaptive quadrature split at the kinks in 1-D,
    a 3001^2-point trapezoid grid in 2-D (f's kinks cost O(h^2), ~1e-5 relative here)."""
    bound = 10.0 * sigma + sigma**2 * float(np.abs(weights).sum())
    if weights.shape[1] == 1:

        def integrand(x: float) -> float:
            f = float(np.maximum(weights[:, 0] * x + biases, 0.0).sum())
            return math.exp(f - x * x / (2 * sigma**2)) / math.sqrt(2 * math.pi * sigma**2)

        kinks = sorted(-biases / weights[:, 0])
        value, _ = integrate.quad(integrand, -bound, bound, points=kinks, limit=400, epsabs=0, epsrel=1e-10)
        return math.log(value)
    axis = np.linspace(-bound, bound, 3001)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1)
    f = np.maximum(grid @ weights.T + biases, 0.0).sum(axis=-1)
    density = np.exp(f - (grid**2).sum(axis=-1) / (2 * sigma**2)) / (2 * math.pi * sigma**2)
    return math.log(integrate.trapezoid(integrate.trapezoid(density, axis, axis=1), axis))


def _check(estimate, exact: float) -> None:
    error = abs(estimate.log_z - exact)
    assert error <= 3 * estimate.log_z_se + 1e-9, (estimate.log_z, exact, estimate.log_z_se)
    assert error <= 0.01 * abs(exact), (estimate.log_z, exact)


def test_forward_ais_matches_the_gaussian_log_z():
    sigma = 1.5
    score_and_grad, _, exact = _linear(24, sigma)
    estimate = annealed_log_z(score_and_grad, shape=(24,), sigma=sigma, chains=512, steps=200, seed=1)
    assert exact > 10
    _check(estimate, exact)
    assert 0.3 < estimate.acceptance < 0.95


def test_reverse_ais_from_exact_samples_is_an_upper_estimate():
    sigma = 1.5
    score_and_grad, a, exact = _linear(24, sigma)
    generator = torch.Generator().manual_seed(3)
    samples = (sigma**2 * a + sigma * torch.randn(512, 24, generator=generator, dtype=torch.float64)).float()
    upper = annealed_log_z(score_and_grad, shape=(24,), sigma=sigma, steps=200, start=samples, seed=2)
    lower = annealed_log_z(score_and_grad, shape=(24,), sigma=sigma, chains=512, steps=200, seed=2)
    assert upper.direction == "reverse" and lower.direction == "forward"
    _check(upper, exact)
    assert lower.log_z - 3 * lower.log_z_se <= upper.log_z + 3 * upper.log_z_se


@pytest.mark.parametrize("transition", ["mala", "pcn", "langevin"])
def test_ais_matches_quadrature_for_a_one_layer_gcn_in_1d(transition):
    weights, biases, sigma = [[2.0], [-1.5], [1.0], [-0.5]], [1.0, 0.5, -1.0, 2.0], 1.0
    model = _one_layer_gcn(1, weights, biases, sigma)
    exact = _gcn_log_z_by_quadrature(np.array(weights), np.array(biases), sigma)
    # The unadjusted step samples a variance (1 - delta^2 / (4 sigma^2))^-1 too large: small delta.
    delta = None if transition == "mala" else 0.1
    steps = 150 if transition == "mala" else 600
    estimate = annealed_log_z(model, chains=1024, steps=steps, transition=transition, delta=delta, seed=0,
                              backend="torch")  # fmt: skip
    assert exact > 3
    _check(estimate, exact)


def test_ais_matches_quadrature_for_a_one_layer_gcn_in_2d():
    weights = [[1.5, -0.5], [-1.0, 1.2], [0.3, 0.9]]
    biases, sigma = [0.5, 1.0, -0.5], 1.2
    model = _one_layer_gcn(2, weights, biases, sigma)
    exact = _gcn_log_z_by_quadrature(np.array(weights), np.array(biases), sigma)
    estimate = annealed_log_z(model, chains=1024, steps=150, seed=0, backend="torch")
    assert exact > 3
    _check(estimate, exact)


def test_hmc_forward_and_reverse_match_the_gaussian_log_z():
    sigma = 1.5
    score_and_grad, a, exact = _linear(24, sigma)
    lower = annealed_log_z(score_and_grad, shape=(24,), sigma=sigma, chains=512, steps=60, transition="hmc",
                           leapfrog=4, seed=1)  # fmt: skip
    _check(lower, exact)
    assert 0.5 < lower.acceptance < 0.9
    generator = torch.Generator().manual_seed(3)
    samples = (sigma**2 * a + sigma * torch.randn(512, 24, generator=generator, dtype=torch.float64)).float()
    upper = annealed_log_z(score_and_grad, shape=(24,), sigma=sigma, steps=60, transition="hmc", leapfrog=4,
                           start=samples, seed=2)  # fmt: skip
    _check(upper, exact)


def test_mixture_base_density_and_gradient():
    generator = torch.Generator().manual_seed(0)
    centres, std = torch.randn(3, 2, 2, generator=generator, dtype=torch.float64), 0.7
    base = MixtureBase(centres, std)
    x = torch.randn(5, 2, 2, generator=generator, dtype=torch.float64, requires_grad=True)
    components = torch.distributions.MultivariateNormal(centres.flatten(1), std**2 * torch.eye(4, dtype=torch.float64))
    expected = torch.logsumexp(components.log_prob(x.flatten(1)[:, None, :]), dim=1) - math.log(3)
    (expected_grad,) = torch.autograd.grad(expected.sum(), x)
    log_q, grad = base.log_density_and_grad(x.detach())
    torch.testing.assert_close(log_q, expected.detach())
    torch.testing.assert_close(grad, expected_grad)


def test_ais_from_a_mixture_base_matches_the_gaussian_log_z():
    """Components off the target's mean (and narrower than it): the weights must carry the mismatch."""
    sigma = 1.5
    score_and_grad, a, exact = _linear(24, sigma)
    generator = torch.Generator().manual_seed(5)
    centres = (sigma**2 * a).float() + 0.5 * torch.randn(4, 24, generator=generator)
    base = MixtureBase(centres, 0.8 * sigma)
    for transition in ("hmc", "mala"):
        estimate = annealed_log_z(score_and_grad, shape=(24,), sigma=sigma, chains=512, steps=40,
                                  transition=transition, leapfrog=4, base=base, seed=1)  # fmt: skip
        _check(estimate, exact)


def test_resampling_ais_matches_the_gaussian_log_z_and_quadrature():
    """Sequential Monte Carlo (8 populations of 64 / 128): the populations' mean is unbiased for Z."""
    sigma = 1.5
    score_and_grad, _, exact = _linear(24, sigma)
    estimate = annealed_log_z(score_and_grad, shape=(24,), sigma=sigma, chains=512, steps=30, transition="hmc",
                              leapfrog=4, resample=0.5, batch_size=64, seed=1)  # fmt: skip
    _check(estimate, exact)
    weights = [[1.5, -0.5], [-1.0, 1.2], [0.3, 0.9]]
    biases, sigma = [0.5, 1.0, -0.5], 1.2
    model = _one_layer_gcn(2, weights, biases, sigma)
    exact = _gcn_log_z_by_quadrature(np.array(weights), np.array(biases), sigma)
    estimate = annealed_log_z(model, chains=1024, steps=20, transition="hmc", leapfrog=4, resample=0.5,
                              batch_size=128, seed=0, backend="torch")  # fmt: skip
    _check(estimate, exact)
    with pytest.raises(ConfigError, match="resampling AIS needs batch_size dividing chains"):
        annealed_log_z(model, chains=8, steps=2, transition="hmc", resample=0.5)
    with pytest.raises(ConfigError, match="resampling AIS takes transition hmc"):
        annealed_log_z(model, chains=8, steps=2, resample=0.5, batch_size=4)


def test_adaptive_ladder_then_smc_matches_the_gaussian_log_z_and_quadrature():
    """A ladder chosen by conditional ESS, then fixed for an independent SMC run (8 populations)."""
    sigma = 1.5
    score_and_grad, a, exact = _linear(24, sigma)
    betas, ladder = adaptive_betas(score_and_grad, shape=(24,), sigma=sigma, chains=128, cess=0.5, leapfrog=4,
                                   seed=3)  # fmt: skip
    assert float(betas[0]) == 0.0 and float(betas[-1]) == 1.0 and bool((betas[1:] > betas[:-1]).all())
    assert ladder.schedule == "adaptive" and ladder.steps == betas.numel() - 1 and math.isnan(ladder.log_z_se)
    # f has variance sigma^2 ||a||^2 under every p_beta, and a step of d keeps the conditional ESS
    # exp(-d^2 sigma^2 ||a||^2): log(2)^(1/2) / (sigma ||a||) per step at 0.5
    expected = sigma * float(a.norm()) / math.sqrt(math.log(2.0))
    assert abs(ladder.steps - expected) <= 2, (ladder.steps, expected)
    # the ladder run's own figure: six coarse steps with one move each lag the target, so only near
    assert abs(ladder.log_z - exact) <= 0.05 * exact
    finer, _ = adaptive_betas(score_and_grad, shape=(24,), sigma=sigma, chains=128, cess=0.9, leapfrog=4, seed=3)
    assert finer.numel() > betas.numel()
    estimate = annealed_log_z(score_and_grad, shape=(24,), sigma=sigma, chains=512, schedule=betas,
                              transition="hmc", leapfrog=4, resample=0.5, batch_size=64, seed=1)  # fmt: skip
    assert estimate.schedule == "given" and estimate.steps == betas.numel() - 1
    _check(estimate, exact)
    weights = [[1.5, -0.5], [-1.0, 1.2], [0.3, 0.9]]
    biases, sigma = [0.5, 1.0, -0.5], 1.2
    model = _one_layer_gcn(2, weights, biases, sigma)
    exact = _gcn_log_z_by_quadrature(np.array(weights), np.array(biases), sigma)
    betas, _ = adaptive_betas(model, chains=128, cess=0.5, leapfrog=4, seed=0, backend="torch")
    estimate = annealed_log_z(model, chains=1024, schedule=betas, transition="hmc", leapfrog=4, resample=0.5,
                              batch_size=128, seed=0, backend="torch")  # fmt: skip
    _check(estimate, exact)
    images = 100.0 + torch.randn(4, 2, 1, 1, generator=torch.Generator().manual_seed(1))
    report = log_likelihood(model, images, chains=1024, steps=200, transition="hmc", leapfrog=4, schedule="adaptive",
                            cess=0.5, resample=0.5, populations=8, seed=0, backend="torch")  # fmt: skip
    assert report.ladder["chains"] == 128 and report.forward["steps"] == report.ladder["steps"]
    assert abs(report.log_z - exact) <= 3 * report.log_z_se and abs(report.log_z - exact) <= 0.01 * exact
    capped, short = adaptive_betas(model, chains=16, cess=0.999, max_steps=3, leapfrog=4, seed=0, backend="torch")
    assert short.steps == 3 and float(capped[-1]) == 1.0


def test_given_ladders_are_checked():
    model = _one_layer_gcn(1, [[2.0], [-1.0]], [0.5, 0.5], 1.0)
    for betas, message in ((torch.tensor([0.0, 0.7, 0.5, 1.0]), "increase strictly from 0 to 1"),
                           (torch.tensor([0.1, 1.0]), "increase strictly from 0 to 1"),
                           (torch.zeros(2, 2), "1-D tensor")):  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            annealed_log_z(model, chains=4, schedule=betas, backend="torch")
    with pytest.raises(ConfigError, match="ladder from adaptive_betas"):
        annealed_log_z(model, chains=4, schedule="adaptive", backend="torch")
    with pytest.raises(ConfigError, match=r"conditional ESS of the adaptive ladder must be in \(0, 1\)"):
        adaptive_betas(model, chains=4, cess=1.0, backend="torch")
    # a given ladder reproduces the named schedule it was made from
    named = annealed_log_z(model, chains=8, steps=12, seed=2, backend="torch")
    given = annealed_log_z(model, chains=8, schedule=beta_schedule(12, "sigmoid"), seed=2, backend="torch")
    torch.testing.assert_close(named.log_weights, given.log_weights)


def test_chain_mixture_ais_matches_quadrature_for_a_one_layer_gcn_in_2d():
    weights = [[1.5, -0.5], [-1.0, 1.2], [0.3, 0.9]]
    biases, sigma = [0.5, 1.0, -0.5], 1.2
    model = _one_layer_gcn(2, weights, biases, sigma)
    exact = _gcn_log_z_by_quadrature(np.array(weights), np.array(biases), sigma)
    generator = torch.Generator().manual_seed(2)
    start = (3.0 * torch.randn(8, 2, 1, 1, generator=generator)).float()
    samples, acceptance = equilibrate(model, start, moves=30, leapfrog=4, seed=3, backend="torch")
    assert 0.4 < acceptance < 0.95
    base = chain_mixture(model, samples, 8, backend="torch")
    expected_centres = sigma**2 * model.grad_f_autograd(samples)
    torch.testing.assert_close(base.centres, expected_centres)
    for transition in ("hmc", "mala"):
        lower = annealed_log_z(model, chains=1024, steps=40, transition=transition, leapfrog=4, base=base, seed=0,
                               backend="torch")  # fmt: skip
        _check(lower, exact)


def test_pilot_base_log_likelihood_matches_quadrature_for_a_one_layer_gcn_in_2d():
    weights = [[1.5, -0.5], [-1.0, 1.2], [0.3, 0.9]]
    biases, sigma = [0.5, 1.0, -0.5], 1.2
    model = _one_layer_gcn(2, weights, biases, sigma)
    exact = _gcn_log_z_by_quadrature(np.array(weights), np.array(biases), sigma)
    images = 100.0 + torch.randn(4, 2, 1, 1, generator=torch.Generator().manual_seed(1))
    report = log_likelihood(model, images, chains=512, steps=40, pilot_steps=40, transition="hmc", leapfrog=4,
                            base="pilot", reverse=True, seed=0, backend="torch")  # fmt: skip
    assert report.base == "pilot" and report.pilot["direction"] == "forward"
    for log_z, se in ((report.log_z, report.log_z_se), (report.log_z_upper, report.log_z_upper_se)):
        assert abs(log_z - exact) <= 3 * se and abs(log_z - exact) <= 0.01 * exact, (log_z, se, exact)


def test_equilibrate_draws_the_gaussian_target():
    """A GCN with zero weights (f constant) is N(0, sigma^2 I): chains started far away
    must end with its mean and spread."""
    spec = NetworkSpec(1, (ConvLayer(2, 3, 1, 1),), top="sum", image_size=(3, 3))
    model = GenerativeConvNet(spec, sigma=2.0)
    with torch.no_grad():
        model.convs[0].weight.zero_()
    start = torch.full((400, 1, 3, 3), 30.0)
    samples, _ = equilibrate(model, start, moves=40, leapfrog=6, seed=1, backend="torch")
    # 3600 draws of N(0, 4): the mean's standard error is 0.033, the std's 0.024
    assert abs(float(samples.mean())) < 0.15
    assert abs(float(samples.std()) - 2.0) < 0.1


def test_log_likelihood_of_gaussian_model_images():
    """A GCN whose f is 0 (zero weights) is N(0, sigma^2 I): log Z = 0 and log p is the Gaussian's."""
    spec = NetworkSpec(1, (ConvLayer(2, 3, 1, 1),), top="sum", image_size=(5, 5))
    model = GenerativeConvNet(spec, sigma=20.0)
    with torch.no_grad():
        model.convs[0].weight.zero_()
    images = 100.0 + 20.0 * torch.randn(7, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    report = log_likelihood(model, images, chains=8, steps=5, backend="torch")
    centred = images - images.mean()
    expected = float((-centred.pow(2).flatten(1).sum(1) / 800.0).mean() - 12.5 * math.log(2 * math.pi * 400.0))
    assert report.log_z == pytest.approx(0.0, abs=1e-9)
    assert report.nats == pytest.approx(expected, rel=1e-6)
    assert report.bits_per_dim == pytest.approx(-expected / (25 * math.log(2)), rel=1e-6)


def test_batches_do_not_change_the_estimate():
    model = _one_layer_gcn(1, [[2.0], [-1.0]], [0.5, 0.5], 1.0)
    whole = annealed_log_z(model, chains=12, steps=20, seed=4, backend="torch")
    batched = annealed_log_z(model, chains=12, steps=20, seed=4, batch_size=5, backend="torch", adapt=False,
                             delta=whole.final_delta)  # fmt: skip
    fixed = annealed_log_z(model, chains=12, steps=20, seed=4, backend="torch", adapt=False, delta=whole.final_delta)
    torch.testing.assert_close(batched.log_weights, fixed.log_weights)


def test_schedules_and_log_mean_exp():
    for kind in ("sigmoid", "geometric", "linear"):
        betas = beta_schedule(10, kind)
        assert betas.shape == (11,) and betas[0] == 0 and betas[-1] == 1 and bool((betas.diff() > 0).all())
    log_mean, se, ess = log_mean_exp_with_se(torch.log(torch.tensor([1.0, 3.0])))
    assert log_mean == pytest.approx(math.log(2.0))
    assert se == pytest.approx(math.sqrt(2.0) / (math.sqrt(2.0) * 2.0))
    assert ess == pytest.approx(16.0 / 10.0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"chains": 1}, "AIS chains must be an integer >= 2"),
        ({"steps": 0}, "AIS steps must be a positive integer"),
        ({"transition": "slice"}, "AIS transition must be one of mala, pcn, langevin, hmc"),
        ({"transition": "hmc", "leapfrog": 0}, "HMC leapfrog steps must be a positive integer"),
        ({"transition": "pcn", "base": MixtureBase(torch.zeros(2, 1, 1, 1), 1.0)}, "takes transition mala or hmc"),
        ({"chains": 5, "base": MixtureBase(torch.zeros(2, 1, 1, 1), 1.0)}, "must be a multiple of the base's 2"),
        ({"base": MixtureBase(torch.zeros(2, 3), 1.0)}, "mixture centres must be"),
        ({"delta": -1.0}, "AIS delta"),
        ({"schedule": "cosine"}, "AIS schedule must be one of"),
    ],
)
def test_bad_options_name_the_argument(options, message):
    model = _one_layer_gcn(1, [[1.0]], [0.0], 1.0)
    with pytest.raises(ConfigError, match=message):
        annealed_log_z(model, **options)


@pytest.fixture(scope="module")
def gcn_run(tmp_path_factory):
    from genconv.cli import main

    out = tmp_path_factory.mktemp("gcn") / "run"
    args = ["train", "--preset", "faces", "--image-size", "12", "--max-images", "9", "--holdout", "3",
            "--chains", "4", "--steps", "1", "--iterations", "2", "--backend", "torch", "--no-progress",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    return out


def test_eval_log_likelihood_on_a_checkpoint(gcn_run, tmp_path, capsys):
    from genconv.cli import main

    report_path = tmp_path / "ll.json"
    args = ["eval", "--checkpoint", str(gcn_run / "checkpoint.pt"), "--log-likelihood", "--ais-chains", "6",
            "--ais-steps", "10", "--reverse-ais", "--backend", "torch", "--out", str(report_path)]  # fmt: skip
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(report_path.read_text())
    assert printed["reference"] == "held-out" and printed["images"] == 3 and printed["dimension"] == 144
    assert printed["forward"]["chains"] == 6 and printed["reverse"]["direction"] == "reverse"
    assert printed["bits_per_dim"] == pytest.approx(-printed["nats"] / (144 * math.log(2)))
    assert math.isfinite(printed["log_z_upper"]) and "swd_x1e3" not in printed


def test_eval_pilot_flags_need_log_likelihood(gcn_run, capsys):
    from genconv.cli import main

    assert main(["eval", "--checkpoint", str(gcn_run / "checkpoint.pt"), "--ais-base", "pilot"]) == 1
    error = capsys.readouterr().err
    assert "apply with --log-likelihood only" in error and len(error.strip().splitlines()) == 1


def test_eval_log_likelihood_from_the_chains_mixture(gcn_run, capsys):
    from genconv.cli import main

    args = ["eval", "--checkpoint", str(gcn_run / "checkpoint.pt"), "--log-likelihood", "--ais-chains", "8",
            "--ais-steps", "6", "--ais-transition", "hmc", "--ais-leapfrog", "2", "--ais-base", "chains",
            "--ais-equilibrate", "3", "--reverse-ais", "--backend", "torch"]  # fmt: skip
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["base"] == "chains" and printed["forward"]["transition"] == "hmc"
    assert 0.0 <= printed["equilibrate_acceptance"] <= 1.0
    assert math.isfinite(printed["log_z"]) and math.isfinite(printed["log_z_upper"])


def test_eval_log_likelihood_on_an_adaptive_ladder(gcn_run, capsys):
    from genconv.cli import main

    args = ["eval", "--checkpoint", str(gcn_run / "checkpoint.pt"), "--log-likelihood", "--ais-chains", "8",
            "--ais-steps", "5", "--ais-transition", "hmc", "--ais-leapfrog", "2", "--ais-schedule", "adaptive",
            "--ais-cess", "0.9", "--ais-resample", "0.5", "--ais-populations", "2", "--reverse-ais",
            "--backend", "torch"]  # fmt: skip
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["ladder"]["schedule"] == "adaptive" and printed["ladder"]["chains"] == 4
    # the ladder is capped at --ais-steps; both runs take its steps
    steps = printed["ladder"]["steps"]
    assert 1 <= steps <= 5 and printed["forward"]["steps"] == steps == printed["reverse"]["steps"]
    assert printed["forward"]["schedule"] == "given"
    assert math.isfinite(printed["log_z"]) and math.isfinite(printed["log_z_upper"])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--ais-chains", "1"], "argument --ais-chains: expected an integer >= 2"),
        (["--ais-steps", "0"], "argument --ais-steps: expected an integer >= 1"),
        (["--ais-transition", "slice"], "--ais-transition must be mala, hmc, pcn or langevin"),
        (["--ais-base", "data"], "--ais-base must be reference, chains or pilot"),
        (["--ais-base", "pilot", "--ais-transition", "pcn"], "--ais-base pilot takes --ais-transition mala or hmc"),
        (["--ais-leapfrog", "0"], "argument --ais-leapfrog: expected an integer >= 1"),
        (["--ais-resample", "0.5"], "--ais-resample takes --ais-transition hmc"),
        (
            ["--ais-resample", "0.5", "--ais-transition", "hmc", "--ais-chains", "6", "--ais-populations", "4"],
            "--ais-populations must be >= 2 and divide --ais-chains (6), got 4",
        ),
        (["--ais-schedule", "cosine"], "--ais-schedule must be sigmoid, geometric, linear or adaptive"),
        (["--ais-schedule", "adaptive", "--ais-transition", "pcn"], "--ais-schedule adaptive takes --ais-transition"),
        (["--ais-cess", "1"], "argument --ais-cess: expected a finite number > 0 and < 1"),
        (["--ais-cess", "0.8"], "--ais-cess applies with --ais-schedule adaptive only"),
        (["--ais-delta", "-2"], "argument --ais-delta: expected a finite number > 0"),
    ],
)
def test_eval_log_likelihood_bad_flags_get_one_line(gcn_run, flags, message, capsys):
    from genconv.cli import main

    # numbers are refused as they parse (argparse's usage error, exit 2), choices when the command runs (exit 1)
    try:
        status = main(["eval", "--checkpoint", str(gcn_run / "checkpoint.pt"), "--log-likelihood", *flags])
    except SystemExit as exit_:
        status = exit_.code
    assert status == (2 if message.startswith("argument") else 1)
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1
