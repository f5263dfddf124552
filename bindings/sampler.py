"""Langevin sampling of any energy E: x [B, ...] -> [B], stepped by genconv's fused update op.

``sample_langevin`` runs K steps of one of three parameterisations (``update_rules``): the GCN
convention, the decoupled SGLD form of IGEBM/JEM/short-run code, or TorchEBM's
``LangevinDynamics``, fixed or scheduled per step (e.g. an annealed step size). The gradient
comes from autograd (or a given ``gradient`` function); the update, its noise and the clamp run
in one ``genconv::langevin_update`` (one fused kernel on CUDA, the reference twin on CPU).
Options: temperature, state clamp, per-chain gradient-norm clipping, a Metropolis-adjusted
(MALA) mode, callbacks, thinned trajectories, diagnostics.

Noise is counter-based: step t of a run with ``seed`` draws element e at Philox counter
(start_step + t) * x.numel() + e, the layout of ``genconv.langevin``, so the same seed gives the
same chain on every device and a run continues exactly from ``next_step``.

Models registered with ``register_fast_chain`` (genconv registers ``GenerativeConvNet``) run
their own fused chain in the GCN form; on CUDA, a chain of an ``nn.Module`` energy whose shapes
repeat is recorded once in a CUDA graph and replayed (``GENCONV_CUDA_GRAPHS=0`` turns it off).
"""

import itertools
import math
import numbers
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from genconv.bindings import ops
from genconv.bindings.backends import resolve_backend
from genconv.bindings.compiled_chain import COMPILED_CHAINS, ChainSpec, block_size
from genconv.bindings.errors import ChainDivergedError, ConfigError, InputTypeError
from genconv.bindings.graphs import CHAIN_GRAPHS, graphs_enabled
from genconv.bindings.seeding import derive_seed, seed_from
from genconv.bindings.update_rules import STEP_FORMS, GCNStep, StepForm, UpdateRule, rule_of
from genconv.kernels.reference import accumulation_dtype

_MALA_STREAM = 1

EnergyFn = Callable[[torch.Tensor], torch.Tensor]
NoiseSource = torch.Tensor | Callable[[int], torch.Tensor]
Schedule = Sequence[StepForm | UpdateRule]


@dataclass
class SamplerDiagnostics:
    """Per-step, per-chain figures [steps, B], taken at the state before each update.

    energy: the target energy U(x) = E(x) (+ ||x||^2/(2 sigma^2) in the GCN form);
    grad_norm: ||dE/dx|| before clipping; accepted: MALA's accept decisions (bool), else None.
    """

    energy: torch.Tensor
    grad_norm: torch.Tensor
    accepted: torch.Tensor | None = None


@dataclass
class SamplerOutput:
    """The final states and what else a run was asked to keep.

    x: [B, ...] final states (x's dtype); seed and next_step continue the same noise stream;
    acceptance_rate: [B] fraction of accepted MALA proposals; trajectory: [steps // thin, B, ...]
    states after steps thin, 2 thin, ...; diagnostics: see ``SamplerDiagnostics``.
    """

    x: torch.Tensor
    seed: int
    next_step: int
    acceptance_rate: torch.Tensor | None = None
    trajectory: torch.Tensor | None = None
    diagnostics: SamplerDiagnostics | None = None


_FAST_CHAINS: dict[type, Callable[..., Any]] = {}


def register_fast_chain(model_type: type, chain: Callable[..., Any]) -> None:
    """Let ``sample_langevin`` run models of ``model_type`` in the GCN form through ``chain``.

    ``chain`` has the signature of ``genconv.langevin`` (model, x, steps, delta, sigma, seed,
    start_step, noise, clamp, diagnostics, callback, cuda_graph, check_finite) and returns an object with ``x``,
    ``seed``, ``next_step`` and ``diagnostics`` (``energy``, ``grad_norm``). The models expose
    ``f(x)`` [B], ``energy(x)`` [B] and ``sigma``: a GCN's energy is -f plus the Gaussian
    reference term, which the GCN form folds into the update. ``import genconv`` registers
    ``GenerativeConvNet``.
    """
    _FAST_CHAINS[model_type] = chain


