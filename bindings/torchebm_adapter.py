"""``TorchEBMSampler``: a drop-in for TorchEBM 0.8.9's ``LangevinDynamics`` on genconv's fused update.

Same constructor (``model, step_size, noise_scale, decay, clamp, dtype, device, integrator``, same
validation and errors), same schedulers, same ``sample`` contract (trajectory [n_samples,
n_steps // thin, ...], diagnostics "mean", "var", "energy"), same ``state_dict`` keys, so
TorchEBM's losses and checkpoints take it in place of theirs. With the Euler-Maruyama integrator
the update x - step_size dE/dx + noise_scale sqrt(2 step_size) z runs in genconv's fused
``genconv::langevin_update``; any other integrator runs TorchEBM's own chain.

Importing this module needs the optional ``torchebm`` package (``pip install 'genconv[torchebm]'``).
"""

import math
from typing import Any

import torch

from genconv.bindings.errors import ConfigError
from genconv.bindings.sampler import NoiseSource, SamplerOutput, check_clamp, sample_langevin
from genconv.bindings.seeding import derive_seed, seed_from
from genconv.bindings.update_rules import TorchEBMStep, UpdateRule

try:
    from torchebm.core import BaseModel, BaseSampler, BaseScheduler, BaseSDERungeKuttaIntegrator, Schedulable
    from torchebm.integrators import EulerMaruyamaIntegrator
    from torchebm.integrators.integrator_utils import resolve_integrator
    from torchebm.samplers.langevin_dynamics import LangevinDynamics
except ImportError as error:  # pragma: no cover - exercised only without torchebm
    raise ImportError("genconv.TorchEBMSampler needs TorchEBM: pip install 'genconv[torchebm]'") from error

NOISE_SOURCES: tuple[str, ...] = ("philox", "torch")
# The call counter travels in the state dict's per-module metadata, not as a key, so that the
# keys stay exactly LangevinDynamics' and checkpoints load strictly both ways.
CALLS_METADATA = "genconv_calls"

# TorchEBM's own chain, for integrators other than Euler-Maruyama; bound here so that replacing
# ``torchebm.samplers.LangevinDynamics`` by this class cannot make it call itself.
_torchebm_sample = LangevinDynamics.sample


