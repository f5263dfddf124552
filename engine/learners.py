"""One learning iteration of each model family: how the synthesized images are made and what learns.

- ``ChainLearner`` (gcn, wgcn): persistent Langevin chains in image space; f learns by maximum
  likelihood, plus for wGCN the transport (or gradient) penalty of ``genconv.engine.wasserstein``.
- ``GGCNLearner``: z0 ~ N(0, I) -> Langevin in the hidden space on f(g(z)) -> g -> image-space
  refinement; f learns from data vs the refined images (with the wGCN penalty), g learns to emit
  the refined images from z0 (amortization). Both nets update every iteration (symmetrical
  learning).

Both use the fused kernels for every Langevin step and every df/dx; the penalty's second
derivative and the weight gradients come from autograd.
"""

import math
from dataclasses import dataclass
from typing import Any

import torch

from genconv.bindings.backends import resolve_backend
from genconv.bindings.errors import ChainDivergedError
from genconv.engine.config import TrainConfig
from genconv.engine.generator import UpsamplingGenerator
from genconv.engine.hidden import hidden_langevin
from genconv.engine.langevin import init_chains, langevin
from genconv.engine.model import GenerativeConvNet
from genconv.engine.objectives import amortization_loss, maximum_likelihood_loss
from genconv.engine.seeding import (
    CHAIN_INIT_STREAM,
    HIDDEN_STREAM,
    LANGEVIN_STREAM,
    LATENT_STREAM,
    MIXING_STREAM,
    derive_seed,
)
from genconv.engine.wasserstein import gradient_penalty, mean_squared_displacement, transport_penalty


@dataclass
class LastStep:
    """A Langevin run split before its last step: what the wGCN transport term needs."""

    before: torch.Tensor
    after: torch.Tensor
    seed: int
    offset: int
    next_step: int


def run_with_last_step(
    model: GenerativeConvNet, x: torch.Tensor, config: TrainConfig, seed: int, start_step: int
) -> LastStep:
    """``config.langevin_steps`` steps from x, keeping the state before the last one."""
    head = langevin(model, x, steps=config.langevin_steps - 1, delta=config.delta, seed=seed, start_step=start_step,
                    backend=config.backend)  # fmt: skip
    tail = langevin(model, head.x, steps=1, delta=config.delta, seed=seed, start_step=head.next_step,
                    backend=config.backend)  # fmt: skip
    return LastStep(head.x, tail.x, seed, head.next_step * x.numel(), tail.next_step)


def check_finite(images: torch.Tensor, iteration: int, config: TrainConfig) -> None:
    if not bool(torch.isfinite(images).all()):
        raise ChainDivergedError(
            f"Langevin chains became NaN/Inf at iteration {iteration}; try a smaller --delta (now {config.delta})"
        )


class EnergyLearner:
    """The parameter step of f shared by every family: MLE, plus the wGCN penalty when lambda_w > 0."""

    def __init__(self, model: GenerativeConvNet, config: TrainConfig) -> None:
        self.model = model
        self.config = config
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(config.beta1, 0.999))

    def step(
        self, observed: torch.Tensor, synthesized: torch.Tensor, last: LastStep | None, iteration: int
    ) -> dict[str, Any]:
        config = self.config
        terms = maximum_likelihood_loss(self.model, observed, synthesized)
        loss = terms.loss
        metrics: dict[str, Any] = {}
        if last is not None:
            metrics["transport"] = float(mean_squared_displacement(last.after, last.before))
        if config.lambda_w > 0:
            penalty = self._penalty(observed, synthesized, last, iteration)
            if penalty is not None:
                loss = loss + config.lambda_w * penalty
                metrics["penalty"] = float(penalty.detach())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        layer_norms = [
            float(torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in layer.parameters()])))
            for layer in self.model._weighted_layers()
        ]
        self.optimizer.step()
        return {
            "f_data": float(terms.f_observed.detach().mean()),
            "f_syn": float(terms.f_synthesized.detach().mean()),
            "loss": float(loss.detach()),
            "grad_norm": math.sqrt(sum(norm * norm for norm in layer_norms)),
            "layer_grad_norms": layer_norms,
            **metrics,
        }

    def _penalty(
        self, observed: torch.Tensor, synthesized: torch.Tensor, last: LastStep | None, iteration: int
    ) -> torch.Tensor | None:
        config = self.config
        if config.penalty == "gradient":
            generator = torch.Generator().manual_seed(derive_seed(config.seed, MIXING_STREAM, iteration))
            mixing = torch.rand(synthesized.shape[0], generator=generator).to(synthesized.device)
            return gradient_penalty(self.model, observed, synthesized, mixing, config.gp_target)
        if last is None:
            return None
        ops = resolve_backend(config.backend, last.before.device)
        noise = ops.standard_normal(last.seed, last.offset, tuple(last.before.shape), last.before.device)
        return transport_penalty(self.model, last.before, noise, config.delta, config.sigma, config.transport)


