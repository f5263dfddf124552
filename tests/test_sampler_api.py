"""sample_langevin on any energy: the three parameterisations against hand-written loops, MALA's
invariance, clamping, clipping, seeds, trajectories, the GCN fast path and bad arguments."""

import math
import warnings

import pytest
import torch

import genconv
from genconv import GCNStep, SGLDStep, TorchEBMStep, UpdateRule, sample_langevin
from genconv.bindings import backends, ops
from genconv.bindings.errors import ConfigError
from genconv.engine.model import GenerativeConvNet
from genconv.engine.network import ConvLayer, NetworkSpec
from genconv.kernels.reference import philox_normal

from kernel_support import assert_close

SEED = 2024
SHAPE = (5, 3, 4)  # 5 chains of 3 x 4 states: the sampler takes any [B, ...]


pytestmark = pytest.mark.usefixtures("one_intra_op_thread")


def _states(seed: int = 0, shape: tuple[int, ...] = SHAPE) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _energy(x: torch.Tensor) -> torch.Tensor:
    """A non-quadratic energy of [B, 3, 4] states: a double well per element plus a coupling term."""
    flat = x.flatten(1)
    return ((flat**2 - 1.0) ** 2).sum(1) + 0.3 * torch.tanh(flat[:, :-1] * flat[:, 1:]).sum(1)


def _grad(x: torch.Tensor) -> torch.Tensor:
    leaf = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(_energy(leaf).sum(), leaf)
    return grad


def _hand_loop(x: torch.Tensor, steps: int, update, noise, clamp=None, temperature=1.0, max_norm=None):
    """Each form written out as its papers and libraries write it, eagerly, noise z_t = noise(t)."""
    for t in range(steps):
        grad = _grad(x)
        if max_norm is not None:
            norms = grad.flatten(1).norm(dim=1).view(-1, 1, 1)
            grad = grad * torch.clamp(max_norm / norms, max=1.0)
        z = math.sqrt(temperature) * noise(t)
        if isinstance(update, GCNStep):
            delta, sigma = update.delta, update.sigma
            x = x - (delta**2 / 2) * grad - (delta**2 / (2 * sigma**2)) * x + delta * z
        elif isinstance(update, SGLDStep):
            x = x - update.step_size * grad + update.noise_std * z
        else:
            eta = update.step_size
            x = x - eta * grad + update.noise_scale * math.sqrt(2 * eta) * z
        if clamp is not None:
            x = x.clamp(*clamp)
    return x


def _philox(seed: int, shape: tuple[int, ...], start_step: int = 0):
    numel = math.prod(shape)
    return lambda t: philox_normal(seed, (start_step + t) * numel, shape)


FORMS = [GCNStep(delta=0.2, sigma=1.5), SGLDStep(step_size=0.02, noise_std=0.05), TorchEBMStep(0.01, noise_scale=0.7)]
FORM_IDS = ["gcn", "sgld", "torchebm"]


@pytest.mark.parametrize("update", FORMS, ids=FORM_IDS)
def test_each_form_reproduces_its_hand_written_loop(update) -> None:
    """Same counter-based noise: the fused op's chain equals the textbook update to float rounding."""
    x = _states()
    out = sample_langevin(_energy, x, steps=6, update=update, seed=SEED)
    expected = _hand_loop(x, 6, update, _philox(SEED, SHAPE))
    torch.testing.assert_close(out.x, expected, rtol=1e-5, atol=1e-5)
    assert out.seed == SEED and out.next_step == 6 and not torch.equal(out.x, x)


def test_temperature_clamp_clipping_and_given_noise_follow_the_hand_loop() -> None:
    x = 2.0 * _states(1)
    noise = torch.randn(4, *SHAPE, generator=torch.Generator().manual_seed(5))
    update = SGLDStep(step_size=0.05, noise_std=0.3)
    options = {"temperature": 2.5, "clamp": (-1.2, 1.1), "max_grad_norm": 3.0}
    out = sample_langevin(_energy, x, steps=4, update=update, noise=noise, **options)
    expected = _hand_loop(x, 4, update, lambda t: noise[t], options["clamp"], 2.5, 3.0)
    torch.testing.assert_close(out.x, expected, rtol=1e-5, atol=1e-5)
    by_function = sample_langevin(_energy, x, steps=4, update=update, noise=lambda t: noise[t], **options)
    torch.testing.assert_close(by_function.x, out.x, rtol=0, atol=0)