def _fast_chain_for(energy: object) -> Callable[..., Any] | None:
    for model_type, chain in _FAST_CHAINS.items():
        if isinstance(energy, model_type):
            return chain
    return None


def sample_langevin(
    energy: EnergyFn,
    x: torch.Tensor,
    *,
    steps: int,
    update: StepForm | Schedule,
    temperature: float = 1.0,
    clamp: tuple[float, float] | None = None,
    max_grad_norm: float | None = None,
    mala: bool = False,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    start_step: int = 0,
    noise: NoiseSource | None = None,
    gradient: Callable[[torch.Tensor], torch.Tensor] | None = None,
    callback: Callable[[int, torch.Tensor], None] | None = None,
    thin: int | None = None,
    diagnostics: bool = False,
    cuda_graph: bool = True,
    compile: bool | str = "auto",
    clip_value: float | None = None,
    check_finite: bool = True,
) -> SamplerOutput:
    """Run ``steps`` Langevin steps on the energy ``energy`` from the chain states ``x``.

    Args:
        energy: callable or nn.Module mapping x [B, ...] to E [B]; chains must not interact
            (e.g. BatchNorm in eval mode). A registered model (``GenerativeConvNet``) samples
            its own density exp(f) N(0, sigma^2).
        x: [B, ...] initial states (a floating-point tensor); not modified, and the chain is not
            differentiated.
        steps: number of updates, >= 0 (0 returns a copy of x).
        update: ``GCNStep(delta, sigma)``, ``SGLDStep(step_size, noise_std)`` or
            ``TorchEBMStep(step_size, noise_scale)`` for every step, or a schedule: a sequence of
            ``steps`` of them (or of ``UpdateRule``), step t running entry t; see
            ``genconv.bindings.update_rules``. A registered model's schedule takes GCNSteps only
            or none.
        temperature: T >= 0; multiplies the noise std by sqrt(T) (calibrated forms sample exp(-E/T)).
        clamp: (low, high) bounds applied to the states after every step.
        max_grad_norm: clip each chain's dE/dx to this L2 norm (over all its elements) first.
        clip_value: clamp each element of dE/dx to [-clip_value, clip_value] (before max_grad_norm).
        mala: accept or reject each proposal (Metropolis-adjusted Langevin); the chain then
            leaves exp(-U/T_rule) exactly invariant (see ``UpdateRule``). Not with ``clamp``.
        seed / generator: the noise stream (a generator only draws the seed); neither = torch's RNG.
        start_step: counter of the first step, to continue a stream (``SamplerOutput.next_step``).
        noise: standard normals to use instead of the counter-based stream: [steps, B, ...], or a
            function step -> [B, ...] (e.g. to replay a torch.Generator's draws).
        gradient: a function x -> dE/dx to use instead of autograd (e.g. an analytic score).
        callback: called as callback(step_index, states) after every step, before the next step's
            gradient (so a parameter of the energy it changes holds for that step).
        thin: keep the states after every ``thin``-th step in ``trajectory``.
        diagnostics: record U(x), ||dE/dx|| (and MALA decisions) per step and chain.
        cuda_graph: on CUDA, record the chain of an nn.Module energy in a CUDA graph the second
            time the same shapes come (no MALA, callback, thin, diagnostics, noise or gradient);
            the energy's forward must depend only on x and its parameters and buffers.
        compile: capture the chain with torch.compile (CUDA graphs too on CUDA) and replay it; see
            ``genconv.bindings.compiled_chain``. True: compile now (the first call of a shape pays
            seconds of compile time); False: eager; "auto": compile once chains of the same
            energy object, shape, dtype, device and options have run ``AUTO_STEPS`` (20,000) steps
            eagerly in this process. Compiled: the unadjusted chain with temperature, schedules,
            clamp, max_grad_norm and clip_value, the gradient by torch.func.grad; MALA, callback,
            thin, diagnostics, noise and gradient run eagerly (compile ignored). The energy must be
            the same object across calls to reuse its compiled chain, and traceable by torch.compile
            (if not, one warning and the eager chain). Same noise stream: the result equals the
            eager chain's to float rounding.
        check_finite: refuse non-finite starting states, and raise ``ChainDivergedError`` naming the
            first step whose states became NaN/Inf (e.g. an energy or gradient returning NaN);
            checked with one device sync at the end (a compiled or recorded chain names no
            step). False lets such chains continue.
    Returns:
        SamplerOutput with the final states (a new tensor) and whatever was asked for.
    Raises:
        InputTypeError: x is not a floating-point torch tensor (a NumPy array, an integer or
        complex tensor); ConfigError: other bad arguments; ChainDivergedError: see check_finite.

    Example:
        >>> out = sample_langevin(lambda x: 0.5 * x.pow(2).sum(1), torch.zeros(8, 2), steps=50,
        ...                       update=SGLDStep(step_size=0.01, noise_std=0.1), seed=0)
        >>> out.x.shape
        torch.Size([8, 2])
    """
    _check_arguments(energy, x, steps, update, temperature, clamp, max_grad_norm, start_step, noise, thin, gradient)
    if not (isinstance(compile, bool) or compile == "auto"):
        raise ConfigError(f"compile must be 'auto', True or False; got {compile!r}")
    if clip_value is not None and not (isinstance(clip_value, (int, float)) and math.isfinite(clip_value)
                                       and clip_value > 0):  # fmt: skip
        raise ConfigError(f"clip_value must be a finite number > 0 or None, got {clip_value!r}")
    clamp = check_clamp(clamp)
    steps, start_step, thin = int(steps), int(start_step), None if thin is None else int(thin)
    x = x.detach()  # the chain is sampled, not differentiated: no autograd graph across steps
    if check_finite and not bool(torch.isfinite(x).all()):
        raise ConfigError("x holds NaN or infinite values: chains must start from finite states")
    run_seed = seed_from(seed, generator)
    fast_chain = _fast_chain_for(energy)
    if fast_chain is not None:
        plain_gcn = isinstance(update, GCNStep) and temperature == 1.0 and max_grad_norm is None
        if plain_gcn and not mala and gradient is None and not callable(noise):
            options = {"steps": steps, "seed": run_seed, "start_step": start_step, "noise": noise, "clamp": clamp,
                       "check_finite": check_finite}  # fmt: skip
            return _run_fast_chain(fast_chain, energy, x, update, options, callback, thin, diagnostics, cuda_graph)
        energy, update = _model_energy(energy, update)
    rules = _StepRules(update, temperature)
    if mala and (clamp is not None or rules.least_noise_std() == 0):
        raise ConfigError(
            "mala needs a proposal with a density: no clamp (clamp the energy instead) and a noise std > 0 "
            f"(got clamp={clamp}, noise std {rules.least_noise_std()})"
        )
    chain = _Chain(energy, gradient, rules, max_grad_norm, clamp, clip_value)
    plain = not (mala or diagnostics or callback is not None or thin is not None or noise is not None)
    if plain and gradient is None and steps > 0:
        spec = ChainSpec(block_size(steps, x.numel()), clamp, max_grad_norm, clip_value)
        key = (id(energy), tuple(x.shape), x.dtype, x.device, spec)
        if COMPILED_CHAINS.wants(key, energy, steps, compile):
            counter = ops.noise_counter(run_seed, start_step * x.numel(), x.device)
            compiled = COMPILED_CHAINS.run(key, energy, spec, x, counter, _rule_table(rules, steps, spec, x.device))
            if compiled is not None:
                if check_finite and not bool(torch.isfinite(compiled).all()):
                    raise _diverged(None, steps, start_step)
                return SamplerOutput(x=compiled, seed=run_seed, next_step=start_step + steps)
    if plain and gradient is None and cuda_graph and _graph_eligible(energy, x, steps, rules):
        key = _graph_key(energy, x, steps, rules.key, clamp, max_grad_norm)
        replayed = CHAIN_GRAPHS.run(key, x, run_seed, start_step * x.numel(), chain.run_plain(steps))
        if replayed is not None:
            if check_finite and not bool(torch.isfinite(replayed).all()):
                raise _diverged(None, steps, start_step)
            return SamplerOutput(x=replayed, seed=run_seed, next_step=start_step + steps)
    return chain.run(x, steps, run_seed, start_step, mala, noise, callback, thin, diagnostics, check_finite)