class ChainLearner:
    """GCN and wGCN: persistent (or restarted) image-space chains."""

    def __init__(self, model: GenerativeConvNet, config: TrainConfig, observed: torch.Tensor, num_chains: int) -> None:
        self.model = model
        self.config = config
        self.energy = EnergyLearner(model, config)
        self.observed = observed
        self.num_chains = num_chains
        self.langevin_seed = derive_seed(config.seed, LANGEVIN_STREAM)
        self.langevin_step = 0
        self.chains = self._fresh_chains(0)

    def _fresh_chains(self, iteration: int) -> torch.Tensor:
        return init_chains(
            self.config.chain_init, self.num_chains, tuple(self.observed.shape[1:]), self.model.sigma,
            seed=derive_seed(self.config.seed, CHAIN_INIT_STREAM, iteration), data=self.observed,
            device=self.observed.device, backend=self.config.backend,
        )  # fmt: skip

    def iteration(self, observed: torch.Tensor, iteration: int) -> dict[str, Any]:
        """Langevin on the chains, then the parameter step. ``iteration`` counts from 1."""
        if not self.config.persistent:
            self.chains = self._fresh_chains(iteration - 1)
        last = run_with_last_step(self.model, self.chains, self.config, self.langevin_seed, self.langevin_step)
        check_finite(last.after, iteration, self.config)
        self.chains, self.langevin_step = last.after, last.next_step
        metrics = self.energy.step(observed, self.chains, last, iteration)
        metrics["chain_std"] = float(self.chains.float().std())
        return metrics

    def synthesized(self) -> torch.Tensor:
        return self.chains

    def state(self) -> dict[str, Any]:
        return {
            "optimizer": self.energy.optimizer.state_dict(),
            "chains": self.chains.detach().cpu(),
            "rng": {"seed": self.config.seed, "langevin_seed": self.langevin_seed, "langevin_step": self.langevin_step},
        }

    def load(self, record: dict[str, Any]) -> None:
        self.energy.optimizer.load_state_dict(record["optimizer"])
        self.chains = record["chains"].to(self.observed.device)
        self.langevin_step = int(record["rng"]["langevin_step"])


class GGCNLearner:
    """GGCN: hidden-space sampling through a trainable generator, amortized and symmetrical learning."""

    def __init__(
        self, model: GenerativeConvNet, generator: UpsamplingGenerator, config: TrainConfig, device: torch.device
    ) -> None:
        self.model = model
        self.generator = generator
        self.config = config
        self.device = device
        self.energy = EnergyLearner(model, config)
        self.generator_optimizer = torch.optim.Adam(
            generator.parameters(), lr=config.generator_lr, betas=(config.beta1, 0.999)
        )
        self.refined: torch.Tensor | None = None

    def latent(self, iteration: int) -> torch.Tensor:
        ops = resolve_backend(self.config.backend, self.device)
        seed = derive_seed(self.config.seed, LATENT_STREAM, iteration)
        return ops.standard_normal(seed, 0, (self.config.num_chains, self.config.latent_dim), self.device)

    def iteration(self, observed: torch.Tensor, iteration: int) -> dict[str, Any]:
        config = self.config
        latent = self.latent(iteration)
        hidden = latent
        if config.hidden_steps:
            hidden = hidden_langevin(
                self.model, self.generator, latent, steps=config.hidden_steps, step_size=config.hidden_step_size,
                seed=derive_seed(config.seed, HIDDEN_STREAM, iteration), grad_clip=config.hidden_grad_clip,
                backend=config.backend,
            ).x  # fmt: skip
        with torch.no_grad():
            proposal = self.generator(hidden)
        last = None
        refined = proposal
        if config.langevin_steps:
            last = run_with_last_step(
                self.model, proposal, config, derive_seed(config.seed, LANGEVIN_STREAM, iteration), 0
            )
            refined = last.after
        check_finite(refined, iteration, config)
        self.refined = refined
        metrics = self.energy.step(observed, refined, last, iteration)
        metrics["hidden_move"] = float((hidden - latent).pow(2).sum(dim=1).mean())
        if config.amortize:
            loss = amortization_loss(self.generator, latent, refined)
            self.generator_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.generator_optimizer.step()
            metrics["amortization"] = float(loss.detach())
        return metrics

    def synthesized(self) -> torch.Tensor:
        if self.refined is None:
            with torch.no_grad():
                return self.generator(self.latent(0))
        return self.refined

    def state(self) -> dict[str, Any]:
        return {
            "optimizer": self.energy.optimizer.state_dict(),
            "generator": self.generator.state_dict(),
            "generator_spec": self.generator.spec.to_dict(),
            "generator_optimizer": self.generator_optimizer.state_dict(),
            "rng": {"seed": self.config.seed},
        }

    def load(self, record: dict[str, Any]) -> None:
        self.energy.optimizer.load_state_dict(record["optimizer"])
        self.generator.load_state_dict(record["generator"])
        self.generator_optimizer.load_state_dict(record["generator_optimizer"])