class TorchEBMSampler(BaseSampler):
    """TorchEBM's ``LangevinDynamics`` with genconv's fused update, MALA, clipping and seeded noise.

    Which path runs: with the Euler-Maruyama integrator (``integrator`` None, "euler_maruyama",
    "euler" or an ``EulerMaruyamaIntegrator``) genconv's fused update runs the chain; any other
    SDE integrator ("heun", "rk4", an instance, ...) runs TorchEBM's own ``LangevinDynamics``
    chain with it, noise drawn from the call's generator, and genconv's extras do not apply.
    Scheduled ``step_size`` / ``noise_scale`` are read for the call's steps up front (get_value,
    then step, per step, as LangevinDynamics reads them) and run as a per-step schedule.

    Args:
        model: a TorchEBM ``BaseModel`` (energy x [B, ...] -> [B]; its ``gradient`` is used).
        step_size: TorchEBM's eta: a number > 0 or a TorchEBM ``BaseScheduler``.
        noise_scale: TorchEBM's noise_scale: a number > 0 or a ``BaseScheduler``.
        decay: stored and unused, as in TorchEBM 0.8.9.
        clamp: optional (low, high) bounds applied after every step.
        dtype, device: as for TorchEBM samplers.
        integrator: None, a TorchEBM SDE integrator name or instance (see above).

    The constructor is ``LangevinDynamics``' own, parameter for parameter; genconv's extras are set
    with ``configure``, which returns the sampler:

        temperature: multiplies the noise std by sqrt(T).
        max_grad_norm: clip each chain's dE/dx to this L2 norm first.
        mala: Metropolis-adjusted steps; ``last_acceptance_rate`` holds the per-chain rates.
        seed: None draws each call's noise seed from the call's generator (or torch's RNG);
            an integer gives call k the seed derive_seed(seed, k); the count of calls is saved
            in the state dict's metadata (with noise_source "torch" the seed only drives MALA).
        noise_source: "philox" (counter-based, in-kernel on CUDA) or "torch" (the generator's
            draws, step by step, as LangevinDynamics makes them); None: "philox" on the fused
            path, "torch" on TorchEBM's.
        compile: ``sample_langevin``'s compile ("auto", True, False): the whole chain captured
            with torch.compile. It applies to plain calls (no trajectory, diagnostics, MALA,
            model_kwargs, model-side schedulers, torch noise) of a model that keeps BaseModel's
            autograd ``gradient``; the model is then differentiated by torch.func.grad.

    Example:
        >>> sampler = TorchEBMSampler(energy_model, step_size=0.01, noise_scale=0.1).configure(seed=0)
        >>> loss = ContrastiveDivergence(model=energy_model, sampler=sampler, k_steps=10)
    """

    def __init__(
        self,
        model: torch.nn.Module,
        step_size: float | BaseScheduler = 1e-3,
        noise_scale: float | BaseScheduler = 1.0,
        decay: float = 0.0,
        clamp: tuple[float, float] | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        integrator: str | BaseSDERungeKuttaIntegrator | None = None,
    ) -> None:
        super().__init__(model=model, dtype=dtype, device=device)
        for name, value in (("step_size", step_size), ("noise_scale", noise_scale)):
            self._register_param(name, _checked_parameter(name, value), positive=True)
        self.clamp = check_clamp(clamp)
        self.decay = decay
        self.integrator = resolve_integrator(
            integrator,
            default="euler_maruyama",
            family=BaseSDERungeKuttaIntegrator,
            owner=type(self).__name__,
            device=self.device,
            dtype=self.dtype,
        )
        self.configure()
        self.calls = 0
        self.last_acceptance_rate: torch.Tensor | None = None
        self.register_state_dict_post_hook(_save_calls)
        self.register_load_state_dict_pre_hook(_load_calls)

    def configure(
        self,
        *,
        temperature: float = 1.0,
        max_grad_norm: float | None = None,
        mala: bool = False,
        seed: int | None = None,
        noise_source: str | None = None,
        compile: bool | str = "auto",
    ) -> "TorchEBMSampler":
        """Set genconv's extras (see the class docstring); those not named return to their defaults."""
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
            raise ConfigError(f"temperature must be a finite number >= 0, got {temperature!r}")
        if noise_source is not None and noise_source not in NOISE_SOURCES:
            raise ConfigError(f"noise_source must be one of {', '.join(NOISE_SOURCES)}; got {noise_source!r}")
        self.temperature = temperature
        self.max_grad_norm = max_grad_norm
        self.mala = mala
        self.seed = None if seed is None else seed_from(seed, None)
        self._noise_source = noise_source
        if not (isinstance(compile, bool) or compile == "auto"):
            raise ConfigError(f"compile must be 'auto', True or False; got {compile!r}")
        self.compile = compile
        self._check_extras()
        return self

    @property
    def fused(self) -> bool:
        """Whether ``sample`` runs genconv's fused update (the integrator is Euler-Maruyama)."""
        return type(self.integrator) is EulerMaruyamaIntegrator

    @property
    def noise_source(self) -> str:
        """The noise source: the one given, else "philox" on the fused path and "torch" on TorchEBM's."""
        if self._noise_source is not None:
            return self._noise_source
        return "philox" if self.fused else "torch"

    def _check_extras(self) -> None:
        """genconv's extras act on the fused update only; with another integrator they are refused."""
        if self.fused:
            return
        asked = {
            "mala": self.mala,
            "max_grad_norm": self.max_grad_norm is not None,
            "temperature": self.temperature != 1.0,
            "seed": self.seed is not None,
            "noise_source='philox'": self._noise_source == "philox",
        }
        refused = [name for name, given in asked.items() if given]
        if refused:
            raise ConfigError(
                f"{', '.join(refused)} need the Euler-Maruyama integrator (genconv's fused update); "
                f"{type(self.integrator).__name__} runs TorchEBM's own chain"
            )

    def _call_seed(self, generator: torch.Generator | None) -> int:
        """This call's noise seed. With torch noise it only seeds MALA's decisions and is not drawn
        from an RNG, which would shift the noise LangevinDynamics draws from the same generator."""
        if self.seed is None and self.noise_source == "philox":
            return seed_from(None, generator)
        self.calls += 1
        return derive_seed(self.seed or 0, self.calls)

    @torch.no_grad()
    def sample(
        self,
        x: torch.Tensor | None = None,
        dim: int | tuple[int, ...] | None = None,
        n_steps: int = 100,
        n_samples: int = 1,
        thin: int = 1,
        return_trajectory: bool = False,
        return_diagnostics: bool = False,
        reset_schedulers: bool = True,
        *,
        y: torch.Tensor | None = None,
        model_kwargs: dict[str, Any] | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Run ``n_steps`` steps from ``x`` (or N(0, I) states of shape ``dim``); TorchEBM's contract.

        Args:
            x: [n_samples, ...] initial states, or None to draw them from N(0, I) with ``generator``.
            dim: state shape when x is None; n_steps: steps; n_samples: chains when x is None.
            thin: keep every ``thin``-th state for the trajectory and diagnostics.
            return_trajectory: return [n_samples, n_steps // thin, ...] instead of the final states.
            return_diagnostics: also return {"mean", "var" [n_kept, ...], "energy" [n_kept],
                "acceptance_rate" [n_kept] (MALA)}.
            reset_schedulers: reset every scheduler of the sampler and its model to step 0 first
                (False: continue a schedule driven across calls).
            y, model_kwargs: conditioning forwarded to the model.
            generator: the initial states' and (noise_source "torch") the noise's RNG; with
                ``seed`` None it also draws the call's noise seed.
        Returns:
            the samples or trajectory, and with ``return_diagnostics`` the diagnostics dict.
        """
        if isinstance(thin, bool) or not isinstance(thin, int) or thin < 1:
            raise ConfigError(f"thin must be an integer >= 1, got {thin!r}")
        self._check_extras()
        if not self.fused:
            self.last_acceptance_rate = None
            return _torchebm_sample(self, x, dim, n_steps, n_samples, thin, return_trajectory, return_diagnostics,
                                    reset_schedulers, y=y, model_kwargs=model_kwargs, generator=generator)  # fmt: skip
        if reset_schedulers:
            self.reset_schedulers()
        x = self._init_state(x, dim, n_samples, generator)
        kwargs = self._prepare_model_kwargs(self._merge_condition(model_kwargs, y))
        update = self._scheduled_update(n_steps)
        stats: dict[str, list[torch.Tensor]] = {"mean": [], "var": [], "energy": []}
        inner = self._inner_schedulables()

        def after_step(step: int, states: torch.Tensor) -> None:
            for module in inner:
                for scheduler in module.schedulers.values():
                    scheduler.step()
            if not return_diagnostics or (step + 1) % thin:
                return
            stats["mean"].append(states.mean(dim=0))
            spread = states.var(dim=0, unbiased=False).clamp(1e-10, 1e10) if len(states) > 1 else states[0] * 0
            stats["var"].append(spread)
            stats["energy"].append(self._model_energy(states, kwargs).mean())

        plain = not (return_diagnostics or return_trajectory or inner or self.mala or kwargs)
        whole_model = plain and self.noise_source == "philox" and self._autograd_gradient()
        with self.autocast_context():
            out = sample_langevin(
                self.model if whole_model else lambda states: self._model_energy(states, kwargs),
                x,
                steps=n_steps,
                update=update,
                temperature=self.temperature,
                clamp=self.clamp,
                max_grad_norm=self.max_grad_norm,
                mala=self.mala,
                seed=self._call_seed(generator),
                noise=self._noise(x, generator),
                gradient=None if whole_model else lambda states: self._model_gradient(states, kwargs),
                callback=after_step if (return_diagnostics or inner) else None,
                thin=thin if return_trajectory else None,
                diagnostics=self.mala and return_diagnostics,
                compile=self.compile if whole_model else False,
            )
        self.last_acceptance_rate = out.acceptance_rate
        result = out.trajectory.transpose(0, 1) if return_trajectory else out.x
        if not return_diagnostics:
            return result
        return result, self._diagnostics(stats, out, x, n_steps // thin, thin)

    def _autograd_gradient(self) -> bool:
        """Whether the model keeps BaseModel's autograd gradient in the sampler's dtype (no analytic
        override, no fp32 forcing): then the chain may differentiate the model itself."""
        model = self.model
        default = getattr(type(model), "gradient", None) is BaseModel.gradient
        forced = getattr(model, "force_fp32_gradient", False) and self.dtype != torch.float32
        return default and not forced and getattr(model, "device", None) in (None, self.device)

    def _scheduled_update(self, n_steps: int) -> TorchEBMStep | list[TorchEBMStep | UpdateRule]:
        """Each step's update from the schedulers, read and advanced as LangevinDynamics does per step.

        The sampler's own schedulers are advanced here, all K steps up front; those of the model
        (e.g. an ``InteractionModel``'s strength) advance after each step, during the chain.
        """
        forms: list[TorchEBMStep | UpdateRule] = []
        for step in range(max(int(n_steps), 0)):
            step_size = self.get_scheduled_value("step_size")
            noise_scale = self.get_scheduled_value("noise_scale")
            forms.append(_torchebm_step(step, step_size, noise_scale))
            for scheduler in self.schedulers.values():
                scheduler.step()
        if forms and all(form == forms[0] for form in forms):
            return forms[0] if isinstance(forms[0], TorchEBMStep) else forms
        return forms

    def _inner_schedulables(self) -> list[Schedulable]:
        """The sampler's submodules (its model, ...) that hold schedulers of their own."""
        return [
            module for module in self.modules()
            if module is not self and isinstance(module, Schedulable) and module.schedulers
        ]  # fmt: skip

    def _noise(self, x: torch.Tensor, generator: torch.Generator | None) -> NoiseSource | None:
        if self.noise_source == "philox":
            return None
        return lambda _step: torch.randn(x.shape, generator=generator, dtype=self.dtype, device=self.device)

    def _diagnostics(
        self, stats: dict[str, list[torch.Tensor]], out: SamplerOutput, x: torch.Tensor, kept: int, thin: int
    ) -> dict[str, torch.Tensor]:
        found = {
            "mean": torch.stack(stats["mean"]) if kept else x.new_zeros((0, *x.shape[1:])),
            "var": torch.stack(stats["var"]) if kept else x.new_zeros((0, *x.shape[1:])),
            "energy": torch.stack(stats["energy"]).to(self.dtype) if kept else x.new_zeros(0),
        }
        if self.mala:
            accepted = out.diagnostics.accepted[thin - 1 :: thin][:kept]
            found["acceptance_rate"] = accepted.float().mean(dim=1).to(self.dtype)
        return found

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model={type(self.model).__name__}, "
            f"step_size={self.get_scheduled_value('step_size')}, "
            f"noise_scale={self.get_scheduled_value('noise_scale')}, "
            f"integrator={type(self.integrator).__name__})"
        )


def _checked_parameter(name: str, value: object) -> object:
    """A scheduler as it is; a number only when finite and > 0 (TorchEBM refuses <= 0 too)."""
    if isinstance(value, BaseScheduler):
        return value
    try:
        number = math.nan if isinstance(value, (bool, str, bytes)) else float(value)  # a 0-d tensor is fine
    except (TypeError, ValueError, RuntimeError):
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise ConfigError(f"{name} must be a finite number > 0 or a TorchEBM scheduler, got {value!r}")
    return number


def _torchebm_step(step: int, step_size: object, noise_scale: object) -> TorchEBMStep | UpdateRule:
    """Step ``step``'s update from its scheduled values. TorchEBM's noise enters as noise_scale^2,
    so a negative scheduled noise_scale acts as its absolute value; a step size of 0 leaves x as it is."""
    step_size, noise_scale = float(step_size), float(noise_scale)
    if not (math.isfinite(step_size) and step_size >= 0 and math.isfinite(noise_scale)):
        raise ConfigError(
            f"the schedulers give step {step} step_size={step_size}, noise_scale={noise_scale}; "
            "the chain needs a finite step_size >= 0 and a finite noise_scale"
        )
    if step_size == 0:
        return UpdateRule(0.0, 0.0, 0.0)
    return TorchEBMStep(step_size, abs(noise_scale))


def _save_calls(module: TorchEBMSampler, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    local_metadata[CALLS_METADATA] = module.calls


def _load_calls(module: TorchEBMSampler, state_dict: dict, prefix: str, local_metadata: dict, *args: object) -> None:
    """Restore the call count when the checkpoint carries it (a LangevinDynamics one does not)."""
    if CALLS_METADATA in local_metadata:
        module.calls = int(local_metadata[CALLS_METADATA])
