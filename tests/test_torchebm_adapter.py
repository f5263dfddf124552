"""TorchEBMSampler against TorchEBM 0.8.9's LangevinDynamics, one test per contract: signature,
validation, integrators, schedulers, decay, state dicts, losses, trajectories and diagnostics.

Chains are compared with noise_source="torch" and the same torch.Generator on both sides, so they
agree to float rounding (the fused update rounds differently from TorchEBM's tensor ops)."""

import inspect
import io

import pytest
import torch

torchebm = pytest.importorskip("torchebm")

from torchebm.core import (  # noqa: E402
    BaseSampler,
    CosineScheduler,
    DoubleWellModel,
    LinearScheduler,
    TemperatureScheduler,
)
from torchebm.integrators import EulerMaruyamaIntegrator, HeunIntegrator, LeapfrogIntegrator  # noqa: E402
from torchebm.losses import ContrastiveDivergence, PersistentContrastiveDivergence  # noqa: E402
from torchebm.models import InteractionModel  # noqa: E402
from torchebm.samplers import LangevinDynamics  # noqa: E402

import genconv  # noqa: E402
from genconv import TorchEBMStep, sample_langevin  # noqa: E402
from genconv.bindings.errors import ConfigError  # noqa: E402

STEP, NOISE = 0.01, 0.8
CLOSE = {"rtol": 1e-5, "atol": 1e-5}

pytestmark = pytest.mark.usefixtures("one_intra_op_thread")


class MLPEnergy(torchebm.core.BaseModel):
    """A small trainable energy on R^2, as TorchEBM users write them."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.SiLU(), torch.nn.Linear(16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1) + 0.5 * x.pow(2).sum(-1)


class QuadraticEnergy(torchebm.core.BaseModel):
    """0.5 ||x||^2 over states of any shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x.flatten(1).pow(2).sum(1)


def _start(n: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _ours(model: torch.nn.Module, **options) -> "genconv.TorchEBMSampler":
    return genconv.TorchEBMSampler(model, **options).configure(noise_source="torch")


@pytest.mark.parametrize("clamp", [None, (-1.0, 1.2)], ids=["free", "clamped"])
def test_sample_langevin_reproduces_langevin_dynamics(clamp) -> None:
    """The same generator draws: TorchEBM's update x - eta dU + noise_scale sqrt(2 eta) z, to float rounding."""
    model, x = DoubleWellModel(barrier_height=2.0), _start()
    theirs = LangevinDynamics(model, step_size=STEP, noise_scale=NOISE, clamp=clamp).sample(
        x=x, n_steps=20, generator=_gen(1)
    )
    generator = _gen(1)
    ours = sample_langevin(
        model, x, steps=20, update=TorchEBMStep(STEP, NOISE), clamp=clamp,
        noise=lambda step: torch.randn(x.shape, generator=generator),
    )  # fmt: skip
    torch.testing.assert_close(ours.x, theirs, **CLOSE)
    assert not torch.allclose(ours.x, x)


def test_constructor_and_sample_signatures_are_langevin_dynamics() -> None:
    """LangevinDynamics' parameters exactly (order, kinds, defaults); genconv's extras keyword-only in configure."""

    def described(function) -> list[tuple[str, object, object]]:
        return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]

    theirs, ours = described(LangevinDynamics.__init__), described(genconv.TorchEBMSampler.__init__)
    assert ours == theirs
    extras = described(genconv.TorchEBMSampler.configure)[1:]
    names = ["temperature", "max_grad_norm", "mala", "seed", "noise_source", "compile"]
    assert [name for name, _, _ in extras] == names
    assert all(kind is inspect.Parameter.KEYWORD_ONLY for _, kind, _ in extras)
    assert described(genconv.TorchEBMSampler.sample) == described(LangevinDynamics.sample)

    model = DoubleWellModel()
    positional = (model, 0.02, 0.5, 0.3, (-2.0, 2.0), torch.float64, "cpu", "heun")
    reference, sampler = LangevinDynamics(*positional), genconv.TorchEBMSampler(*positional)
    for name in ("step_size", "noise_scale"):
        assert sampler.get_scheduled_value(name) == reference.get_scheduled_value(name)
    assert (sampler.decay, sampler.clamp, sampler.dtype, sampler.device) == (0.3, (-2.0, 2.0), torch.float64,
                                                                          reference.device)  # fmt: skip
    assert type(sampler.integrator) is type(reference.integrator) is HeunIntegrator
    assert isinstance(sampler, BaseSampler)
    assert repr(sampler) == repr(reference).replace("LangevinDynamics", "TorchEBMSampler")