def test_a_schedule_runs_each_steps_rule() -> None:
    """Step t runs entry t (a form or an UpdateRule, 0 leaving x as it is); a constant schedule is the form."""
    x, noise = _states(10), _philox(SEED, SHAPE)
    schedule = [TorchEBMStep(0.02, 0.7), SGLDStep(0.01, 0.05), UpdateRule(0.0, 0.0, 0.0), TorchEBMStep(0.005, 1.3)]
    out = sample_langevin(_energy, x, steps=4, update=schedule, seed=SEED, temperature=1.5)
    expected = x
    for step, form in enumerate(schedule):
        if isinstance(form, UpdateRule):
            expected = expected - form.drift * _grad(expected)  # drift 0: a step that stays put
        else:
            expected = _hand_loop(expected, 1, form, lambda _t, step=step: noise(step), temperature=1.5)
    torch.testing.assert_close(out.x, expected, rtol=1e-5, atol=1e-5)
    constant = sample_langevin(_energy, x, steps=4, update=[FORMS[2]] * 4, seed=SEED)
    assert torch.equal(constant.x, sample_langevin(_energy, x, steps=4, update=FORMS[2], seed=SEED).x)


def test_mala_takes_each_steps_rule_of_a_schedule() -> None:
    """Tiny first steps are all accepted, huge last ones mostly refused: each step's rule is its own."""
    mean, var = torch.zeros(2), torch.ones(2)
    x = torch.randn(400, 2, generator=torch.Generator().manual_seed(2))
    schedule = [TorchEBMStep(1e-5)] * 3 + [TorchEBMStep(4.0)] * 3
    out = sample_langevin(_gaussian_energy(mean, var), x, steps=6, update=schedule, mala=True, seed=SEED,
                          diagnostics=True)  # fmt: skip
    rates = out.diagnostics.accepted.float().mean(1)
    assert bool((rates[:3] > 0.99).all()) and bool((rates[3:] < 0.3).all()), rates


def test_a_recorded_chain_bakes_its_schedule_into_the_graph_key(monkeypatch) -> None:
    """What a CUDA graph would record (the plain runner) runs each step's rule, and schedules that differ
    get keys that differ; checked on the CPU by standing in for the graph cache."""
    from genconv.bindings import sampler as sampler_module

    keys: list[object] = []

    def run(key, x, seed, base, runner):
        keys.append(key)
        return runner(x.clone(), ops.noise_counter(seed, base, x.device))

    monkeypatch.setattr(sampler_module, "_graph_eligible", lambda *args: True)
    monkeypatch.setattr(sampler_module, "CHAIN_GRAPHS", type("Graphs", (), {"run": staticmethod(run)})())
    energy = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 1), torch.nn.Flatten(0))
    x = _states(11)
    slow, fast = [SGLDStep(0.01, 0.1), SGLDStep(0.02, 0.1)], [SGLDStep(0.01, 0.1), SGLDStep(0.5, 0.1)]
    for schedule in (slow, fast, slow, [FORMS[1]] * 2, FORMS[1]):
        recorded = sample_langevin(energy, x, steps=2, update=schedule, seed=SEED, start_step=3)
        eager = sample_langevin(energy, x, steps=2, update=schedule, seed=SEED, start_step=3, cuda_graph=False)
        assert torch.equal(recorded.x, eager.x)
    assert keys[0] != keys[1] and keys[0] == keys[2] and keys[3] == keys[4]


def test_clamp_bounds_every_state() -> None:
    """A steep drift pushes chains out; every state stays inside (low, high) and chains sit on the bounds."""
    seen: list[torch.Tensor] = []
    out = sample_langevin(
        lambda x: -4.0 * x.flatten(1).sum(1), _states(2), steps=5, update=SGLDStep(0.5, 0.1), clamp=(-0.5, 0.75),
        seed=SEED, callback=lambda step, states: seen.append(states),
    )  # fmt: skip
    states = torch.stack(seen)
    assert float(states.min()) >= -0.5 and float(states.max()) <= 0.75
    assert bool((out.x == 0.75).float().mean() > 0.9)


