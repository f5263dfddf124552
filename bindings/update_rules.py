"""The three Langevin parameterisations genconv's sampler accepts, reduced to one update rule.

Every form is one step of

    x' = x - drift * dE/dx(x) - decay * x + noise_std * z,    z ~ N(0, I)

| form | drift | decay | noise_std | the unadjusted chain approximately samples |
|---|---|---|---|---|
| ``GCNStep(delta, sigma)`` | delta^2/2 | delta^2/(2 sigma^2) | delta | exp(-E(x) - ||x||^2/(2 sigma^2)) |
| ``SGLDStep(step_size, noise_std)`` | step_size | 0 | noise_std | exp(-E/T), T = noise_std^2/(2 step_size) |
| ``TorchEBMStep(step_size, noise_scale)`` | step_size | 0 | noise_scale sqrt(2 step_size) | exp(-E/noise_scale^2) |

GCNStep is the GCN paper's convention (noise std delta, drift delta^2/2) with the Gaussian
reference N(0, sigma^2) folded in (sigma None: no reference term). SGLDStep is the decoupled
form of IGEBM/JEM/short-run code, x - step_size dE/dx + noise_std z. TorchEBMStep is TorchEBM's
``LangevinDynamics`` (0.8.9, Euler-Maruyama with diffusion noise_scale^2):
x - step_size dE/dx + noise_scale sqrt(2 step_size) z. A ``temperature`` T multiplies the
noise std by sqrt(T), so the calibrated forms sample exp(-E/T).

The rule's ``temperature`` (noise_std^2 / (2 drift)) and reference std (sqrt(drift / decay))
define the density U it targets, exp(-U/T) with U = E + ||x||^2/(2 sigma_ref^2): what the
Metropolis-adjusted mode makes exact. ``langevin_update`` runs the rule on the fused op.

A chain takes one form for all its steps or a schedule, one form (or ``UpdateRule``) per step
(e.g. an annealed step size); ``rule_of`` gives a step's rule.
"""

import math
import numbers
from dataclasses import dataclass

import torch

from genconv.bindings.errors import ConfigError, InputTypeError


