"""``EbmkitLangevin`` and ``EbmkitMALA``: drop-ins for ebmkit 0.16's ``LangevinDynamics`` and ``MALA``.

Same constructors (``step_size, steps, noise_scale, grad_clip, clamp`` and ``step_size, steps``),
same ``sample(energy, x_init, *, steps=None, return_trajectory=False)`` contract (detached samples
[B, ...] or the trajectory [steps + 1, B, ...] with the initial states first), same one-step
``step(energy, x)`` (what ebmkit's ``ParallelTempering`` and ``TemperedTransitions`` call), same
``last_accept_rate``; they subclass ebmkit's classes, so its losses (``ContrastiveDivergence``,
``JEMLoss``), ``ReplayBuffer`` workflows and ``Trainer`` take them in place of ebmkit's. The
chain runs on genconv's ``sample_langevin``: the update x - step_size dE/dx + noise_scale z
(noise_scale None: sqrt(2 step_size)) with ebmkit's element-wise ``grad_clip`` and ``clamp``,
Philox noise seeded from torch's RNG (so ``torch.manual_seed`` makes a run repeatable), and the
whole chain compiled where it pays (``configure(compile=...)``).

Importing this module needs the optional ``ebmkit`` package (``pip install 'genconv[ebmkit]'``).
"""

import math

import torch
from torch import Tensor

from genconv.bindings.errors import ConfigError
from genconv.bindings.sampler import EnergyFn, sample_langevin
from genconv.bindings.seeding import derive_seed, seed_from
from genconv.bindings.update_rules import SGLDStep

try:
    from ebm.samplers.langevin import MALA, LangevinDynamics
except ImportError as error:  # pragma: no cover - exercised only without ebmkit
    raise ImportError("genconv.EbmkitLangevin and EbmkitMALA need ebmkit: pip install 'genconv[ebmkit]'") from error


class _Configurable:
    """genconv's extras shared by both drop-ins, set with ``configure`` (which returns the sampler)."""

    seed: int | None = None
    compile: bool | str = "auto"
    calls: int = 0

    def configure(self, *, seed: int | None = None, compile: bool | str = "auto"):
        """Set genconv's extras; those not named return to their defaults.

        Args:
            seed: None draws each call's noise seed from torch's RNG (``torch.manual_seed``
                repeats a run); an integer gives call k the seed derive_seed(seed, k).
            compile: ``sample_langevin``'s compile for ``sample`` ("auto", True, False).
        Returns:
            the sampler.
        """
        if not (isinstance(compile, bool) or compile == "auto"):
            raise ConfigError(f"compile must be 'auto', True or False; got {compile!r}")
        self.seed = None if seed is None else seed_from(seed, None)
        self.compile = compile
        self.calls = 0
        return self

    def _call_seed(self) -> int:
        if self.seed is None:
            return seed_from(None, None)
        self.calls += 1
        return derive_seed(self.seed, self.calls)


def _steps_of(steps: object) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ConfigError(f"steps must be an integer >= 0, got {steps!r}")
    return steps