def _diverged(step: int | None, steps: int, start_step: int) -> ChainDivergedError:
    where = f"at step {step} of {steps}" if step is not None else f"within {steps} steps"
    counter = start_step + (step or steps) - 1
    return ChainDivergedError(
        f"Langevin chains became NaN/Inf {where} (noise counter step {counter}); lower the step size, clip the "
        "gradient (max_grad_norm) or check the energy and its gradient for NaN",
        step,
    )


def _check_arguments(energy, x, steps, update, temperature, clamp, max_grad_norm, start_step, noise, thin, gradient):
    if not callable(energy):
        raise ConfigError(f"energy must be a callable or nn.Module mapping x [B, ...] to E [B]; got {type(energy)}")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        hint = " (torch.from_numpy(array).float() makes one)" if type(x).__module__ == "numpy" else ""
        raise InputTypeError(
            f"x must be a floating-point tensor [B, ...] (integer or complex states would be truncated); "
            f"got {_describe(x)}{hint}"
        )
    if x.dim() < 1 or x.shape[0] < 1:
        raise ConfigError(f"x must be a floating-point tensor [B, ...] with B >= 1; got {_describe(x)}")
    if not isinstance(update, STEP_FORMS) and not _is_schedule(update):
        raise ConfigError(
            "update must be GCNStep(delta, sigma), SGLDStep(step_size, noise_std) or "
            "TorchEBMStep(step_size, noise_scale), or a sequence of them (or of UpdateRule) with one per step; "
            f"got {update!r}"
        )
    for name, value in (("steps", steps), ("start_step", start_step)):
        if not _is_integer(value) or value < 0:
            raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
    if not isinstance(update, STEP_FORMS) and len(update) != steps:
        raise ConfigError(f"a schedule needs one update per step: got {len(update)} for steps={steps}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
        raise ConfigError(f"temperature must be a finite number >= 0, got {temperature!r}")
    check_clamp(clamp)
    if max_grad_norm is not None and not (math.isfinite(max_grad_norm) and max_grad_norm > 0):
        raise ConfigError(f"max_grad_norm must be a finite number > 0 or None, got {max_grad_norm!r}")
    if thin is not None and (not _is_integer(thin) or thin < 1):
        raise ConfigError(f"thin must be an integer >= 1 or None, got {thin!r}")
    expected_noise = ", ".join(map(str, (steps, *x.shape)))
    if isinstance(noise, torch.Tensor):
        if not noise.is_floating_point():
            raise InputTypeError(f"noise must be a floating-point tensor of standard normals; got {_describe(noise)}")
        if noise.dim() != x.dim() + 1 or noise.shape[0] < steps or noise.shape[1:] != x.shape:
            raise ConfigError(f"noise must be a tensor [{expected_noise}] or a function step -> [B, ...]; got "
                              f"{_describe(noise)}")  # fmt: skip
    elif noise is not None and not callable(noise):
        raise ConfigError(f"noise must be a tensor [{expected_noise}] or a function step -> [B, ...]; got {noise!r}")
    if gradient is not None and not callable(gradient):
        raise ConfigError(f"gradient must be a function x -> dE/dx or None; got {type(gradient)}")


def check_clamp(clamp: object) -> tuple[float, float] | None:
    """``clamp`` as (low, high) floats, or None; ConfigError unless it is a pair with finite low < high."""
    if clamp is None:
        return None
    pair = isinstance(clamp, (tuple, list)) and len(clamp) == 2 and all(isinstance(v, (int, float)) for v in clamp)
    if not (pair and math.isfinite(clamp[0]) and math.isfinite(clamp[1]) and clamp[0] < clamp[1]):
        raise ConfigError(f"clamp must be (low, high) with finite low < high, got {clamp!r}")
    return float(clamp[0]), float(clamp[1])


def _is_schedule(update: object) -> bool:
    return isinstance(update, Sequence) and all(isinstance(form, (*STEP_FORMS, UpdateRule)) for form in update)


def _is_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _describe(value: object) -> str:
    """A short, one-line account of a value for an error message."""
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} tensor of shape {list(value.shape)}"
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)[:80]
    shape = getattr(value, "shape", None)
    of_shape = f" of shape {list(shape)}" if isinstance(shape, tuple) else ""
    return f"{type(value).__module__}.{type(value).__name__}{of_shape}"


