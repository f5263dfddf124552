"""``TorchEBMSampler``: genconv's sampler behind TorchEBM's ``BaseSampler`` interface.

A drop-in for ``torchebm.samplers.LangevinDynamics`` (TorchEBM 0.8.9): same constructor
arguments, same ``sample`` contract (trajectory [n_samples, n_steps // thin, ...], diagnostics
dict with "mean", "var", "energy", and "acceptance_rate" in MALA mode), so TorchEBM's losses
(``ContrastiveDivergence``, ``PersistentContrastiveDivergence``) take it in place of theirs. The
update is TorchEBM's, x - step_size dE/dx + noise_scale sqrt(2 step_size) z, run by the fused
``genconv::langevin_update`` with in-kernel counter-based noise; ``noise_source="torch"`` draws
z from the call's torch.Generator exactly as LangevinDynamics does, to reproduce its chains.

Importing this module needs the optional ``torchebm`` package (``pip install 'genconv[torchebm]'``).
"""

from typing import Any

import torch

from genconv.bindings.errors import ConfigError
from genconv.bindings.sampler import (
    NoiseSource,
    SamplerOutput,
    check_clamp,
    sample_langevin,
)
from genconv.bindings.seeding import derive_seed, seed_from
from genconv.bindings.update_rules import TorchEBMStep

try:
    from torchebm.core import BaseSampler, BaseScheduler
except ImportError as error:  # pragma: no cover - exercised only without torchebm
    raise ImportError("genconv.TorchEBMSampler needs TorchEBM: pip install 'genconv[torchebm]'") from error

NOISE_SOURCES: tuple[str, ...] = ("philox", "torch")


class TorchEBMSampler(BaseSampler):
    """TorchEBM's Langevin dynamics on genconv's fused update, with MALA, clipping and seeding.

    Args:
        model: a TorchEBM ``BaseModel`` (energy x [B, ...] -> [B]; its ``gradient`` is used).
        step_size: TorchEBM's eta, > 0 (a float; schedulers are not supported).
        noise_scale: TorchEBM's noise_scale, >= 0.
        clamp: optional (low, high) bounds applied after every step.
        temperature: multiplies the noise std by sqrt(T).
        max_grad_norm: clip each chain's dE/dx to this L2 norm first.
        mala: Metropolis-adjusted steps; ``last_acceptance_rate`` holds the per-chain rates.
        seed: None draws each call's noise seed from the call's generator (or torch's RNG);
            an integer gives call k the seed derive_seed(seed, k), restored with ``state_dict``
            (with noise_source "torch" the seed only drives MALA's accept decisions).
        noise_source: "philox" (counter-based, in-kernel on CUDA) or "torch" (the generator's
            draws, step by step, as LangevinDynamics makes them).
        dtype, device: as for TorchEBM samplers.

    Example:
        >>> sampler = TorchEBMSampler(energy_model, step_size=0.01, noise_scale=0.1)
        >>> loss = ContrastiveDivergence(model=energy_model, sampler=sampler, k_steps=10)
    """

    def __init__(
        self,
        model: torch.nn.Module,
        step_size: float = 1e-3,
        noise_scale: float = 1.0,
        clamp: tuple[float, float] | None = None,
        *,
        temperature: float = 1.0,
        max_grad_norm: float | None = None,
        mala: bool = False,
        seed: int | None = None,
        noise_source: str = "philox",
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(model=model, dtype=dtype, device=device)
        for name, value in (("step_size", step_size), ("noise_scale", noise_scale)):
            if isinstance(value, BaseScheduler):
                raise ConfigError(f"{name} must be a float: TorchEBMSampler does not take TorchEBM schedulers")
        self.update = TorchEBMStep(float(step_size), float(noise_scale))
        if noise_source not in NOISE_SOURCES:
            raise ConfigError(f"noise_source must be one of {', '.join(NOISE_SOURCES)}; got {noise_source!r}")
        self.clamp = check_clamp(clamp)
        self.temperature = temperature
        self.max_grad_norm = max_grad_norm
        self.mala = mala
        self.seed = None if seed is None else seed_from(seed, None)
        self.noise_source = noise_source
        self.calls = 0
        self.last_acceptance_rate: torch.Tensor | None = None

    def get_extra_state(self) -> dict[str, int]:
        return {"calls": self.calls}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.calls = int(state["calls"])

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
            reset_schedulers: accepted for compatibility (no schedulers here).
            y, model_kwargs: conditioning forwarded to the model.
            generator: the initial states' and (noise_source "torch") the noise's RNG; with
                ``seed`` None it also draws the call's noise seed.
        Returns:
            the samples or trajectory, and with ``return_diagnostics`` the diagnostics dict.
        """
        if isinstance(thin, bool) or not isinstance(thin, int) or thin < 1:
            raise ConfigError(f"thin must be an integer >= 1, got {thin!r}")
        x = self._init_state(x, dim, n_samples, generator)
        kwargs = self._prepare_model_kwargs(self._merge_condition(model_kwargs, y))
        stats: dict[str, list[torch.Tensor]] = {"mean": [], "var": [], "energy": []}

        def record(step: int, states: torch.Tensor) -> None:
            if (step + 1) % thin:
                return
            stats["mean"].append(states.mean(dim=0))
            spread = states.var(dim=0, unbiased=False).clamp(1e-10, 1e10) if len(states) > 1 else states[0] * 0
            stats["var"].append(spread)
            stats["energy"].append(self._model_energy(states, kwargs).mean())

        with self.autocast_context():
            out = sample_langevin(
                lambda states: self._model_energy(states, kwargs),
                x,
                steps=n_steps,
                update=self.update,
                temperature=self.temperature,
                clamp=self.clamp,
                max_grad_norm=self.max_grad_norm,
                mala=self.mala,
                seed=self._call_seed(generator),
                noise=self._noise(x, generator),
                gradient=lambda states: self._model_gradient(states, kwargs),
                callback=record if return_diagnostics else None,
                thin=thin if return_trajectory else None,
                diagnostics=self.mala and return_diagnostics,
            )
        self.last_acceptance_rate = out.acceptance_rate
        result = out.trajectory.transpose(0, 1) if return_trajectory else out.x
        if not return_diagnostics:
            return result
        return result, self._diagnostics(stats, out, x, n_steps // thin, thin)

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
            f"{type(self).__name__}(model={type(self.model).__name__}, step_size={self.update.step_size}, "
            f"noise_scale={self.update.noise_scale}, mala={self.mala})"
        )
