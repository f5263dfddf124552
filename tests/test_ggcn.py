"""GGCN: hidden-space Langevin (spec oracle 11), the generator, ablations, kernels vs reference."""

from dataclasses import replace

import pytest
import torch
from torch import nn

from genconv.bindings.errors import ConfigError
from genconv.engine.checkpoint import load_checkpoint
from genconv.engine.config import TrainConfig
from genconv.engine.generate import sample_checkpoint
from genconv.engine.generator import GeneratorSpec, UpsamplingGenerator
from genconv.engine.hidden import hidden_energy_scale, hidden_grad, hidden_langevin
from genconv.engine.model import GenerativeConvNet
from genconv.engine.presets import network_for
from genconv.engine.trainer import CHECKPOINT_NAME, Trainer

from kernel_support import COMPILED, DEVICE, assert_close
from test_sampler_laws import _linear_model


class LinearGenerator(nn.Module):
    """g(z) = A z + c reshaped to an image."""

    def __init__(self, matrix: torch.Tensor, offset: torch.Tensor, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.matrix, self.offset, self.shape = matrix, offset, shape

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z @ self.matrix.T + self.offset).view(z.shape[0], *self.shape)


def test_hidden_langevin_samples_the_tilted_pushforward() -> None:
    """Oracle 11: with g(z) = A z + c and f(x) = <b, x>, z ~ N(A^T b, I) and g(z) ~ N(A A^T b + c, A A^T).

    ULA with step s keeps the mean and inflates the variance to 1 / (1 - s^2 / 4). 4000 chains,
    200 kept states 5 steps apart: standard errors about 0.006 for the means and 0.3 % for variances.
    """
    generator = torch.Generator().manual_seed(0)
    matrix = 0.5 * torch.randn(4, 3, generator=generator)
    offset = torch.randn(4, generator=generator)
    weights = 0.4 * torch.randn(1, 2, 2, generator=generator, dtype=torch.float64)
    model = _linear_model(weights, sigma=1.0)
    g = LinearGenerator(matrix, offset, (1, 2, 2))
    step = 0.3
    kept = []
    state = torch.zeros(4000, 3)
    warm = hidden_langevin(model, g, state, steps=300, step_size=step, seed=1, backend="torch")
    state, counter = warm.x, warm.next_step
    for _ in range(200):
        result = hidden_langevin(model, g, state, steps=5, step_size=step, seed=1, start_step=counter, backend="torch")
        state, counter = result.x, result.next_step
        kept.append(state)
    z = torch.cat(kept).double()
    b = weights.flatten().double()
    inflation = 1 / (1 - step**2 / 4)
    torch.testing.assert_close(z.mean(0), matrix.double().T @ b, atol=0.03, rtol=0)
    torch.testing.assert_close(z.var(0), torch.full((3,), inflation, dtype=torch.float64), rtol=0.02, atol=0)
    images = g(z.float()).flatten(1).double()
    torch.testing.assert_close(images.mean(0), matrix.double() @ matrix.double().T @ b + offset.double(), atol=0.03,
                               rtol=0)  # fmt: skip
    covariance = torch.cov(images.T)
    expected = inflation * matrix.double() @ matrix.double().T
    torch.testing.assert_close(covariance, expected, atol=0.03, rtol=0)


def test_hidden_langevin_on_the_kernels_follows_the_reference() -> None:
    g = UpsamplingGenerator(GeneratorSpec(6, 1, (16, 16), width=32), init_seed=0).to(DEVICE)
    model = GenerativeConvNet(network_for("faces", 1, 16), sigma=1.0, init_seed=0).to(DEVICE)
    z = torch.randn(3, 6, generator=torch.Generator().manual_seed(2)).to(DEVICE)
    fused = hidden_langevin(model, g, z, steps=3, step_size=0.2, seed=4, backend="triton").x
    expected = hidden_langevin(model, g, z, steps=3, step_size=0.2, seed=4, backend="torch").x
    assert_close(fused, expected, torch.float32, "z")


def test_generator_shapes_ranges_and_errors() -> None:
    spec = GeneratorSpec(8, 3, (25, 25), width=64, output_low=(-10.0, 0.0, -1.0), output_high=(5.0, 1.0, 1.0))
    g = UpsamplingGenerator(spec, init_seed=0)
    assert spec.blocks == 3
    with torch.no_grad():
        images = g(20 * torch.randn(5, 8))
    assert images.shape == (5, 3, 25, 25)
    assert float(images[:, 0].min()) >= -10 and float(images[:, 0].max()) <= 5
    assert float(images[:, 1].min()) >= 0 and float(images[:, 1].max()) <= 1
    assert torch.equal(UpsamplingGenerator(spec, init_seed=0)(torch.ones(1, 8)), g(torch.ones(1, 8)))
    assert GeneratorSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ConfigError, match=r"z must have shape \[B, 8\]"):
        g(torch.zeros(2, 7))
    with pytest.raises(ConfigError, match="at least 8 px"):
        GeneratorSpec(8, 1, (6, 6))
    batch_norm = UpsamplingGenerator(replace(spec, norm="batch"))
    assert any(isinstance(module, nn.BatchNorm2d) for module in batch_norm.modules())