def test_gradient_clipping_caps_each_chains_step() -> None:
    """Noise-free: a chain whose gradient is over the cap moves exactly step_size * max_grad_norm along
    -dE/dx; a chain under the cap moves by the full step."""
    scales = torch.tensor([0.1, 1000.0, 5.0])

    def energy(x: torch.Tensor) -> torch.Tensor:
        return scales * x.flatten(1).sum(1)

    x = torch.zeros(3, 2, 2)
    out = sample_langevin(energy, x, steps=1, update=SGLDStep(step_size=0.1, noise_std=0.0), max_grad_norm=1.0)
    moved = (out.x - x).flatten(1)
    grad_norms = scales * 2.0  # ||dE/dx|| = scale * sqrt(4 elements)
    expected_norms = 0.1 * torch.clamp(grad_norms, max=1.0)
    torch.testing.assert_close(moved.norm(dim=1), expected_norms)
    torch.testing.assert_close(moved / moved.norm(dim=1, keepdim=True), torch.full((3, 4), -0.5))


def test_seeds_give_the_same_chain_and_runs_continue_exactly() -> None:
    x, update = _states(3), GCNStep(delta=0.3)
    first = sample_langevin(_energy, x, steps=4, update=update, seed=SEED)
    again = sample_langevin(_energy, x, steps=4, update=update, seed=SEED)
    other = sample_langevin(_energy, x, steps=4, update=update, seed=SEED + 1)
    assert torch.equal(first.x, again.x) and not torch.allclose(first.x, other.x)
    half = sample_langevin(_energy, x, steps=2, update=update, seed=SEED)
    rest = sample_langevin(_energy, half.x, steps=2, update=update, seed=half.seed, start_step=half.next_step)
    torch.testing.assert_close(rest.x, first.x, rtol=0, atol=0)
    drawn = [
        sample_langevin(_energy, x, steps=2, update=update, generator=torch.Generator().manual_seed(9))
        for _ in range(2)
    ]
    assert drawn[0].seed == drawn[1].seed and torch.equal(drawn[0].x, drawn[1].x)


def test_thinned_trajectory_callback_and_diagnostics() -> None:
    x, update = _states(4), TorchEBMStep(0.01, 0.5)
    seen: list[tuple[int, torch.Tensor]] = []
    out = sample_langevin(
        _energy, x, steps=7, update=update, seed=SEED, thin=3, diagnostics=True,
        callback=lambda step, states: seen.append((step, states.clone())),
    )  # fmt: skip
    assert [step for step, _ in seen] == list(range(7))
    assert out.trajectory.shape == (2, *SHAPE)
    assert torch.equal(out.trajectory[0], seen[2][1]) and torch.equal(out.trajectory[1], seen[5][1])
    assert out.diagnostics.energy.shape == (7, 5) and out.diagnostics.accepted is None
    torch.testing.assert_close(out.diagnostics.energy[0], _energy(x))
    torch.testing.assert_close(out.diagnostics.energy[3], _energy(seen[2][1]))
    torch.testing.assert_close(out.diagnostics.grad_norm[0], _grad(x).flatten(1).norm(dim=1))


def test_a_given_gradient_function_replaces_autograd() -> None:
    x, update = _states(5), SGLDStep(0.02, 0.1)
    by_autograd = sample_langevin(_energy, x, steps=3, update=update, seed=SEED)
    by_function = sample_langevin(_energy, x, steps=3, update=update, seed=SEED, gradient=_grad)
    torch.testing.assert_close(by_function.x, by_autograd.x, rtol=0, atol=0)


def _gaussian_energy(mean: torch.Tensor, var: torch.Tensor):
    return lambda x: ((x - mean) ** 2 / (2 * var)).sum(1)


def test_mala_leaves_a_gaussian_invariant_where_ula_is_biased() -> None:
    """Chains started in N(mean, diag(var)) stay there under MALA with a step large enough to bias ULA.

    The chains are independent and each is exactly in the target at every step, so the final states
    are i.i.d. draws: mean and variance are checked within 5 standard errors (n = 4000).
    """
    mean, var = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 2.0])
    n = 4000
    x = mean + var.sqrt() * torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    update, energy = TorchEBMStep(step_size=0.3), _gaussian_energy(mean, var)
    mala = sample_langevin(energy, x, steps=30, update=update, mala=True, seed=SEED)
    ula = sample_langevin(energy, x, steps=30, update=update, seed=SEED)
    se_mean, se_var = (var / n).sqrt(), var * math.sqrt(2 / n)
    assert bool(((mala.x.mean(0) - mean).abs() < 5 * se_mean).all()), mala.x.mean(0)
    assert bool(((mala.x.var(0) - var).abs() < 5 * se_var).all()), mala.x.var(0)
    # ULA's stationary variance here is var / (1 - eta / (2 var)): 0.714 instead of 0.5 on the first axis.
    assert float(ula.x.var(0)[0] - var[0]) > 10 * float(se_var[0])
    rate = float(mala.acceptance_rate.mean())
    assert 0.5 < rate < 0.95 and mala.acceptance_rate.shape == (n,)


