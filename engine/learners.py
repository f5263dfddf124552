"""One learning iteration of each model family: how the synthesized images are made and what learns.

- ``ChainLearner`` (gcn, wgcn): persistent Langevin chains in image space; f learns by maximum
  likelihood, plus for wGCN the transport (or gradient) penalty of ``genconv.engine.wasserstein``.
- ``GGCNLearner``: z0 ~ N(0, I) -> Langevin in the hidden space on f(g(z)) -> g -> image-space
  refinement; f learns from data vs the refined images (with the wGCN penalty), g learns to emit
  the refined images from z0 (amortization). Both nets update every iteration (symmetrical
  learning).

Both use the fused kernels for every Langevin step and every df/dx; the penalty's second
derivative and the weight gradients come from autograd.

Under torchrun each rank owns a contiguous share of the chains (by global index) and of each
iteration's data batch. Every chain draws its noise at counters fixed by its global index, each
rank weighs its terms by its share of the global counts, and the gradients are summed over ranks,
so the update is the one a single process computes on the whole batch (up to float rounding).
"""

import math
from dataclasses import dataclass
from typing import Any

import torch

from genconv.bindings.backends import resolve_backend
from genconv.bindings.errors import ChainDivergedError, CheckpointError
from genconv.engine.config import TrainConfig
from genconv.engine.distributed import SINGLE, ProcessGroup, gather_rows, share, sum_all, sum_gradients, sum_tensors
from genconv.engine.generator import UpsamplingGenerator
from genconv.engine.hidden import hidden_energy_scale, hidden_langevin
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

NORM_MEMORY = 0.95  # per-iteration decay of the running gradient norms that set the wGCN penalty's weight


@dataclass
class LastStep:
    """A Langevin run split before its last step: what the wGCN transport term needs."""

    before: torch.Tensor
    after: torch.Tensor
    seed: int
    offset: int
    next_step: int


@dataclass(frozen=True)
class ChainShare:
    """This rank's chains: ``count`` chains from global index ``first`` of ``total``."""

    first: int
    count: int
    total: int

    @classmethod
    def of(cls, total: int, group: ProcessGroup) -> "ChainShare":
        first, count = share(total, group)
        return cls(first, count, total)

    def stream(self, chain_size: int) -> tuple[int, int]:
        """(stream_offset, stream_stride) that give each chain the noise of its global index."""
        return self.first * chain_size, self.total * chain_size

    @property
    def weight(self) -> float:
        """This rank's fraction of the chains: local means times it, summed over ranks, are global means."""
        return self.count / self.total


def run_with_last_step(
    model: GenerativeConvNet, x: torch.Tensor, config: TrainConfig, seed: int, start_step: int, chains: ChainShare,
    clamp: tuple[float, float] | None = None,
) -> LastStep:  # fmt: skip
    """``config.langevin_steps`` steps from x (each state clamped to ``clamp``), keeping the state before the last."""
    offset, stride = chains.stream(math.prod(x.shape[1:]))
    head = langevin(model, x, steps=config.langevin_steps - 1, delta=config.delta, seed=seed, start_step=start_step,
                    stream_offset=offset, stream_stride=stride, backend=config.backend, clamp=clamp)  # fmt: skip
    tail = langevin(model, head.x, steps=1, delta=config.delta, seed=seed, start_step=head.next_step,
                    stream_offset=offset, stream_stride=stride, backend=config.backend, clamp=clamp)  # fmt: skip
    return LastStep(head.x, tail.x, seed, offset + head.next_step * stride, tail.next_step)


def check_finite(images: torch.Tensor, iteration: int, config: TrainConfig) -> None:
    if not bool(torch.isfinite(images).all()):
        raise ChainDivergedError(
            f"Langevin chains became NaN/Inf at iteration {iteration}; try a smaller --delta (now {config.delta})"
        )


