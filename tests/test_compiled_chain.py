"""sample_langevin(..., compile=...): a compiled chain equals the eager one at the same seed."""

import warnings

import pytest
import torch
from torch import nn

from genconv.bindings import compiled_chain
from genconv.bindings.compiled_chain import COMPILED_CHAINS, block_size, traced_normal
from genconv.bindings.errors import ConfigError
from genconv.bindings.sampler import sample_langevin
from genconv.bindings.update_rules import SGLDStep, TorchEBMStep
from genconv.kernels.reference import philox_normal


class _Quartic(nn.Module):
    """A small non-Gaussian energy with parameters: sum(w * x^4 / 4 - b * x^2 / 2) per chain."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.linspace(0.5, 1.5, width))
        self.b = nn.Parameter(torch.full((width,), 0.7))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.w * x.pow(4) / 4 - self.b * x.pow(2) / 2).sum(dim=1)


ENERGY = _Quartic(3)
OPTIONS = {"temperature": 0.5, "clamp": (-1.5, 1.5), "max_grad_norm": 2.0, "clip_value": 1.2}


def test_traced_normal_is_the_reference_stream() -> None:
    seed, first = 2**40 + 17, 2**33 - 5  # both words of the seed and of the counter in play
    traced = traced_normal(torch.tensor(seed), torch.tensor(first), torch.Size([4, 33]))
    torch.testing.assert_close(traced, philox_normal(seed, first, (4, 33)), atol=2e-6, rtol=1e-5)


def test_block_size_divides_the_chain() -> None:
    assert [block_size(n) for n in (1, 4, 6, 7, 10, 100, 97)] == [1, 4, 3, 1, 5, 5, 1]
    assert block_size(30, numel=64 * 3 * 32 * 32) == 1  # an image batch: one step per compiled call


def test_compiled_chain_equals_eager_with_a_schedule_clipping_and_clamp() -> None:
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(0))
    schedule = [SGLDStep(0.05 / (1 + step), 0.3) for step in range(6)]
    before = len(COMPILED_CHAINS.records)
    eager = sample_langevin(ENERGY, x, steps=6, update=schedule, seed=11, start_step=4, compile=False, **OPTIONS)
    compiled = sample_langevin(ENERGY, x, steps=6, update=schedule, seed=11, start_step=4, compile=True, **OPTIONS)
    assert len(COMPILED_CHAINS.records) == before + 1
    assert compiled.next_step == eager.next_step == 10
    torch.testing.assert_close(compiled.x, eager.x, atol=1e-5, rtol=1e-5)
    assert not compiled.x.requires_grad
    # Another step size, seed and start: the same compiled chain (rules enter as tensors), no new capture.
    eager = sample_langevin(ENERGY, x, steps=6, update=TorchEBMStep(0.02, 0.5), seed=3, compile=False, **OPTIONS)
    compiled = sample_langevin(ENERGY, x, steps=6, update=TorchEBMStep(0.02, 0.5), seed=3, compile=True, **OPTIONS)
    assert len(COMPILED_CHAINS.records) == before + 1
    torch.testing.assert_close(compiled.x, eager.x, atol=1e-5, rtol=1e-5)
    # A parameter updated in place (as in training) is read by the compiled chain.
    with torch.no_grad():
        ENERGY.b.add_(0.5)
    try:
        eager = sample_langevin(ENERGY, x, steps=6, update=TorchEBMStep(0.02, 0.5), seed=3, compile=False, **OPTIONS)
        compiled = sample_langevin(ENERGY, x, steps=6, update=TorchEBMStep(0.02, 0.5), seed=3, compile=True, **OPTIONS)
    finally:
        with torch.no_grad():
            ENERGY.b.sub_(0.5)
    torch.testing.assert_close(compiled.x, eager.x, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("extra", [{"mala": True}, {"diagnostics": True}, {"thin": 2}], ids=["mala", "diag", "thin"])
def test_what_falls_back_to_eager_gives_the_eager_chain(extra: dict) -> None:
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    before = len(COMPILED_CHAINS.records)
    update = SGLDStep(0.01, 0.2)
    eager = sample_langevin(ENERGY, x, steps=4, update=update, seed=5, compile=False, **extra)
    asked = sample_langevin(ENERGY, x, steps=4, update=update, seed=5, compile=True, **extra)
    assert len(COMPILED_CHAINS.records) == before
    assert torch.equal(asked.x, eager.x)


def _uncompiled(function, **_options):
    return function


def test_auto_compiles_after_enough_eager_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    chains = compiled_chain.CompiledChains()
    monkeypatch.setattr(compiled_chain, "COMPILED_CHAINS", chains)
    monkeypatch.setattr("genconv.bindings.sampler.COMPILED_CHAINS", chains)
    monkeypatch.setattr(compiled_chain, "AUTO_STEPS", 10)
    monkeypatch.setattr(compiled_chain.torch, "compile", _uncompiled)
    energy = _Quartic(2)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(2))
    for call in range(3):
        out = sample_langevin(energy, x, steps=6, update=SGLDStep(0.01, 0.1), seed=call)
        eager = sample_langevin(energy, x, steps=6, update=SGLDStep(0.01, 0.1), seed=call, compile=False)
        torch.testing.assert_close(out.x, eager.x, atol=1e-5, rtol=1e-5)
        assert len(chains.records) == (1 if call == 2 else 0)  # 12 eager steps seen before the third call
    monkeypatch.setenv(compiled_chain.COMPILE_ENV, "0")
    assert not chains.wants(("another",), energy, 100, True)


def _failing_compile(function, **_options):
    def fails(*args):
        raise RuntimeError("cannot trace this energy")

    return fails


def test_a_failed_capture_warns_once_and_runs_eagerly(monkeypatch: pytest.MonkeyPatch) -> None:
    chains = compiled_chain.CompiledChains()
    monkeypatch.setattr("genconv.bindings.sampler.COMPILED_CHAINS", chains)
    monkeypatch.setattr(compiled_chain.torch, "compile", _failing_compile)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(3))
    with pytest.warns(RuntimeWarning, match="could not capture"):
        first = sample_langevin(ENERGY, x, steps=3, update=SGLDStep(0.01, 0.1), seed=1, compile=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = sample_langevin(ENERGY, x, steps=3, update=SGLDStep(0.01, 0.1), seed=1, compile=True)
    eager = sample_langevin(ENERGY, x, steps=3, update=SGLDStep(0.01, 0.1), seed=1, compile=False)
    assert torch.equal(first.x, eager.x) and torch.equal(second.x, eager.x)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_compile_takes_auto_true_or_false(value: object) -> None:
    with pytest.raises(ConfigError, match="compile must be 'auto', True or False"):
        sample_langevin(ENERGY, torch.zeros(2, 3), steps=1, update=SGLDStep(0.1, 0.1), compile=value)


def test_clip_value_clamps_each_gradient_element() -> None:
    x = torch.full((2, 3), 1.4)
    out = sample_langevin(ENERGY, x, steps=1, update=SGLDStep(0.1, 0.0), clip_value=0.05, compile=False)
    # dE/dx = w x^3 - b x > 0.05 everywhere here, so every element moves by exactly step_size * 0.05.
    torch.testing.assert_close(out.x, x - 0.1 * 0.05)
    with pytest.raises(ConfigError, match="clip_value must be a finite number > 0"):
        sample_langevin(ENERGY, x, steps=1, update=SGLDStep(0.1, 0.0), clip_value=-1.0)


def test_a_conv_energy_runs_channels_last_and_sees_weight_updates() -> None:
    """On the CPU a compiled block reads images and conv weights channels-last (copies made in the
    graph): the chain equals the eager one, the caller's layout comes back, and an in-place update
    of the weights (training) is seen by the next call."""
    torch.manual_seed(0)
    energy = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.SiLU(),
        nn.Conv2d(8, 4, 3),
        nn.Flatten(),
        nn.LazyLinear(1),
        nn.Flatten(0),
    )
    x = torch.rand(5, 3, 13, 13) * 2 - 1
    energy(x)  # materialise the lazy layer
    update = SGLDStep(step_size=0.01, noise_std=0.05)
    for _ in range(2):
        eager = sample_langevin(energy, x, steps=3, update=update, seed=4, compile=False).x
        compiled = sample_langevin(energy, x, steps=3, update=update, seed=4, compile=True).x
        torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)
        assert compiled.is_contiguous()
        assert energy[0].weight.is_contiguous()  # the module's own weights keep their layout
        with torch.no_grad():
            energy[0].weight.mul_(1.5)