def _check_positive(name: str, value: float, *, zero_ok: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    ok = math.isfinite(value) and (value >= 0 if zero_ok else value > 0)
    if not ok:
        expected = "a finite number >= 0" if zero_ok else "a finite number > 0"
        raise ConfigError(f"{name} must be {expected}, got {value}")


def _finite_nonnegative(value: object) -> bool:
    try:
        return bool(math.isfinite(value) and value >= 0)
    except TypeError:
        return False


@dataclass(frozen=True)
class UpdateRule:
    """x' = x - drift * dE/dx - decay * x + noise_std * z; every form reduces to this.

    All three are finite and >= 0; drift 0 only with decay and noise_std 0 (a step that leaves x
    as it is, e.g. a step size scheduled to 0), since the rule's temperature divides by drift.
    """

    drift: float
    decay: float
    noise_std: float

    def __post_init__(self) -> None:
        valid = all(_finite_nonnegative(v) for v in (self.drift, self.decay, self.noise_std))
        if not valid or (self.drift == 0 and (self.decay > 0 or self.noise_std > 0)):
            raise ConfigError(
                "UpdateRule needs finite drift, decay, noise_std >= 0, with drift > 0 unless decay and "
                f"noise_std are 0; got {self}"
            )

    def at_temperature(self, temperature: float) -> "UpdateRule":
        """The rule with its noise std multiplied by sqrt(temperature)."""
        return UpdateRule(self.drift, self.decay, self.noise_std * math.sqrt(temperature))

    @property
    def temperature(self) -> float:
        """The T of the diffusion the rule discretises: noise_std^2 / (2 drift)."""
        return self.noise_std**2 / (2.0 * self.drift)

    @property
    def reference_std(self) -> float:
        """sigma_ref of the folded Gaussian term ||x||^2/(2 sigma_ref^2); inf when decay is 0."""
        return math.sqrt(self.drift / self.decay) if self.decay > 0 else math.inf

    def target_energy(self, energy: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """U(x) = E(x) + decay/(2 drift) ||x||^2 per chain, in float64 for Metropolis ratios."""
        total = energy.to(torch.float64)
        if self.decay > 0:
            total = total + (self.decay / (2.0 * self.drift)) * x.to(torch.float64).flatten(1).pow(2).sum(dim=1)
        return total

    def mean(self, x: torch.Tensor, grad_energy: torch.Tensor) -> torch.Tensor:
        """The noise-free step x - drift * dE/dx - decay * x (float64): the proposal mean."""
        x64 = x.to(torch.float64)
        return x64 - self.drift * grad_energy.to(torch.float64) - self.decay * x64

    def op_arguments(self) -> tuple[float, float, float]:
        """(gradient scale, delta, sigma) that make the GCN-convention op run this rule.

        The op computes x + (delta^2/2)(g - x/sigma^2) + delta z; with delta = noise_std,
        sigma^2 = noise_std^2/(2 decay) and g = -dE/dx / T it is the rule. Needs noise_std > 0.
        """
        sigma = math.inf if self.decay == 0 else self.noise_std / math.sqrt(2.0 * self.decay)
        return -1.0 / self.temperature, self.noise_std, sigma


@dataclass(frozen=True)
class GCNStep:
    """The GCN convention: x - (delta^2/2) dE/dx - (delta^2/(2 sigma^2)) x + delta z.

    Args:
        delta: step size, which is also the noise std; > 0.
        sigma: std of the Gaussian reference folded into the energy; None: no reference term
            (for a ``GenerativeConvNet`` None means the model's sigma).
    """

    delta: float
    sigma: float | None = None

    def __post_init__(self) -> None:
        _check_positive("GCNStep.delta", self.delta)
        if self.sigma is not None:
            _check_positive("GCNStep.sigma", self.sigma)

    def rule(self, temperature: float = 1.0) -> UpdateRule:
        half_delta_sq = self.delta**2 / 2.0
        decay = 0.0 if self.sigma is None else half_delta_sq / self.sigma**2
        return UpdateRule(half_delta_sq, decay, self.delta * math.sqrt(temperature))


@dataclass(frozen=True)
class SGLDStep:
    """The decoupled form of IGEBM/JEM/short-run code: x - step_size dE/dx + noise_std z.

    Args:
        step_size: gradient step, > 0.
        noise_std: noise standard deviation, >= 0 (0: gradient descent on E).
    """

    step_size: float
    noise_std: float

    def __post_init__(self) -> None:
        _check_positive("SGLDStep.step_size", self.step_size)
        _check_positive("SGLDStep.noise_std", self.noise_std, zero_ok=True)

    def rule(self, temperature: float = 1.0) -> UpdateRule:
        return UpdateRule(self.step_size, 0.0, self.noise_std * math.sqrt(temperature))


@dataclass(frozen=True)
class TorchEBMStep:
    """TorchEBM's LangevinDynamics: x - step_size dE/dx + noise_scale sqrt(2 step_size) z.

    Args:
        step_size: TorchEBM's eta, > 0.
        noise_scale: TorchEBM's noise_scale, >= 0 (the chain samples exp(-E / noise_scale^2)).
    """

    step_size: float
    noise_scale: float = 1.0

    def __post_init__(self) -> None:
        _check_positive("TorchEBMStep.step_size", self.step_size)
        _check_positive("TorchEBMStep.noise_scale", self.noise_scale, zero_ok=True)

    def rule(self, temperature: float = 1.0) -> UpdateRule:
        noise_std = self.noise_scale * math.sqrt(2.0 * self.step_size * temperature)
        return UpdateRule(self.step_size, 0.0, noise_std)


StepForm = GCNStep | SGLDStep | TorchEBMStep
STEP_FORMS: tuple[type, ...] = (GCNStep, SGLDStep, TorchEBMStep)


def rule_of(form: StepForm | UpdateRule, temperature: float = 1.0) -> UpdateRule:
    """The update rule of one step: a form's rule at ``temperature``, or a given rule's noise scaled by sqrt(T)."""
    if isinstance(form, UpdateRule):
        return form.at_temperature(temperature)
    return form.rule(temperature)