class EbmkitLangevin(_Configurable, LangevinDynamics):
    """ebmkit's unadjusted ``LangevinDynamics`` on genconv's sampler: x' = x - eps dE/dx + sigma z.

    Args:
        step_size: eps, the gradient step size (> 0).
        steps: default number of transitions per ``sample`` call.
        noise_scale: sigma (>= 0); None means sqrt(2 step_size), the chain targeting exp(-E).
        grad_clip: if set, clamp each gradient element to [-grad_clip, grad_clip].
        clamp: if set, clamp the samples to (lo, hi) after every step.

    Example:
        >>> sampler = EbmkitLangevin(step_size=10.0, steps=60, noise_scale=0.005, grad_clip=0.01, clamp=(-1, 1))
        >>> loss = ebm.ContrastiveDivergence(sampler=sampler)
    """

    def __init__(
        self,
        step_size: float = 1e-2,
        steps: int = 100,
        noise_scale: float | None = None,
        grad_clip: float | None = None,
        clamp: tuple[float, float] | None = None,
    ) -> None:
        super().__init__(step_size=step_size, steps=steps, noise_scale=noise_scale, grad_clip=grad_clip, clamp=clamp)
        self.configure()

    def _update(self) -> SGLDStep:
        sigma = self.noise_scale if self.noise_scale is not None else math.sqrt(2 * self.step_size)
        return SGLDStep(float(self.step_size), float(sigma))

    def _run(self, energy: EnergyFn, x: Tensor, steps: int, thin: int | None, compile: bool | str):
        return sample_langevin(
            energy,
            x,
            steps=steps,
            update=self._update(),
            clamp=self.clamp,
            clip_value=self.grad_clip,
            seed=self._call_seed(),
            thin=thin,
            compile=compile,
        )

    def step(self, energy: EnergyFn, x: Tensor) -> Tensor:
        """One transition of every chain (eager: ebmkit's wrappers pass a new callable each step)."""
        return self._run(energy, x.detach(), 1, None, False).x

    def sample(
        self, energy: EnergyFn, x_init: Tensor, *, steps: int | None = None, return_trajectory: bool = False
    ) -> Tensor:
        """Run ``steps`` (default ``self.steps``) transitions from ``x_init``.

        Returns:
            detached samples [B, ...], or with ``return_trajectory`` [steps + 1, B, ...] (x_init first).
        """
        n_steps = _steps_of(self.steps if steps is None else steps)
        x = x_init.detach().clone()
        # No frozen_params: the chain differentiates in x only (no parameter .grad is touched), and
        # flipping requires_grad on every call would make torch.compile's guards recompile the chain.
        out = self._run(energy, x, n_steps, 1 if return_trajectory else None, self.compile)
        if return_trajectory:
            return torch.cat([x.unsqueeze(0), out.trajectory])
        return out.x


class EbmkitMALA(_Configurable, MALA):
    """ebmkit's ``MALA`` on genconv's sampler: proposals x - eps dE/dx + sqrt(2 eps) z, accepted
    with the Metropolis-Hastings ratio; ``last_accept_rate`` is the most recent step's accept
    fraction over the batch. Metropolis steps run eagerly (``compile`` does not apply).

    Args:
        step_size: eps (> 0); tune toward an acceptance of ~0.5-0.7.
        steps: default number of transitions per ``sample`` call.
    """

    def __init__(self, step_size: float = 1e-2, steps: int = 100) -> None:
        super().__init__(step_size=step_size, steps=steps)
        self.configure()

    def _run(self, energy: EnergyFn, x: Tensor, steps: int, thin: int | None) -> Tensor:
        out = sample_langevin(
            energy,
            x,
            steps=steps,
            update=SGLDStep(float(self.step_size), math.sqrt(2 * self.step_size)),
            mala=True,
            seed=self._call_seed(),
            thin=thin,
            diagnostics=steps > 0,
        )
        if steps > 0:
            self._last_accept = out.diagnostics.accepted[-1].float().mean()
        return out

    def step(self, energy: EnergyFn, x: Tensor) -> Tensor:
        """One Metropolis-adjusted transition of every chain."""
        return self._run(energy, x.detach(), 1, None).x

    def sample(
        self, energy: EnergyFn, x_init: Tensor, *, steps: int | None = None, return_trajectory: bool = False
    ) -> Tensor:
        """Run ``steps`` (default ``self.steps``) transitions; ebmkit's ``Sampler.sample`` contract."""
        n_steps = _steps_of(self.steps if steps is None else steps)
        x = x_init.detach().clone()
        out = self._run(energy, x, n_steps, 1 if return_trajectory else None)
        if return_trajectory:
            return torch.cat([x.unsqueeze(0), out.trajectory])
        return out.x