TINY = TrainConfig(model="ggcn", preset="faces", data="faces:lfw", image_size=16, max_images=8, num_chains=4,
                   iterations=3, langevin_steps=2, hidden_steps=2, latent_dim=8, generator_width=32, image_every=100,
                   checkpoint_every=100, backend="torch")  # fmt: skip


def _generator_state(trainer: Trainer) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in trainer.learner.generator.parameters()])


def test_regime_defaults_and_a_run(tmp_path) -> None:
    trainer = Trainer(replace(TINY, langevin_steps=None, hidden_steps=None, latent_dim=None), tmp_path, progress=False)
    config = trainer.config
    assert (config.pixel_range, config.sigma, config.delta, config.langevin_steps) == ("unit", 0.016, 0.016, 10)
    assert (config.hidden_steps, config.hidden_step_size, config.latent_dim, config.lambda_w) == (0, 0.1, 100, 0.0)
    assert (config.lr, config.generator_lr, config.generator_norm, config.warmup) == (5e-4, 1e-3, "batch", 50)
    assert (config.energy_scale, config.hidden_gradient, config.top_init) == ("inverse-variance", "relative", "zero")
    metrics = trainer.train_iteration()
    assert {"f_data", "f_syn", "transport", "amortization", "hidden_move"} <= set(metrics)
    assert float(trainer.observed.min()) >= -1 and float(trainer.observed.max()) <= 1


def test_the_warm_up_raises_fs_learning_rate_linearly(tmp_path) -> None:
    trainer = Trainer(replace(TINY, warmup=4, iterations=6), tmp_path, progress=False)
    rates = []
    for _ in range(6):
        trainer.train_iteration()
        rates.append(trainer.learner.energy.optimizer.param_groups[0]["lr"])
    peak = trainer.config.lr
    assert rates == pytest.approx([peak / 4, peak / 2, 3 * peak / 4, peak, peak, peak])
    assert TrainConfig(preset="faces").resolved().warmup == 0  # gcn and wgcn: no warm-up unless asked


def test_the_spec_regime_is_reachable_by_options(tmp_path) -> None:
    spec_regime = replace(TINY, energy_scale="none", delta=0.002, lr=7e-3, warmup=0, generator_norm="none",
                          generator_lr=1e-4, lambda_w=1.0)  # fmt: skip
    trainer = Trainer(spec_regime, tmp_path, progress=False)
    assert trainer.model.scale == 1.0 and trainer.model.spec.init == "normal"
    assert float(trainer.model.fc.weight.detach().std()) == pytest.approx(0.01, rel=0.1)
    assert not any(isinstance(module, nn.BatchNorm2d) for module in trainer.learner.generator.modules())
    assert {"penalty", "penalty_weight"} <= set(trainer.train_iteration())