BAD_ARGUMENTS = {
    "step_size<0": {"step_size": -0.1},
    "step_size=0": {"step_size": 0.0},
    "noise_scale<0": {"noise_scale": -0.1},
    "noise_scale=0": {"noise_scale": 0.0},
    "clamp-reversed": {"clamp": (1.0, -1.0)},
    "integrator-unknown": {"integrator": "nope"},
    "integrator-wrong-family": {"integrator": LeapfrogIntegrator()},
    "integrator-dtype": {"integrator": EulerMaruyamaIntegrator(dtype=torch.float64)},
}


@pytest.mark.parametrize("change", BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys())
def test_bad_arguments_raise_what_langevin_dynamics_raises(change) -> None:
    """The same exception type (genconv's ConfigError is a ValueError) wherever TorchEBM refuses a value."""
    model = DoubleWellModel()
    with pytest.raises((ValueError, TypeError)) as theirs:
        LangevinDynamics(model, **change)
    with pytest.raises(type(theirs.value)) as ours:
        genconv.TorchEBMSampler(model, **change)
    if isinstance(ours.value, ConfigError):  # genconv's one-line message names the parameter
        assert next(iter(change)) in str(ours.value)
    for sampler in (LangevinDynamics(model), genconv.TorchEBMSampler(model)):
        with pytest.raises(ValueError, match="thin"):
            sampler.sample(dim=2, thin=0)


def test_configure_sets_every_extra_and_returns_the_sampler() -> None:
    sampler = genconv.TorchEBMSampler(DoubleWellModel(), 0.05)
    assert (sampler.temperature, sampler.max_grad_norm, sampler.mala, sampler.seed) == (1.0, None, False, None)
    assert sampler.configure(temperature=0.5, max_grad_norm=3.0, mala=True, seed=4, noise_source="torch") is sampler
    assert (sampler.temperature, sampler.max_grad_norm, sampler.mala, sampler.seed) == (0.5, 3.0, True, 4)
    assert sampler.noise_source == "torch"
    sampler.configure(seed=5)  # the extras not named return to their defaults
    assert (sampler.temperature, sampler.max_grad_norm, sampler.mala, sampler.seed) == (1.0, None, False, 5)
    assert sampler.noise_source == "philox"


def test_bad_genconv_extras_raise_config_errors() -> None:
    model = DoubleWellModel()
    with pytest.raises(ConfigError, match=r"noise_source must be one of philox, torch"):
        genconv.TorchEBMSampler(model).configure(noise_source="numpy")
    with pytest.raises(ConfigError, match=r"temperature must be a finite number >= 0"):
        genconv.TorchEBMSampler(model).configure(temperature=-1.0)
    with pytest.raises(ConfigError, match=r"seed must be an integer"):
        genconv.TorchEBMSampler(model).configure(seed=-3)
    with pytest.raises(ConfigError, match=r"step_size must be a finite number > 0 or a TorchEBM scheduler"):
        genconv.TorchEBMSampler(model, step_size="0.1")
    with pytest.raises(ConfigError, match=r"mala, seed need the Euler-Maruyama integrator"):
        genconv.TorchEBMSampler(model, integrator="heun").configure(mala=True, seed=1)


def test_the_default_integrator_is_euler_maruyama_on_the_fused_path() -> None:
    model = DoubleWellModel()
    instance = EulerMaruyamaIntegrator(dtype=torch.float32)
    for integrator in (None, "euler_maruyama", "euler", instance):
        sampler = genconv.TorchEBMSampler(model, integrator=integrator)
        assert type(sampler.integrator) is EulerMaruyamaIntegrator and sampler.fused
        assert sampler.noise_source == "philox"
    assert genconv.TorchEBMSampler(model, integrator=instance).integrator is instance


