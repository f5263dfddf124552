"""The Langevin sampler's API: update rule, streams, continuation, batching, diagnostics, errors."""

import pytest
import torch

from genconv.bindings.errors import ConfigError
from genconv.engine.langevin import init_chains, langevin, standard_normal
from genconv.kernels.reference import philox_normal

from support import ARCHITECTURES, build, random_input


@pytest.fixture
def model():
    return build(ARCHITECTURES[2], in_channels=1, dtype=torch.float32)


def test_step_follows_the_gcn_convention(model) -> None:
    """x' = x - (delta^2 / (2 sigma^2)) (x - sigma^2 df/dx) + delta z, with z the given noise."""
    x = random_input(model, batch=2)
    noise = torch.randn(1, *x.shape, generator=torch.Generator().manual_seed(8))
    delta, sigma = 0.3, 1.7
    out = langevin(model, x, steps=1, delta=delta, sigma=sigma, noise=noise, backend="torch").x
    recon = sigma**2 * model.grad_f_autograd(x)
    expected = x - (delta**2 / (2 * sigma**2)) * (x - recon) + delta * noise[0]
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_counter_noise_is_the_documented_stream(model, backend: str) -> None:
    """Step t draws element e at counter (start_step + t) * numel + e, from the backend's own generator."""
    x = random_input(model, batch=2)
    steps, delta = 3, 0.2
    numel = x.numel()
    noise = torch.stack([standard_normal(5, tuple(x.shape), "cpu", backend, (2 + t) * numel) for t in range(steps)])
    by_seed = langevin(model, x, steps=steps, delta=delta, seed=5, start_step=2, backend=backend).x
    by_tensor = langevin(model, x, steps=steps, delta=delta, noise=noise, backend=backend).x
    assert torch.equal(by_seed, by_tensor)
    reference_noise = torch.stack([philox_normal(5, (2 + t) * numel, tuple(x.shape)) for t in range(steps)])
    torch.testing.assert_close(noise, reference_noise, rtol=1e-6, atol=1e-6)


def test_same_seed_same_chain_and_different_seed_different_chain(model) -> None:
    x = random_input(model)
    first = langevin(model, x, steps=4, delta=0.3, seed=1, backend="torch")
    again = langevin(model, x, steps=4, delta=0.3, seed=1, backend="torch")
    other = langevin(model, x, steps=4, delta=0.3, seed=2, backend="torch")
    assert torch.equal(first.x, again.x)
    assert not torch.allclose(first.x, other.x)
    assert first.seed == 1 and first.next_step == 4


def test_generator_fixes_the_seed(model) -> None:
    x = random_input(model)
    one = langevin(model, x, steps=2, delta=0.3, generator=torch.Generator().manual_seed(3), backend="torch")
    two = langevin(model, x, steps=2, delta=0.3, generator=torch.Generator().manual_seed(3), backend="torch")
    assert one.seed == two.seed and torch.equal(one.x, two.x)


def test_a_run_continues_exactly_from_next_step(model) -> None:
    x = random_input(model)
    whole = langevin(model, x, steps=7, delta=0.3, seed=9, backend="torch")
    part = langevin(model, x, steps=3, delta=0.3, seed=9, backend="torch")
    rest = langevin(model, part.x, steps=4, delta=0.3, seed=9, start_step=part.next_step, backend="torch")
    assert torch.equal(whole.x, rest.x)


def test_batches_of_one_stream_equal_the_whole_batch(model) -> None:
    x = random_input(model, batch=5)
    chain = x[0].numel()
    whole = langevin(model, x, steps=3, delta=0.3, seed=4, backend="torch").x
    head = langevin(
        model, x[:2], steps=3, delta=0.3, seed=4, stream_offset=0, stream_stride=x.numel(), backend="torch"
    ).x
    tail = langevin(
        model, x[2:], steps=3, delta=0.3, seed=4, stream_offset=2 * chain, stream_stride=x.numel(), backend="torch"
    ).x
    # The same noise; batched convolutions may round differently with the batch size.
    torch.testing.assert_close(torch.cat([head, tail]), whole, rtol=1e-5, atol=1e-5)