def test_the_energy_scale_starts_at_zero_and_multiplies_the_network(tmp_path) -> None:
    """f = h / sigma^2: zero at the start (top at zero), then h's value, gradient and affine form times 1 / sigma^2."""
    trainer = Trainer(TINY, tmp_path, progress=False)
    model, x = trainer.model, trainer.observed
    assert model.scale == pytest.approx(1 / 0.016**2) and model.spec.init == "he"
    assert torch.equal(model.f(x), torch.zeros(x.shape[0]))
    assert torch.equal(model.grad_f(x, "torch"), torch.zeros_like(x))
    conv = model.convs[1].weight
    he_std = (2 / (1.04 * conv[0].numel())) ** 0.5  # He initialisation for the leaky ReLU 0.2
    assert float(conv.detach().std()) == pytest.approx(he_std, rel=0.1)
    with torch.no_grad():
        model.fc.weight.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(1))
        model.fc.bias.fill_(0.3)
    h = GenerativeConvNet(replace(model.spec, scale=1.0), sigma=model.sigma)
    h.load_state_dict(model.state_dict())
    scale = 1 / 0.016**2
    torch.testing.assert_close(model.f(x), scale * h.f(x), rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(model.grad_f(x, "torch"), scale * h.grad_f_autograd(x), rtol=1e-4, atol=1e-2)
    torch.testing.assert_close(model.bottom_up(x, "torch").score, model.f(x), rtol=1e-5, atol=1e-3)
    alpha, coefficients = model.decompose(x)
    torch.testing.assert_close(alpha + (coefficients * x).flatten(1).sum(dim=1), model.f(x), rtol=1e-4, atol=1e-1)


def test_the_top_fitted_by_least_squares_puts_f_at_its_working_scale(tmp_path) -> None:
    trainer = Trainer(replace(TINY, top_init="least-squares"), tmp_path, progress=False)
    x = trainer.observed
    target = x.pow(2).flatten(1).sum(dim=1) / (2 * 0.016**2)
    torch.testing.assert_close(trainer.model.f(x), target, rtol=0.05, atol=0)
    with pytest.raises(ConfigError, match="fully connected top"):
        GenerativeConvNet(network_for("texture", 1, 32)).fit_top(torch.zeros(2, 1, 32, 32))


def test_the_refinement_can_be_kept_within_the_pixel_range(tmp_path) -> None:
    config = replace(TINY, delta=0.05, iterations=1)
    free = Trainer(config, tmp_path / "free", progress=False)
    free.train_iteration()
    assert float(free.learner.refined.abs().max()) > 1  # steps of 0.05 from g's output leave [-1, 1]
    clamped = Trainer(replace(config, refine_clamp="pixel-range"), tmp_path / "clamped", progress=False)
    clamped.fit()
    assert float(clamped.learner.refined.abs().max()) <= 1
    samples = sample_checkpoint(tmp_path / "clamped" / CHECKPOINT_NAME, num=3, steps=5, backend="torch")
    assert float(samples.x.abs().max()) <= 1


def test_relative_hidden_gradient_is_the_networks_own(tmp_path) -> None:
    trainer = Trainer(TINY, tmp_path, progress=False)
    model, generator = trainer.model, trainer.learner.generator
    with torch.no_grad():
        model.fc.weight.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(1))
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(2))
    absolute = hidden_grad(model, generator, z, "torch")
    relative = hidden_grad(model, generator, z, "torch", energy_scale=hidden_energy_scale(model, "relative"))
    torch.testing.assert_close(relative * model.scale, absolute, rtol=1e-4, atol=1e-3)
    assert hidden_energy_scale(model, "absolute") == 1.0


def test_without_amortization_the_generator_stays_put(tmp_path) -> None:
    frozen = Trainer(replace(TINY, amortize=False), tmp_path / "frozen", progress=False)
    before = _generator_state(frozen)
    frozen.fit()
    assert torch.equal(_generator_state(frozen), before)
    taught = Trainer(TINY, tmp_path / "taught", progress=False)
    taught.fit()
    assert not torch.equal(_generator_state(taught), before)


def test_switching_off_the_samplers_leaves_the_generator_output(tmp_path) -> None:
    trainer = Trainer(replace(TINY, hidden_steps=0, langevin_steps=0), tmp_path, progress=False)
    with torch.no_grad():
        expected = trainer.learner.generator(trainer.learner.latent(1))
    metrics = trainer.train_iteration()
    assert torch.equal(trainer.learner.refined, expected)
    assert metrics["hidden_move"] == 0.0 and "transport" not in metrics and "penalty" not in metrics


def test_hidden_steps_move_the_latent_codes(tmp_path) -> None:
    metrics = Trainer(TINY, tmp_path, progress=False).train_iteration()
    assert metrics["hidden_move"] > 0


def test_resume_continues_exactly(tmp_path) -> None:
    Trainer(TINY, tmp_path / "whole", progress=False).fit()
    Trainer(replace(TINY, iterations=1), tmp_path / "split", progress=False).fit()
    Trainer(TINY, tmp_path / "split", resume=True, progress=False).fit()
    whole, split = (
        load_checkpoint(tmp_path / "whole" / CHECKPOINT_NAME),
        load_checkpoint(tmp_path / "split" / CHECKPOINT_NAME),
    )
    for key in ("model", "generator"):
        for name, tensor in whole[key].items():
            assert torch.equal(tensor, split[key][name]), (key, name)


def test_kernels_and_reference_train_the_same_ggcn(tmp_path) -> None:
    # Without batch normalisation: the biases before a BatchNorm have a zero gradient up to rounding, and
    # Adam turns that rounding into steps of +-lr, which no two backends share.
    config = replace(TINY, iterations=2, device=str(DEVICE), generator_norm="none")
    reference_run = Trainer(config, tmp_path / "torch", progress=False)
    fused_run = Trainer(replace(config, backend="triton"), tmp_path / "triton", progress=False)
    for _ in range(2):
        expected, fused = reference_run.train_iteration(), fused_run.train_iteration()
        for key in ("f_data", "f_syn", "amortization", "hidden_move"):
            assert fused[key] == pytest.approx(expected[key], rel=2e-3, abs=1e-6), key
    fused_generator, reference_generator = _generator_state(fused_run), _generator_state(reference_run)
    if COMPILED:
        assert_close(fused_generator, reference_generator, torch.float32, "generator")
    else:  # the two draw the same normals to 2e-6 (the cosine's last bits); two Adam steps carry that
        # into the weights at up to a few 1e-5 relative
        torch.testing.assert_close(fused_generator, reference_generator, rtol=1e-4, atol=1e-6)