def test_another_integrator_runs_torchebms_chain() -> None:
    """Heun: TorchEBM's own chain with genconv's sampler around it, the same numbers from the same draws."""
    model, x = MLPEnergy(), _start(16, seed=6)
    kwargs = {"x": x, "n_steps": 6, "thin": 2, "return_trajectory": True, "return_diagnostics": True}
    theirs, their_stats = LangevinDynamics(model, STEP, NOISE, integrator="heun").sample(**kwargs, generator=_gen(2))
    sampler = genconv.TorchEBMSampler(model, STEP, NOISE, integrator="heun")
    ours, our_stats = sampler.sample(**kwargs, generator=_gen(2))
    assert not sampler.fused and sampler.noise_source == "torch" and ours.shape == (16, 3, 2)
    assert torch.equal(ours, theirs) and all(torch.equal(our_stats[k], their_stats[k]) for k in their_stats)
    euler_sampler = genconv.TorchEBMSampler(model, STEP, NOISE).configure(noise_source="torch")
    euler = euler_sampler.sample(x=x, n_steps=6, generator=_gen(2))
    assert not torch.allclose(euler, ours[:, -1], rtol=0, atol=1e-7)


def _scheduled(model: torch.nn.Module, sampler_type, **options):
    """A sampler with a cosine-annealed step size and a noise scale that is 0 for the first steps, then ramps."""
    return sampler_type(
        model,
        step_size=CosineScheduler(start_value=0.05, end_value=0.005, n_steps=8),
        noise_scale=TemperatureScheduler(epsilon_max=0.5, tau_star=0.4, n_steps=8),
        **options,
    )


def test_scheduled_step_size_and_noise_match_langevin_dynamics_per_step() -> None:
    model, x = MLPEnergy(), _start(32, seed=7)
    reference, sampler = _scheduled(model, LangevinDynamics), _scheduled(model, _ours)
    theirs = reference.sample(x=x, n_steps=10, return_trajectory=True, generator=_gen(3))
    ours = sampler.sample(x=x, n_steps=10, return_trajectory=True, generator=_gen(3))
    torch.testing.assert_close(ours, theirs, **CLOSE)  # every step of the schedule, the noise-free ones too
    other = sampler.sample(x=x, n_steps=10, return_trajectory=True, generator=_gen(4))
    assert torch.equal(other[:, :4], ours[:, :4]) and not torch.allclose(other[:, 4:], ours[:, 4:])
    for name in ("step_size", "noise_scale"):
        assert sampler.get_scheduled_value(name) == reference.get_scheduled_value(name)
    with pytest.raises(KeyError, match="unknown"):
        sampler.get_scheduled_value("unknown")


def test_reset_schedulers_restarts_or_continues_a_schedule_as_langevin_dynamics_does() -> None:
    model, x = MLPEnergy(), _start(16, seed=8)
    runs = {}
    for name, sampler_type in (("theirs", LangevinDynamics), ("ours", _ours)):
        sampler = _scheduled(model, sampler_type)
        first = sampler.sample(x=x, n_steps=4, generator=_gen(4))
        continued = sampler.sample(x=x, n_steps=4, reset_schedulers=False, generator=_gen(4))
        restarted = sampler.sample(x=x, n_steps=4, generator=_gen(4))
        sampler.step_schedulers()
        stepped = sampler.get_scheduled_value("step_size")
        sampler.reset_schedulers()
        runs[name] = (first, continued, restarted, stepped, sampler.get_scheduled_value("step_size"))
    for ours, theirs in zip(runs["ours"], runs["theirs"], strict=True):
        torch.testing.assert_close(ours, theirs, **CLOSE)
    first, continued, restarted, stepped, reset = runs["ours"]
    assert torch.equal(first, restarted) and not torch.allclose(first, continued)
    assert reset == 0.05 and stepped < 0.05