def test_diagnostics_match_direct_computation_and_do_not_change_the_chain(model) -> None:
    x = random_input(model)
    plain = langevin(model, x, steps=3, delta=0.3, seed=2, backend="torch")
    seen = []
    traced = langevin(
        model,
        x,
        steps=3,
        delta=0.3,
        seed=2,
        diagnostics=True,
        backend="torch",
        callback=lambda step, state: seen.append(state.clone()),
    )
    assert plain.diagnostics is None
    assert torch.equal(plain.x, traced.x)
    diagnostics = traced.diagnostics
    assert diagnostics.energy.shape == (3, x.shape[0])
    states = [x] + seen[:-1]
    for step, state in enumerate(states):
        torch.testing.assert_close(diagnostics.energy[step], model.energy(state).detach(), rtol=1e-5, atol=1e-3)
        gradient = model.grad_f_autograd(state)
        torch.testing.assert_close(diagnostics.grad_norm[step], gradient.flatten(1).norm(dim=1), rtol=1e-5, atol=1e-6)
        recon = (state - model.sigma**2 * gradient).abs().flatten(1).mean(dim=1)
        torch.testing.assert_close(diagnostics.recon_error[step], recon, rtol=1e-5, atol=1e-6)


def test_clamp_bounds_the_states(model) -> None:
    x = random_input(model) * 10
    out = langevin(model, x, steps=2, delta=0.5, seed=0, clamp=(-1.0, 2.0), backend="torch").x
    assert float(out.min()) >= -1.0 and float(out.max()) <= 2.0
    assert float(out.min()) == -1.0 and float(out.max()) == 2.0


def test_zero_steps_return_the_input(model) -> None:
    x = random_input(model)
    assert torch.equal(langevin(model, x, steps=0, delta=0.3, seed=0).x, x)


@pytest.mark.parametrize(
    "arguments,message",
    [
        ({"delta": 0.0}, "delta"),
        ({"delta": -0.1}, "delta"),
        ({"delta": float("nan")}, "delta"),
        ({"sigma": 0.0}, "sigma"),
        ({"steps": -1}, "steps"),
        ({"seed": -3}, "seed"),
        ({"noise": torch.zeros(1, 1, 1, 19, 19)}, "noise must have shape"),
        ({"backend": "cuda"}, "backend must be one of"),
    ],
)
def test_bad_arguments_name_themselves(model, arguments: dict, message: str) -> None:
    options = {"steps": 2, "delta": 0.3, "seed": 0, **arguments}
    with pytest.raises(ConfigError, match=message):
        langevin(model, random_input(model), **options)


def test_chain_initialisations() -> None:
    noise = init_chains("noise", 4000, (1, 5, 5), sigma=2.5, seed=3)
    assert noise.shape == (4000, 1, 5, 5)
    assert float(noise.std()) == pytest.approx(2.5, rel=0.02)
    assert torch.equal(noise, init_chains("noise", 4000, (1, 5, 5), sigma=2.5, seed=3))
    tail = init_chains("noise", 1000, (1, 5, 5), sigma=2.5, seed=3, first_chain=3000)
    assert torch.equal(tail, noise[3000:])
    assert torch.count_nonzero(init_chains("zeros", 3, (2, 4, 4), sigma=1.0)) == 0
    data = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)
    copies = init_chains("data", 5, (3, 2, 2), sigma=1.0, data=data)
    assert torch.equal(copies, data[[0, 1, 0, 1, 0]])
    with pytest.raises(ConfigError, match="chain init must be one of"):
        init_chains("uniform", 2, (1, 4, 4), sigma=1.0)
    with pytest.raises(ConfigError, match="needs observed images"):
        init_chains("data", 2, (1, 4, 4), sigma=1.0)