def _model_energy(model: Any, update: StepForm | Schedule) -> tuple[EnergyFn, StepForm | Schedule]:
    """A registered GCN as an energy: -f with the reference folded into the GCN form, else its full energy."""
    forms = [update] if isinstance(update, STEP_FORMS) else list(update)
    gcn = [isinstance(form, GCNStep) for form in forms]
    if not any(gcn):
        return model.energy, update
    if not all(gcn):
        raise ConfigError(f"a schedule for a {type(model).__name__} takes GCNSteps only or none; got {update!r}")
    folded = [GCNStep(form.delta, model.sigma if form.sigma is None else form.sigma) for form in forms]
    return (lambda states: -model.f(states)), folded[0] if isinstance(update, STEP_FORMS) else folded


def _run_fast_chain(
    fast_chain: Callable[..., Any],
    model: Any,
    x: torch.Tensor,
    update: GCNStep,
    options: dict[str, Any],
    callback: Callable[[int, torch.Tensor], None] | None,
    thin: int | None,
    diagnostics: bool,
    cuda_graph: bool,
) -> SamplerOutput:
    """The registered model's own fused chain; ``options`` are its steps, seed, start_step, noise, clamp."""
    kept: list[torch.Tensor] = []

    def on_step(step: int, states: torch.Tensor) -> None:
        if thin is not None and (step + 1) % thin == 0:
            kept.append(states)
        if callback is not None:
            callback(step, states)

    wants_steps = callback is not None or thin is not None
    result = fast_chain(
        model,
        x,
        delta=update.delta,
        sigma=update.sigma,
        diagnostics=diagnostics,
        callback=on_step if wants_steps else None,
        cuda_graph=cuda_graph,
        **options,
    )
    found = None
    if diagnostics:
        found = SamplerDiagnostics(energy=result.diagnostics.energy, grad_norm=result.diagnostics.grad_norm)
    trajectory = _stack(kept, x) if thin is not None else None
    return SamplerOutput(x=result.x, seed=result.seed, next_step=result.next_step, trajectory=trajectory,
                         diagnostics=found)  # fmt: skip