class EnergyLearner:
    """The parameter step of f shared by every family: MLE, plus the wGCN penalty when lambda_w > 0."""

    def __init__(self, model: GenerativeConvNet, config: TrainConfig, group: ProcessGroup = SINGLE) -> None:
        self.model = model
        self.config = config
        self.group = group
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
        self.penalty_norms: tuple[float, float] | None = None  # running ||g_MLE||, ||g_penalty||

    def step(
        self, observed: torch.Tensor, synthesized: torch.Tensor, last: LastStep | None, iteration: int,
        chains: ChainShare,
    ) -> dict[str, Any]:  # fmt: skip
        """One Adam step of f on the global ``observed`` batch (this rank uses its share) and this
        rank's ``synthesized`` chains."""
        config = self.config
        first, count = share(observed.shape[0], self.group)
        observed_share = count / observed.shape[0]
        terms = maximum_likelihood_loss(self.model, observed[first : first + count], synthesized)
        # mean f(syn) - mean f(obs) over the global sets, as this rank's part of the sum over ranks
        f_syn = terms.f_synthesized.mean() * chains.weight
        f_data = terms.f_observed.mean() * observed_share if count else terms.f_observed.sum()
        loss = f_syn - f_data
        sums = {"f_data": f_data.detach(), "f_syn": f_syn.detach()}
        if last is not None:
            sums["transport"] = mean_squared_displacement(last.after, last.before) * chains.weight
        penalty = self._penalty(observed, synthesized, last, iteration, chains) if config.lambda_w > 0 else None
        self.optimizer.zero_grad(set_to_none=True)
        parameters = list(self.model.parameters())
        if penalty is None:
            loss.backward()
            sum_gradients(parameters, self.group)
        else:
            weight = self._balance(loss, penalty * chains.weight, parameters)
            sums["penalty"] = penalty.detach() * chains.weight
            sums["penalty_weight"] = torch.tensor(weight / self.group.world_size)  # summed over ranks below
            loss = loss + weight * penalty.detach() * chains.weight
        layer_norms = [
            float(torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in layer.parameters()])))
            for layer in self.model._weighted_layers()
        ]
        if config.warmup:
            for group in self.optimizer.param_groups:
                group["lr"] = config.lr * min(1.0, iteration / config.warmup)
        self.optimizer.step()
        names = list(sums)
        totals = sum_all(torch.stack([sums[name].float().to(observed.device) for name in names]), self.group).tolist()
        metrics = dict(zip(names, totals, strict=True))
        penalty_part = metrics.get("penalty_weight", 0.0) * metrics.get("penalty", 0.0)
        return {
            "f_data": metrics.pop("f_data"),
            "f_syn": metrics.pop("f_syn"),
            "loss": float(loss.detach()) if not self.group.distributed else totals[1] - totals[0] + penalty_part,
            "grad_norm": math.sqrt(sum(norm * norm for norm in layer_norms)),
            "layer_grad_norms": layer_norms,
            **metrics,
        }

    def _balance(self, loss: torch.Tensor, penalty: torch.Tensor, parameters: list[torch.nn.Parameter]) -> float:
        """Set every parameter's gradient to g_MLE + w g_penalty and return w (see ``penalty_weight``)."""
        mle = torch.autograd.grad(loss, parameters, retain_graph=True, allow_unused=True)
        extra = torch.autograd.grad(penalty, parameters, allow_unused=True)
        mle = sum_tensors([_or_zeros(g, p) for g, p in zip(mle, parameters, strict=True)], self.group)
        extra = sum_tensors([_or_zeros(g, p) for g, p in zip(extra, parameters, strict=True)], self.group)
        weight = self.penalty_weight(_norm(mle), _norm(extra))
        for parameter, first, second in zip(parameters, mle, extra, strict=True):
            parameter.grad = first + weight * second
        return weight

    def penalty_weight(self, mle_norm: float, penalty_norm: float) -> float:
        """w = lambda_W * (running mean of ||g_MLE||) / (running mean of ||g_penalty||).

        genconv's rule for the weight of the wGCN term: the raw penalty's size depends on the step
        size, sigma, the image size and the scale f has grown to (at the GCN paper's scales a weight
        of 1 gives it a 500th of the MLE gradient), so lambda_W sets the share of its gradient
        instead: lambda_W = 1 makes the two gradients equally long on average. The norms are
        averaged over the last ~20 iterations (exponential, ``NORM_MEMORY``) so that one
        iteration's small or large MLE gradient does not swing the weight.
        """
        if self.penalty_norms is None:
            self.penalty_norms = (mle_norm, penalty_norm)
        else:
            keep = NORM_MEMORY
            self.penalty_norms = (keep * self.penalty_norms[0] + (1 - keep) * mle_norm,
                                  keep * self.penalty_norms[1] + (1 - keep) * penalty_norm)  # fmt: skip
        return self.config.lambda_w * self.penalty_norms[0] / max(self.penalty_norms[1], 1e-30)

    def state(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "penalty_norms": self.penalty_norms}

    def load(self, record: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(record["optimizer"])
        norms = record.get("penalty_norms")
        self.penalty_norms = None if norms is None else (float(norms[0]), float(norms[1]))

    def _penalty(
        self, observed: torch.Tensor, synthesized: torch.Tensor, last: LastStep | None, iteration: int,
        chains: ChainShare,
    ) -> torch.Tensor | None:  # fmt: skip
        config = self.config
        if config.penalty == "gradient":
            generator = torch.Generator().manual_seed(derive_seed(config.seed, MIXING_STREAM, iteration))
            mixing = torch.rand(chains.total, generator=generator)[chains.first : chains.first + chains.count]
            return gradient_penalty(self.model, observed, synthesized, mixing.to(synthesized.device), config.gp_target,
                                    first_chain=chains.first)  # fmt: skip
        if last is None:
            return None
        ops = resolve_backend(config.backend, last.before.device)
        noise = ops.standard_normal(last.seed, last.offset, tuple(last.before.shape), last.before.device)
        return transport_penalty(self.model, last.before, noise, config.delta, config.sigma, config.transport)


def _or_zeros(grad: torch.Tensor | None, parameter: torch.nn.Parameter) -> torch.Tensor:
    return grad if grad is not None else torch.zeros_like(parameter)


def _norm(tensors: list[torch.Tensor]) -> float:
    return float(torch.sqrt(sum(t.double().pow(2).sum() for t in tensors)))


def chain_std(chains: torch.Tensor, group: ProcessGroup) -> float:
    """The standard deviation of every pixel of every rank's chains (unbiased, as torch.std)."""
    if not group.distributed:
        return float(chains.float().std())
    values = chains.detach().double()
    moments = sum_all(torch.stack([values.sum(), values.pow(2).sum(), torch.tensor(float(values.numel()),
                                   dtype=torch.float64, device=values.device)]), group)  # fmt: skip
    total, squares, count = moments.tolist()
    return math.sqrt(max(squares - total * total / count, 0.0) / (count - 1))


class ChainLearner:
    """GCN and wGCN: persistent (or restarted) image-space chains; this rank holds its share of them."""

    def __init__(
        self, model: GenerativeConvNet, config: TrainConfig, observed: torch.Tensor, num_chains: int,
        group: ProcessGroup = SINGLE,
    ) -> None:  # fmt: skip
        self.model = model
        self.config = config
        self.group = group
        self.energy = EnergyLearner(model, config, group)
        self.observed = observed
        self.share = ChainShare.of(num_chains, group)
        self.langevin_seed = derive_seed(config.seed, LANGEVIN_STREAM)
        self.langevin_step = 0
        self.chains = self._fresh_chains(0)

    def _fresh_chains(self, iteration: int) -> torch.Tensor:
        return init_chains(
            self.config.chain_init, self.share.count, tuple(self.observed.shape[1:]), self.model.sigma,
            seed=derive_seed(self.config.seed, CHAIN_INIT_STREAM, iteration), data=self.observed,
            device=self.observed.device, backend=self.config.backend, first_chain=self.share.first,
        )  # fmt: skip

    def iteration(self, observed: torch.Tensor, iteration: int) -> dict[str, Any]:
        """Langevin on the chains, then the parameter step. ``iteration`` counts from 1."""
        if not self.config.persistent:
            self.chains = self._fresh_chains(iteration - 1)
        last = run_with_last_step(self.model, self.chains, self.config, self.langevin_seed, self.langevin_step,
                                  self.share)  # fmt: skip
        check_finite(last.after, iteration, self.config)
        self.chains, self.langevin_step = last.after, last.next_step
        metrics = self.energy.step(observed, self.chains, last, iteration, self.share)
        metrics["chain_std"] = chain_std(self.chains, self.group)
        return metrics

    def synthesized(self) -> torch.Tensor:
        """This rank's chains."""
        return self.chains

    def state(self) -> dict[str, Any]:
        """The checkpoint's part: every rank's chains in global order (all ranks must call this)."""
        return {
            **self.energy.state(),
            "chains": gather_rows(self.chains.detach(), self.group).cpu(),
            "rng": {"seed": self.config.seed, "langevin_seed": self.langevin_seed, "langevin_step": self.langevin_step},
        }

    def load(self, record: dict[str, Any]) -> None:
        self.energy.load(record)
        chains = record["chains"]
        if chains.shape[0] != self.share.total:
            raise CheckpointError(f"the checkpoint holds {chains.shape[0]} chains, the run expects {self.share.total}")
        self.chains = chains[self.share.first : self.share.first + self.share.count].to(self.observed.device)
        self.langevin_step = int(record["rng"]["langevin_step"])


def refine_clamp(generator: UpsamplingGenerator, kind: str | None) -> tuple[float, float] | None:
    """The bounds of GGCN's refined images: the generator's output range for "pixel-range", else None.

    The range spans every channel's [0, 255] in model space ([-1, 1] for pixel range "unit").
    """
    if kind != "pixel-range":
        return None
    return min(generator.spec.output_low), max(generator.spec.output_high)


class GGCNLearner:
    """GGCN: hidden-space sampling through a trainable generator, amortized and symmetrical learning."""

    def __init__(
        self, model: GenerativeConvNet, generator: UpsamplingGenerator, config: TrainConfig, device: torch.device,
        group: ProcessGroup = SINGLE,
    ) -> None:  # fmt: skip
        self.model = model
        self.generator = generator
        self.config = config
        self.device = device
        self.group = group
        self.energy = EnergyLearner(model, config, group)
        self.generator_optimizer = torch.optim.Adam(
            generator.parameters(), lr=config.generator_lr, betas=(config.beta1, 0.999)
        )
        assert config.num_chains is not None and config.latent_dim is not None
        self.share = ChainShare.of(config.num_chains, group)
        self.refined: torch.Tensor | None = None

    def latent(self, iteration: int) -> torch.Tensor:
        """This rank's latent codes z0 ~ N(0, I) of the iteration, by global chain index."""
        ops = resolve_backend(self.config.backend, self.device)
        seed = derive_seed(self.config.seed, LATENT_STREAM, iteration)
        offset, _ = self.share.stream(self.config.latent_dim)
        return ops.standard_normal(seed, offset, (self.share.count, self.config.latent_dim), self.device)

    def iteration(self, observed: torch.Tensor, iteration: int) -> dict[str, Any]:
        config = self.config
        latent = self.latent(iteration)
        hidden = latent
        if config.hidden_steps:
            offset, stride = self.share.stream(config.latent_dim)
            hidden = hidden_langevin(
                self.model, self.generator, latent, steps=config.hidden_steps, step_size=config.hidden_step_size,
                seed=derive_seed(config.seed, HIDDEN_STREAM, iteration), stream_offset=offset, stream_stride=stride,
                grad_clip=config.hidden_grad_clip, energy_scale=hidden_energy_scale(self.model, config.hidden_gradient),
                backend=config.backend,
            ).x  # fmt: skip
        with torch.no_grad():
            proposal = self.generator(hidden)
        last = None
        refined = proposal
        if config.langevin_steps:
            last = run_with_last_step(
                self.model,
                proposal,
                config,
                derive_seed(config.seed, LANGEVIN_STREAM, iteration),
                0,
                self.share,
                refine_clamp(self.generator, config.refine_clamp),
            )
            refined = last.after
        check_finite(refined, iteration, config)
        self.refined = refined
        metrics = self.energy.step(observed, refined, last, iteration, self.share)
        moves = (hidden - latent).pow(2).sum(dim=1).mean() * self.share.weight
        if config.amortize:
            loss = amortization_loss(self.generator, latent, refined) * self.share.weight
            self.generator_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            sum_gradients(list(self.generator.parameters()), self.group)
            self.generator_optimizer.step()
            moves, amortization = sum_all(torch.stack([moves.detach(), loss.detach()]), self.group).tolist()
            metrics["amortization"] = amortization
        else:
            moves = float(sum_all(moves.detach(), self.group))
        metrics["hidden_move"] = moves
        return metrics

    def synthesized(self) -> torch.Tensor:
        """This rank's latest refined images (the generator's output before the first iteration)."""
        if self.refined is None:
            with torch.no_grad():
                return self.generator(self.latent(0))
        return self.refined

    def state(self) -> dict[str, Any]:
        return {
            **self.energy.state(),
            "generator": self.generator.state_dict(),
            "generator_spec": self.generator.spec.to_dict(),
            "generator_optimizer": self.generator_optimizer.state_dict(),
            "rng": {"seed": self.config.seed},
        }

    def load(self, record: dict[str, Any]) -> None:
        self.energy.load(record)
        self.generator.load_state_dict(record["generator"])
        self.generator_optimizer.load_state_dict(record["generator_optimizer"])