def test_mala_acceptance_falls_as_the_step_grows() -> None:
    mean, var = torch.zeros(4), torch.tensor([0.5, 1.0, 1.5, 2.0])
    x = var.sqrt() * torch.randn(500, 4, generator=torch.Generator().manual_seed(1))
    energy = _gaussian_energy(mean, var)
    rates = []
    for eta in (1e-4, 0.3, 2.0):
        out = sample_langevin(energy, x, steps=10, update=TorchEBMStep(eta), mala=True, seed=SEED, diagnostics=True)
        rates.append(float(out.acceptance_rate.mean()))
        assert torch.equal(out.diagnostics.accepted.float().mean(0), out.acceptance_rate)
    assert rates[0] > 0.99 and rates[0] > rates[1] > rates[2] and rates[2] < 0.25, rates


def test_mala_with_every_proposal_accepted_is_the_unadjusted_chain() -> None:
    """MALA proposes with the same counter-based noise as ULA, so at tiny steps it is the same chain."""
    x, update = _states(6), SGLDStep(step_size=1e-6, noise_std=1e-3)
    mala = sample_langevin(_energy, x, steps=3, update=update, mala=True, seed=SEED)
    ula = sample_langevin(_energy, x, steps=3, update=update, seed=SEED)
    assert bool((mala.acceptance_rate == 1).all())
    torch.testing.assert_close(mala.x, ula.x, rtol=0, atol=0)


def _tiny_gcn() -> GenerativeConvNet:
    spec = NetworkSpec(1, (ConvLayer(4, 3, 1, 1), ConvLayer(3, 3, 2, 1)), init_std=0.3, image_size=(9, 9))
    return GenerativeConvNet(spec, sigma=1.2, init_seed=0)