def test_a_scheduler_registered_later_and_the_models_own_schedulers_drive_the_chain() -> None:
    """register_scheduler replaces a parameter; an InteractionModel's scheduled strength advances per step."""
    x, results = _start(24, seed=9), []
    for sampler_type in (LangevinDynamics, _ours):
        repulsive = InteractionModel(MLPEnergy(), sigma_w=4.0, strength=LinearScheduler(0.0, 2.0, n_steps=6))
        sampler = sampler_type(repulsive, step_size=STEP, noise_scale=NOISE)
        sampler.register_scheduler("step_size", LinearScheduler(start_value=0.02, end_value=0.04, n_steps=6))
        results.append(sampler.sample(x=x, n_steps=6, return_trajectory=True, generator=_gen(5)))
        assert repulsive.get_scheduled_value("strength") == 2.0
    torch.testing.assert_close(results[1], results[0], **CLOSE)


def test_decay_is_stored_and_unused_as_in_langevin_dynamics() -> None:
    model, x = MLPEnergy(), _start(16, seed=10)
    sampler = _ours(model, step_size=STEP, noise_scale=NOISE, decay=0.7)
    assert sampler.decay == LangevinDynamics(model, decay=0.7).decay == 0.7
    damped = sampler.sample(x=x, n_steps=5, generator=_gen(6))
    plain = _ours(model, step_size=STEP, noise_scale=NOISE).sample(x=x, n_steps=5, generator=_gen(6))
    assert torch.equal(damped, plain)


def test_state_dicts_load_strictly_both_ways() -> None:
    """Same keys as LangevinDynamics (model and integrator tableau), loaded strictly in either direction,
    alone and as the sampler submodule of TorchEBM's ContrastiveDivergence."""
    theirs, ours = LangevinDynamics(MLPEnergy(seed=1), STEP), genconv.TorchEBMSampler(MLPEnergy(seed=2), STEP)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict(), strict=True)
    assert all(torch.equal(ours.state_dict()[k], v) for k, v in theirs.state_dict().items())
    with torch.no_grad():
        ours.model.net[0].weight.add_(1.0)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    assert torch.equal(theirs.model.net[0].weight, ours.model.net[0].weight)

    their_loss = ContrastiveDivergence(MLPEnergy(seed=3), LangevinDynamics(MLPEnergy(seed=3)), k_steps=2)
    model = MLPEnergy(seed=4)
    our_loss = ContrastiveDivergence(model, genconv.TorchEBMSampler(model), k_steps=2)
    our_loss.load_state_dict(their_loss.state_dict(), strict=True)
    their_loss.load_state_dict(our_loss.state_dict(), strict=True)
    assert torch.equal(our_loss.sampler.model.net[2].bias, their_loss.sampler.model.net[2].bias)


def test_the_seeded_call_count_is_restored_from_a_saved_checkpoint() -> None:
    """Seeded Philox noise: call k draws from derive_seed(seed, k); the count rides in the state dict's
    metadata, so it survives torch.save / torch.load while the keys stay LangevinDynamics'."""
    model, x = DoubleWellModel(), _start(8)
    first, second = (genconv.TorchEBMSampler(model, step_size=STEP).configure(seed=7) for _ in range(2))
    a1, a2 = first.sample(x=x, n_steps=5), first.sample(x=x, n_steps=5)
    assert torch.equal(a1, second.sample(x=x, n_steps=5)) and not torch.equal(a1, a2)
    saved = io.BytesIO()
    torch.save(first.state_dict(), saved)
    saved.seek(0)
    restored = genconv.TorchEBMSampler(model, step_size=STEP).configure(seed=7)
    restored.load_state_dict(torch.load(saved), strict=True)
    assert restored.calls == 2 and torch.equal(restored.sample(x=x, n_steps=5), first.sample(x=x, n_steps=5))
    restored.load_state_dict(LangevinDynamics(model).state_dict(), strict=True)  # carries no count: kept
    assert restored.calls == 3
    unseeded = genconv.TorchEBMSampler(model, step_size=STEP)
    same = [unseeded.sample(x=x, n_steps=5, generator=_gen(0)) for _ in range(2)]
    assert torch.equal(same[0], same[1])


