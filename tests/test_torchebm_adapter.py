"""TorchEBM: genconv's sampler reproduces LangevinDynamics, and TorchEBMSampler drops into its losses."""

import pytest
import torch

torchebm = pytest.importorskip("torchebm")

from torchebm.core import BaseSampler, DoubleWellModel  # noqa: E402
from torchebm.losses import ContrastiveDivergence, PersistentContrastiveDivergence  # noqa: E402
from torchebm.samplers import LangevinDynamics  # noqa: E402

import genconv  # noqa: E402
from genconv import TorchEBMStep, sample_langevin  # noqa: E402
from genconv.bindings.errors import ConfigError  # noqa: E402

STEP, NOISE = 0.01, 0.8


pytestmark = pytest.mark.usefixtures("one_intra_op_thread")


class MLPEnergy(torchebm.core.BaseModel):
    """A small trainable energy on R^2, as TorchEBM users write them."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.SiLU(), torch.nn.Linear(16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1) + 0.5 * x.pow(2).sum(-1)


def _start(n: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("clamp", [None, (-1.0, 1.2)], ids=["free", "clamped"])
def test_sample_langevin_reproduces_langevin_dynamics(clamp) -> None:
    """The same generator draws: TorchEBM's update x - eta dU + noise_scale sqrt(2 eta) z, to float rounding."""
    model, x = DoubleWellModel(barrier_height=2.0), _start()
    theirs = LangevinDynamics(model, step_size=STEP, noise_scale=NOISE, clamp=clamp).sample(
        x=x, n_steps=20, generator=torch.Generator().manual_seed(1)
    )
    generator = torch.Generator().manual_seed(1)
    ours = sample_langevin(
        model, x, steps=20, update=TorchEBMStep(STEP, NOISE), clamp=clamp,
        noise=lambda step: torch.randn(x.shape, generator=generator),
    )  # fmt: skip
    torch.testing.assert_close(ours.x, theirs, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(ours.x, x)


def test_the_adapter_matches_trajectory_and_diagnostics() -> None:
    model, x = MLPEnergy(), _start(32, seed=2)
    kwargs = {"x": x, "n_steps": 12, "thin": 4, "return_trajectory": True, "return_diagnostics": True}
    theirs, their_stats = LangevinDynamics(model, step_size=STEP, noise_scale=NOISE).sample(
        **kwargs, generator=torch.Generator().manual_seed(3)
    )
    sampler = genconv.TorchEBMSampler(model, step_size=STEP, noise_scale=NOISE, noise_source="torch")
    ours, our_stats = sampler.sample(**kwargs, generator=torch.Generator().manual_seed(3))
    assert isinstance(sampler, BaseSampler) and ours.shape == theirs.shape == (32, 3, 2)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    assert set(our_stats) == set(their_stats) == {"mean", "var", "energy"}
    for key in their_stats:
        torch.testing.assert_close(our_stats[key], their_stats[key], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("loss_type", [ContrastiveDivergence, PersistentContrastiveDivergence], ids=["cd", "pcd"])
def test_torchebm_losses_take_the_adapter_in_place_of_langevin_dynamics(loss_type) -> None:
    """Same generator, same loss, same negatives, same parameter gradients."""
    data = _start(16, seed=4)
    results = []
    for make_sampler in (
        lambda model: LangevinDynamics(model, step_size=STEP, noise_scale=NOISE),
        lambda model: genconv.TorchEBMSampler(model, step_size=STEP, noise_scale=NOISE, noise_source="torch"),
    ):
        model = MLPEnergy()
        options = {"buffer_size": 32, "init_steps": 3} if loss_type is PersistentContrastiveDivergence else {}
        loss_fn = loss_type(model=model, sampler=make_sampler(model), k_steps=5, **options)
        loss, negatives = loss_fn(data, generator=torch.Generator().manual_seed(5))
        loss.backward()
        results.append((loss.detach(), negatives, [p.grad.clone() for p in model.parameters()]))
    (their_loss, their_negatives, their_grads), (our_loss, our_negatives, our_grads) = results
    torch.testing.assert_close(our_loss, their_loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(our_negatives, their_negatives, rtol=1e-5, atol=1e-5)
    for ours, theirs in zip(our_grads, their_grads, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_counter_based_noise_is_seeded_per_call_and_restored_from_state_dict() -> None:
    model, x = DoubleWellModel(), _start(8)
    first, second = (genconv.TorchEBMSampler(model, step_size=STEP, seed=7) for _ in range(2))
    a1, a2 = first.sample(x=x, n_steps=5), first.sample(x=x, n_steps=5)
    assert torch.equal(a1, second.sample(x=x, n_steps=5)) and not torch.equal(a1, a2)
    restored = genconv.TorchEBMSampler(model, step_size=STEP, seed=7)
    restored.load_state_dict(first.state_dict())
    assert restored.calls == 2 and torch.equal(restored.sample(x=x, n_steps=5), first.sample(x=x, n_steps=5))
    unseeded = genconv.TorchEBMSampler(model, step_size=STEP)
    same = [unseeded.sample(x=x, n_steps=5, generator=torch.Generator().manual_seed(0)) for _ in range(2)]
    assert torch.equal(same[0], same[1])


def test_mala_mode_reports_acceptance() -> None:
    sampler = genconv.TorchEBMSampler(DoubleWellModel(), step_size=0.05, mala=True, seed=1)
    samples, stats = sampler.sample(dim=2, n_samples=200, n_steps=9, thin=3, return_diagnostics=True,
                                    generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert samples.shape == (200, 2) and stats["acceptance_rate"].shape == (3,)
    assert sampler.last_acceptance_rate.shape == (200,)
    assert 0.0 < float(stats["acceptance_rate"].min()) and float(stats["acceptance_rate"].max()) < 1.0


def test_bad_adapter_arguments_raise_config_errors() -> None:
    from torchebm.core import ConstantScheduler

    model = DoubleWellModel()
    with pytest.raises(ConfigError, match=r"step_size must be a float"):
        genconv.TorchEBMSampler(model, step_size=ConstantScheduler(0.1))
    with pytest.raises(ConfigError, match=r"noise_source must be one of philox, torch"):
        genconv.TorchEBMSampler(model, noise_source="numpy")
    with pytest.raises(ConfigError, match=r"clamp must be \(low, high\)"):
        genconv.TorchEBMSampler(model, clamp=(1.0, 0.0))
    with pytest.raises(ConfigError, match=r"TorchEBMStep.step_size must be a finite number > 0"):
        genconv.TorchEBMSampler(model, step_size=-0.1)
    with pytest.raises(ConfigError, match=r"thin must be an integer >= 1"):
        genconv.TorchEBMSampler(model).sample(dim=2, thin=0)