def test_a_gcn_takes_the_engines_fused_chain_and_matches_the_generic_path() -> None:
    model, x = _tiny_gcn(), _states(7, (3, 1, 9, 9))
    fast = sample_langevin(model, x, steps=4, update=GCNStep(delta=0.3), seed=SEED, diagnostics=True, thin=2)
    engine = genconv.langevin(model, x, steps=4, delta=0.3, seed=SEED, diagnostics=True)
    generic = sample_langevin(lambda y: -model.f(y), x, steps=4, update=GCNStep(0.3, sigma=1.2), seed=SEED,
                              diagnostics=True)  # fmt: skip
    assert torch.equal(fast.x, engine.x)
    torch.testing.assert_close(generic.x, fast.x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(generic.diagnostics.energy, fast.diagnostics.energy, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(generic.diagnostics.grad_norm, fast.diagnostics.grad_norm, rtol=1e-5, atol=1e-5)
    assert fast.trajectory.shape == (2, 3, 1, 9, 9) and torch.equal(fast.trajectory[1], fast.x)
    clipped = sample_langevin(model, x, steps=4, update=GCNStep(0.3), seed=SEED, max_grad_norm=1e6)
    torch.testing.assert_close(clipped.x, fast.x, rtol=1e-5, atol=1e-5)  # the generic path on the same density
    scheduled = sample_langevin(model, x, steps=4, update=[GCNStep(0.3)] * 4, seed=SEED)  # sigma: the model's
    torch.testing.assert_close(scheduled.x, fast.x, rtol=1e-5, atol=1e-5)


@pytest.mark.interpreter
def test_the_chain_runs_on_the_triton_update_kernel(monkeypatch) -> None:
    """Routed to the kernel (TRITON_INTERPRET=1), the SGLD chain (sigma = inf in the op) is unchanged."""
    if not backends.triton_interpreter_enabled():
        pytest.skip("routes CPU tensors to the kernels, which needs TRITON_INTERPRET=1")
    pytest.importorskip("triton")
    x, update = _states(8), SGLDStep(0.02, 0.1)
    expected = sample_langevin(_energy, x, steps=3, update=update, seed=SEED, clamp=(-1.5, 1.5))
    monkeypatch.setitem(ops.DEVICE_BACKENDS, "cpu", "triton")
    out = sample_langevin(_energy, x, steps=3, update=update, seed=SEED, clamp=(-1.5, 1.5))
    assert_close(out.x, expected.x, torch.float32, "chain")


@pytest.mark.gpu
@pytest.mark.parametrize(
    "update", [SGLDStep(0.05, 0.1), [SGLDStep(0.05 / (1 + t), 0.1) for t in range(5)]], ids=["fixed", "scheduled"]
)
def test_cuda_graph_replay_equals_the_eager_chain(update) -> None:
    energy = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1),
                                 torch.nn.Flatten(0)).cuda()  # fmt: skip
    x = _states(9).cuda()
    eager = sample_langevin(energy, x, steps=5, update=update, seed=SEED, cuda_graph=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a failed capture warns and falls back
        for seed in (SEED, SEED, SEED, SEED + 1):  # the second call records, later ones replay
            out = sample_langevin(energy, x, steps=5, update=update, seed=seed)
            if seed == SEED:
                assert_close(out.x, eager.x, torch.float32, "replayed chain")
    assert not torch.allclose(out.x, eager.x)


def _mixed_gcn_schedule() -> dict[str, object]:
    schedule = [GCNStep(0.1), SGLDStep(0.1, 0.1)]
    return {"energy": _tiny_gcn(), "x": _states(0, (5, 1, 9, 9)), "steps": 2, "update": schedule}


BAD_ARGUMENTS = [
    ({"update": (0.1, 0.2)}, r"update must be GCNStep\(delta, sigma\), SGLDStep"),
    ({"steps": -1}, r"steps must be an integer >= 0"),
    ({"temperature": -1.0}, r"temperature must be a finite number >= 0"),
    ({"clamp": (1.0, -1.0)}, r"clamp must be \(low, high\) with finite low < high"),
    ({"max_grad_norm": 0.0}, r"max_grad_norm must be a finite number > 0"),
    ({"thin": 0}, r"thin must be an integer >= 1"),
    ({"seed": -3}, r"seed must be an integer in \[0, 2\*\*63 - 1\]"),
    ({"start_step": 1.5}, r"start_step must be an integer >= 0"),
    ({"noise": torch.zeros(2, 5, 3)}, r"noise must be a tensor \[3, 5, 3, 4\]"),
    ({"mala": True, "clamp": (-1.0, 1.0)}, r"mala needs a proposal with a density"),
    ({"mala": True, "update": SGLDStep(0.1, 0.0)}, r"mala needs a proposal with a density"),
    ({"energy": lambda x: x.flatten(1)}, r"energy must map x \[B, ...\] to E \[B\] = \[5\]"),
    ({"energy": lambda x: torch.zeros(5)}, r"energy\(x\) does not depend on x"),
    ({"energy": 3.0}, r"energy must be a callable or nn.Module"),
    ({"x": torch.zeros(5, 3, dtype=torch.int64)}, r"x must be a floating-point tensor \[B, ...\]"),
    (lambda: {"update": GCNStep(delta=-0.1)}, r"GCNStep.delta must be a finite number > 0"),
    (lambda: {"update": SGLDStep(0.1, -1.0)}, r"SGLDStep.noise_std must be a finite number >= 0"),
    (lambda: {"update": TorchEBMStep(0.0)}, r"TorchEBMStep.step_size must be a finite number > 0"),
    ({"update": [SGLDStep(0.1, 0.1)] * 2}, r"a schedule needs one update per step: got 2 for steps=3"),
    ({"update": [SGLDStep(0.1, 0.1), 0.2, SGLDStep(0.1, 0.1)]}, r"update must be GCNStep\(delta, sigma\)"),
    ({"mala": True, "update": [SGLDStep(0.1, 0.1), SGLDStep(0.1, 0.0), SGLDStep(0.1, 0.1)]}, r"mala needs a"),
    (lambda: {"update": [UpdateRule(0.0, 0.0, 0.1)] * 3}, r"UpdateRule needs finite drift, decay, noise_std >= 0"),
    (_mixed_gcn_schedule, r"a schedule for a GenerativeConvNet takes GCNSteps only or none"),
]


@pytest.mark.parametrize("change, message", BAD_ARGUMENTS, ids=[str(i) for i in range(len(BAD_ARGUMENTS))])
def test_bad_arguments_raise_config_errors_naming_them(change, message) -> None:
    with pytest.raises(ConfigError, match=message):
        arguments = {"energy": _energy, "x": _states(), "steps": 3, "update": SGLDStep(0.1, 0.1), "seed": 0}
        arguments.update(change() if callable(change) else change)
        sample_langevin(arguments.pop("energy"), arguments.pop("x"), **arguments)