def _stack(states: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    return torch.stack(states) if states else like.new_zeros((0, *like.shape))


def _batch_view(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[B] per-chain values shaped to broadcast against [B, ...]."""
    return values.view(-1, *([1] * (like.dim() - 1)))


class _StepRules:
    """The update rule of each step of a run: one for every step, or a schedule of ``steps`` rules."""

    def __init__(self, update: StepForm | Schedule, temperature: float) -> None:
        if isinstance(update, STEP_FORMS):
            self.constant: UpdateRule | None = update.rule(temperature)
            self.rules: tuple[UpdateRule, ...] = (self.constant,)
        else:
            self.rules = tuple(rule_of(form, temperature) for form in update)
            self.constant = self.rules[0] if self.rules and all(r == self.rules[0] for r in self.rules) else None

    def __getitem__(self, step: int) -> UpdateRule:
        return self.constant if self.constant is not None else self.rules[step]

    def least_noise_std(self) -> float:
        return min((rule.noise_std for rule in self.rules), default=math.inf)

    @property
    def key(self) -> Hashable:
        """What a recorded chain bakes in: the rule, or each step's when they differ."""
        return self.constant if self.constant is not None else self.rules


class _Chain:
    """One run's energy, gradient, update rules, clipping and clamp; steps chains with them."""

    def __init__(
        self,
        energy: EnergyFn,
        gradient: Callable[[torch.Tensor], torch.Tensor] | None,
        rules: _StepRules,
        max_grad_norm: float | None,
        clamp: tuple[float, float] | None,
        clip_value: float | None = None,
    ) -> None:
        self.energy, self.gradient, self.rules = energy, gradient, rules
        self.max_grad_norm, self.clip_value = max_grad_norm, clip_value
        self.clamp = None if clamp is None else [float(clamp[0]), float(clamp[1])]

    def energy_and_grad(self, x: torch.Tensor, need_energy: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
        """E(x) [B] (when needed or free) and dE/dx, shaped like x."""
        if self.gradient is not None:
            grad = self.gradient(x)
            if grad.shape != x.shape:
                raise ConfigError(f"gradient(x) must have the shape of x, {list(x.shape)}; got {list(grad.shape)}")
            if not need_energy:
                return None, grad
            with torch.no_grad():
                value = self.energy(x)
            self._check_energy(value, x)
            return value, grad
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            value = self.energy(leaf)
            self._check_energy(value, x)
            grad = torch.autograd.grad(value.sum(), leaf, allow_unused=True)[0] if value.requires_grad else None
        if grad is None:
            raise ConfigError("energy(x) does not depend on x: there is no gradient to follow")
        return value.detach(), grad

    @staticmethod
    def _check_energy(value: object, x: torch.Tensor) -> None:
        if not isinstance(value, torch.Tensor) or value.shape != (x.shape[0],):
            raise ConfigError(f"energy must map x [B, ...] to E [B] = [{x.shape[0]}]; got {_describe(value)}")

    def clip(self, grad: torch.Tensor, with_norms: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """dE/dx with each element clamped to clip_value and then each chain's norm capped at
        max_grad_norm, and the norms before any clipping (when asked for)."""
        raw_norms = grad.flatten(1).to(accumulation_dtype(grad.dtype)).norm(dim=1) if with_norms else None
        if self.clip_value is not None:
            grad = grad.clamp(-self.clip_value, self.clip_value)
        if self.max_grad_norm is None:
            return grad, raw_norms
        norms = grad.flatten(1).to(accumulation_dtype(grad.dtype)).norm(dim=1)
        factor = (self.max_grad_norm / norms.clamp_min(torch.finfo(torch.float32).tiny)).clamp(max=1.0)
        return grad * _batch_view(factor, grad).to(grad.dtype), raw_norms if with_norms else norms

    def step(
        self,
        rule: UpdateRule,
        x: torch.Tensor,
        grad: torch.Tensor,
        counter: torch.Tensor,
        offset: int,
        noise: torch.Tensor | None,
        clamp: list[float] | None,
    ) -> torch.Tensor:
        """One update of ``rule`` from states x with (clipped) gradient grad."""
        if rule.noise_std == 0:
            # The op ties its noise std to its step size; a noise-free step is plain torch.
            x_acc = x.to(accumulation_dtype(x.dtype))
            new = x_acc - rule.drift * grad.to(x_acc.dtype) - rule.decay * x_acc
            return (new if clamp is None else new.clamp(clamp[0], clamp[1])).to(x.dtype)
        scale, delta, sigma = rule.op_arguments()
        # Outside torch.compile the op's body runs directly: no dispatch cost per step.
        update = ops.langevin_update if torch.compiler.is_compiling() else ops.langevin_update_direct
        return update(x, grad * scale, delta, sigma, counter, offset, noise, clamp)

    def run_plain(self, steps: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The unadjusted chain as runner(states, counter): what a CUDA graph records."""

        def runner(states: torch.Tensor, counter: torch.Tensor) -> torch.Tensor:
            numel = states.numel()
            for step in range(steps):
                _, grad = self.energy_and_grad(states, need_energy=False)
                clipped, _ = self.clip(grad, with_norms=False)
                states = self.step(self.rules[step], states, clipped, counter, step * numel, None, self.clamp)
            return states

        return runner

    def run(
        self,
        x: torch.Tensor,
        steps: int,
        seed: int,
        start_step: int,
        mala: bool,
        noise: NoiseSource | None,
        callback: Callable[[int, torch.Tensor], None] | None,
        thin: int | None,
        diagnostics: bool,
        check_finite: bool = True,
    ) -> SamplerOutput:
        numel, batch = x.numel(), x.shape[0]
        flags: list[torch.Tensor] = []  # per step: were any states non-finite (checked once, at the end)
        counter = ops.noise_counter(seed, start_step * numel, x.device)
        need_energy = mala or diagnostics
        value, grad = self.energy_and_grad(x, need_energy) if steps else (None, None)
        records: list[tuple[torch.Tensor, ...]] = []
        kept: list[torch.Tensor] = []
        accepted_total = torch.zeros(batch, dtype=torch.float32, device=x.device) if mala else None
        state = x
        for step in range(steps):
            rule = self.rules[step]
            clipped, norms = self.clip(grad, with_norms=diagnostics)
            step_noise = _noise_at(noise, step, state)
            proposal = self.step(rule, state, clipped, counter, step * numel, step_noise, None if mala else self.clamp)
            accept = None
            if mala:
                log_u = _log_uniforms(seed, (start_step + step) * batch, batch, x.device)
                new_value, new_grad = self.energy_and_grad(proposal, need_energy=True)
                new_clipped, _ = self.clip(new_grad, with_norms=False)
                log_alpha = self._log_acceptance(rule, state, value, clipped, proposal, new_value, new_clipped)
                accept = log_u < log_alpha
                accepted_total += accept.float()
            if diagnostics:
                total = rule.target_energy(value, state).to(norms.dtype)
                records.append((total, norms) if accept is None else (total, norms, accept))
            if mala:
                gate = _batch_view(accept, state)
                state = torch.where(gate, proposal, state)
                value = torch.where(accept, new_value, value)
                grad = torch.where(gate, new_grad, grad)
            else:
                state = proposal
            if check_finite:
                flags.append(~torch.isfinite(state).all())
            if thin is not None and (step + 1) % thin == 0:
                kept.append(state)
            if callback is not None:
                callback(step, state)
            # After the callback: what it changes (e.g. a scheduled parameter of the energy) holds for the next step.
            if not mala and step + 1 < steps:
                value, grad = self.energy_and_grad(state, need_energy)
        if flags:
            bad = torch.stack(flags)
            if bool(bad.any()):
                raise _diverged(int(bad.nonzero()[0, 0]) + 1, steps, start_step)
        return SamplerOutput(
            x=state if steps else state.clone(),
            seed=seed,
            next_step=start_step + steps,
            acceptance_rate=None if accepted_total is None else accepted_total / max(steps, 1),
            trajectory=_stack(kept, x) if thin is not None else None,
            diagnostics=_stack_diagnostics(records, batch, x.device, mala) if diagnostics else None,
        )

    def _log_acceptance(
        self,
        rule: UpdateRule,
        x: torch.Tensor,
        value: torch.Tensor,
        clipped: torch.Tensor,
        proposal: torch.Tensor,
        new_value: torch.Tensor,
        new_clipped: torch.Tensor,
    ) -> torch.Tensor:
        """log of the MALA acceptance ratio, per chain (float64).

        pi(x') q(x | x') / (pi(x) q(x' | x)) with pi = exp(-U/T) and q(y | x) = N(y; mean(x),
        noise_std^2 I), mean(x) = x - drift * clipped dE/dx - decay * x, with this step's rule.
        """
        forward = (proposal.to(torch.float64) - rule.mean(x, clipped)).flatten(1).pow(2).sum(dim=1)
        backward = (x.to(torch.float64) - rule.mean(proposal, new_clipped)).flatten(1).pow(2).sum(dim=1)
        energy_drop = rule.target_energy(value, x) - rule.target_energy(new_value, proposal)
        return energy_drop / rule.temperature + (forward - backward) / (2.0 * rule.noise_std**2)


def _noise_at(noise: NoiseSource | None, step: int, like: torch.Tensor) -> torch.Tensor | None:
    if noise is None:
        return None
    values = noise[step] if isinstance(noise, torch.Tensor) else noise(step)
    if not isinstance(values, torch.Tensor) or values.shape != like.shape:
        raise ConfigError(f"noise for step {step} must be a tensor shaped like x, {list(like.shape)}; got "
                          f"{_describe(values)}")  # fmt: skip
    return values


def _log_uniforms(seed: int, offset: int, batch: int, device: torch.device) -> torch.Tensor:
    """log U(0, 1) numbers for the MALA decisions, counter-based on a stream of their own."""
    normals = resolve_backend("auto", device).standard_normal(derive_seed(seed, _MALA_STREAM), offset, (batch,), device)
    return torch.special.log_ndtr(normals.to(torch.float64))


def _stack_diagnostics(
    records: list[tuple[torch.Tensor, ...]], batch: int, device: torch.device, mala: bool
) -> SamplerDiagnostics:
    if not records:
        empty = torch.zeros((0, batch), device=device)
        return SamplerDiagnostics(empty, empty.clone(), empty.bool() if mala else None)
    columns = [torch.stack(column) for column in zip(*records, strict=True)]
    return SamplerDiagnostics(columns[0], columns[1], columns[2] if mala else None)


def _rule_table(rules: _StepRules, steps: int, spec: ChainSpec, device: torch.device) -> list[torch.Tensor]:
    """Each block's (drift, decay, noise_std) per step, as float64 [3, steps per block] tensors."""
    rows = [(rule.drift, rule.decay, rule.noise_std) for rule in (rules[step] for step in range(steps))]
    table = torch.tensor(rows, dtype=torch.float64).view(-1, spec.steps_per_block, 3).transpose(1, 2)
    return [block.contiguous().to(device) for block in table]


def _graph_eligible(energy: object, x: torch.Tensor, steps: int, rules: _StepRules) -> bool:
    return (
        x.is_cuda and isinstance(energy, nn.Module) and steps > 0 and rules.least_noise_std() > 0
        and graphs_enabled()
    )  # fmt: skip


def _graph_key(energy: nn.Module, x, steps, rules, clamp, max_grad_norm) -> Hashable:
    """Everything a recorded chain bakes in, each step's update rule included (a schedule's values are
    arguments of the recorded launches); tensors enter by address (in-place updates are fine)."""
    tensors = tuple((t.data_ptr(), tuple(t.shape), t.dtype) for t in itertools.chain(energy.parameters(),
                                                                                      energy.buffers()))  # fmt: skip
    return (id(energy), energy.training, tensors, tuple(x.shape), x.dtype, x.device, steps, rules, clamp, max_grad_norm)