@pytest.mark.parametrize("loss_type", [ContrastiveDivergence, PersistentContrastiveDivergence], ids=["cd", "pcd"])
def test_torchebm_losses_take_the_sampler_in_place_of_langevin_dynamics(loss_type) -> None:
    """Same generator, same loss, same negatives, same parameter gradients."""
    data = _start(16, seed=4)
    results = []
    for make_sampler in (
        lambda model: LangevinDynamics(model, step_size=STEP, noise_scale=NOISE),
        lambda model: _ours(model, step_size=STEP, noise_scale=NOISE),
    ):
        model = MLPEnergy()
        options = {"buffer_size": 32, "init_steps": 3} if loss_type is PersistentContrastiveDivergence else {}
        loss_fn = loss_type(model=model, sampler=make_sampler(model), k_steps=5, **options)
        loss, negatives = loss_fn(data, generator=_gen(5))
        loss.backward()
        results.append((loss.detach(), negatives, [p.grad.clone() for p in model.parameters()]))
    (their_loss, their_negatives, their_grads), (our_loss, our_negatives, our_grads) = results
    torch.testing.assert_close(our_loss, their_loss, **CLOSE)
    torch.testing.assert_close(our_negatives, their_negatives, **CLOSE)
    for ours, theirs in zip(our_grads, their_grads, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("thin, n", [(1, 32), (4, 32), (3, 1)], ids=["thin1", "thin4", "one-chain"])
def test_trajectory_and_diagnostics_match_langevin_dynamics(thin, n) -> None:
    model, x = MLPEnergy(), _start(n, seed=2)
    kwargs = {"x": x, "n_steps": 12, "thin": thin, "return_trajectory": True, "return_diagnostics": True}
    theirs, their_stats = LangevinDynamics(model, STEP, NOISE).sample(**kwargs, generator=_gen(3))
    ours, our_stats = _ours(model, step_size=STEP, noise_scale=NOISE).sample(**kwargs, generator=_gen(3))
    assert ours.shape == theirs.shape == (n, 12 // thin, 2)
    torch.testing.assert_close(ours, theirs, **CLOSE)
    assert set(our_stats) == set(their_stats) == {"mean", "var", "energy"}
    for key in their_stats:
        assert our_stats[key].shape == their_stats[key].shape, key
        torch.testing.assert_close(our_stats[key], their_stats[key], **CLOSE)
    if n == 1:
        assert not our_stats["var"].any()


def test_states_drawn_from_a_shape_have_it() -> None:
    sampler = genconv.TorchEBMSampler(QuadraticEnergy(), step_size=0.05)
    samples = sampler.sample(dim=(2, 3), n_samples=3, n_steps=4, generator=_gen(0))
    assert samples.shape == (3, 2, 3) and samples.dtype == torch.float32
    with pytest.raises(ValueError, match="dim"):
        sampler.sample(n_samples=2, n_steps=4)


def test_mala_mode_reports_acceptance() -> None:
    sampler = genconv.TorchEBMSampler(DoubleWellModel(), step_size=0.05).configure(mala=True, seed=1)
    samples, stats = sampler.sample(dim=2, n_samples=200, n_steps=9, thin=3, return_diagnostics=True,
                                    generator=_gen(0))  # fmt: skip
    assert samples.shape == (200, 2) and stats["acceptance_rate"].shape == (3,)
    assert sampler.last_acceptance_rate.shape == (200,)
    assert 0.0 < float(stats["acceptance_rate"].min()) and float(stats["acceptance_rate"].max()) < 1.0


def test_a_compiled_chain_gives_the_eager_chains_samples() -> None:
    """compile=True captures the whole chain of the model; same seeds, same samples to float rounding."""
    model = MLPEnergy()
    eager = genconv.TorchEBMSampler(model, STEP, NOISE, clamp=(-2.0, 2.0)).configure(seed=9, compile=False)
    compiled = genconv.TorchEBMSampler(model, STEP, NOISE, clamp=(-2.0, 2.0)).configure(seed=9, compile=True)
    for _ in range(2):  # the second call replays the chain compiled by the first
        expected = eager.sample(_start(), n_steps=12)
        torch.testing.assert_close(compiled.sample(_start(), n_steps=12), expected, **CLOSE)
    with pytest.raises(ConfigError, match="compile must be 'auto', True or False"):
        compiled.configure(compile="always")
