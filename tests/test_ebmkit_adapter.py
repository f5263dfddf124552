"""genconv.EbmkitLangevin / EbmkitMALA stand in for ebmkit's LangevinDynamics and MALA."""

import inspect

import pytest
import torch

ebm = pytest.importorskip("ebm")

import genconv  # noqa: E402
from genconv.bindings.errors import ConfigError  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_intra_op_thread")


def gaussian(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x.flatten(1).pow(2).sum(1)


class MLPEnergy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.SiLU(), torch.nn.Linear(16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1) + 0.5 * x.pow(2).sum(-1)


def _signature(function) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


@pytest.mark.parametrize("ours,theirs", [("EbmkitLangevin", "LangevinDynamics"), ("EbmkitMALA", "MALA")])
def test_constructors_and_methods_are_ebmkits(ours: str, theirs: str) -> None:
    mine, original = getattr(genconv, ours), getattr(ebm, theirs)
    assert issubclass(mine, original)
    for name in ("__init__", "sample", "step"):
        assert _signature(getattr(mine, name)) == _signature(getattr(original, name)), name
    sampler = mine(step_size=0.05, steps=7)
    assert (sampler.step_size, sampler.steps, sampler.last_accept_rate) == (0.05, 7, None)


def test_noise_free_chains_equal_ebmkits_with_clipping_and_clamp() -> None:
    """noise_scale 0 leaves the drift alone: x - eps clamp(dE/dx, +-c), clamped, step after step."""
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0)) * 2
    options = {"step_size": 0.1, "steps": 9, "noise_scale": 0.0, "grad_clip": 0.3, "clamp": (-1.5, 1.5)}
    energy = MLPEnergy()
    expected = ebm.LangevinDynamics(**options).sample(energy, x)
    torch.testing.assert_close(genconv.EbmkitLangevin(**options).sample(energy, x), expected, atol=1e-5, rtol=1e-5)
    assert all(p.requires_grad for p in energy.parameters())  # unfrozen again afterwards


def test_trajectory_has_the_initial_states_first() -> None:
    x = torch.randn(5, 3)
    sampler = genconv.EbmkitLangevin(step_size=0.01, steps=4)
    path = sampler.sample(gaussian, x, return_trajectory=True)
    assert path.shape == (5, 5, 3) and torch.equal(path[0], x)
    assert sampler.sample(gaussian, x, steps=2, return_trajectory=True).shape == (3, 5, 3)
    assert sampler.step(gaussian, x).shape == x.shape


@pytest.mark.parametrize("name", ["EbmkitLangevin", "EbmkitMALA"])
def test_the_chains_sample_a_standard_gaussian(name: str) -> None:
    """exp(-||x||^2/2) from far away: mean 0 and variance 1 within what 4000 draws allow."""
    torch.manual_seed(1)
    sampler = getattr(genconv, name)(step_size=0.05, steps=300)
    samples = sampler.sample(gaussian, torch.full((2000, 2), 3.0))
    assert samples.mean().abs() < 0.1  # std of the mean ~0.03 (correlated coordinates aside)
    assert abs(samples.var().item() - 1.0) < 0.12  # ULA's bias at eps 0.05 is ~1.3%
    if name == "EbmkitMALA":
        assert 0.8 < sampler.last_accept_rate <= 1.0


def test_a_seed_repeats_a_run_and_torch_manual_seed_does_too() -> None:
    x = torch.randn(8, 2)
    first = genconv.EbmkitLangevin(steps=5).configure(seed=3).sample(gaussian, x)
    assert torch.equal(genconv.EbmkitLangevin(steps=5).configure(seed=3).sample(gaussian, x), first)
    torch.manual_seed(4)
    again = genconv.EbmkitMALA(steps=5).sample(gaussian, x)
    torch.manual_seed(4)
    assert torch.equal(genconv.EbmkitMALA(steps=5).sample(gaussian, x), again)
    with pytest.raises(ConfigError, match="compile must be 'auto', True or False"):
        genconv.EbmkitLangevin().configure(compile="on")


def test_ebmkits_losses_and_parallel_tempering_take_them() -> None:
    torch.manual_seed(2)
    energy = MLPEnergy()
    data = torch.randn(32, 2) * 0.5 + 1.0
    loss = ebm.ContrastiveDivergence(sampler=genconv.EbmkitLangevin(step_size=0.01, steps=10))
    out = loss(energy, data)
    value = out.loss if hasattr(out, "loss") else out
    value.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in energy.parameters())
    tempering = ebm.ParallelTempering(genconv.EbmkitMALA(step_size=0.05), temperatures=[1.0, 2.0, 4.0], steps=5)
    assert tempering.sample(gaussian, torch.randn(6, 2)).shape == (6, 2)
