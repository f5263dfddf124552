"""Held-out log-likelihood of a GCN or wGCN by annealed importance sampling (AIS).

The model is p(x) = exp(f(x)) N(x; 0, sigma^2 I) / Z with Z = E_{N(0, sigma^2 I)}[exp f(x)]: the
Gaussian reference is a normalised base with exact samples, so AIS runs from it through

    p_beta(x) ∝ exp(beta f(x)) N(x; 0, sigma^2 I),    0 = beta_0 < beta_1 < ... < beta_K = 1.

Forward AIS draws x ~ N(0, sigma^2 I), and at each k adds (beta_k - beta_{k-1}) f(x) to the chain's
log weight, then moves x by a transition that leaves p_{beta_k} invariant: a Metropolis-adjusted
(MALA, the default) or unadjusted Langevin step of the GCN form with f scaled by beta,

    x' = x + (delta^2 / 2) (beta df/dx - x / sigma^2) + delta z,

on the model's top-down gradient and genconv's ``langevin_update`` op. The mean of the weights is
an unbiased estimate of Z, so its log (``log_z``) is a stochastic lower bound on log Z (Jensen):
the log-likelihood it gives is an upper bound, in expectation. Reverse AIS runs the same schedule
from model samples down to beta = 0; from exact samples of p its estimate is a stochastic upper
bound on log Z, hence a lower bound on the log-likelihood; from approximate samples (chains) it is
only an indication. Standard errors come from the log-mean-exp of the weights by the delta method,
se(log mean w) = std(w) / (sqrt(n) mean(w)), and miss what the weights' spread does not show (an
annealing too short to reach p's modes shows as a low, confident log Z).

Units. log p is a density in model space (``PixelScale``); the held-out figures are converted to
the 0-255 grey-level scale, log p_pixels(x) = log p_model(x) - D log(scale), D = C H W, and bits per
dimension are -log p_pixels / (D ln 2): a density per grey level, with no dequantisation noise
unless asked for (``dequantize=True`` adds U(-1/2, 1/2) grey levels to every pixel, which makes
the figure a bound on the discrete likelihood of integer-valued images).
"""

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from genconv.bindings.backends import Backend, packing_scope, resolve_backend
from genconv.bindings.errors import ConfigError
from genconv.bindings.ops import noise_counter
from genconv.bindings.seeding import derive_seed
from genconv.engine.data import PixelScale
from genconv.engine.model import GenerativeConvNet

TRANSITIONS: tuple[str, ...] = ("mala", "pcn", "langevin", "hmc")
BASES: tuple[str, ...] = ("reference", "chains", "pilot")
SCHEDULES: tuple[str, ...] = ("sigmoid", "geometric", "linear")  # and "adaptive" in log_likelihood
TARGET_ACCEPTANCE = 0.6
HMC_TARGET_ACCEPTANCE = 0.7
_INIT_STREAM, _STEP_STREAM, _ACCEPT_STREAM, _DEQUANTIZE_STREAM = 11, 12, 13, 14
_EQUILIBRATE_STREAM, _PILOT_STREAM, _EQUILIBRATE_ACCEPT_STREAM, _RESAMPLE_STREAM = 15, 16, 17, 18
_LADDER_STREAM = 19

ScoreAndGrad = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class AISEstimate:
    """One AIS run: log Z and its standard error, with what the run did.

    log_z: log of the mean importance weight (forward: a stochastic lower bound on log Z;
    reverse: upper). log_z_se: delta-method standard error of log_z. ess: effective sample size
    of the weights, (sum w)^2 / sum w^2. acceptance: mean MALA acceptance over steps and chains
    (None for Langevin). final_delta: the step size at beta = 1. log_weights: [chains] float64.
    final_states: [chains, ...] where the chains ended (forward: approximate samples of the model).
    """

    log_z: float
    log_z_se: float
    direction: str
    chains: int
    steps: int
    transition: str
    schedule: str
    ess: float
    acceptance: float | None
    final_delta: float
    seconds: float
    log_weights: torch.Tensor
    final_states: torch.Tensor | None = None

    def summary(self) -> dict[str, Any]:
        """The figures as plain numbers (no weights, no states)."""
        found = {key: value for key, value in vars(self).items() if key not in ("log_weights", "final_states")}
        return found


def beta_schedule(steps: int, kind: str = "sigmoid", *, sharpness: float = 4.0, first: float = 1e-4) -> torch.Tensor:
    """``steps`` + 1 inverse temperatures from 0 to 1 (float64).

    sigmoid: sigmoid(linspace(-sharpness, sharpness)) rescaled to [0, 1], dense at both ends (Grosse
    et al. 2015); geometric: 0, then ``first`` to 1 geometrically; linear: evenly spaced.
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ConfigError(f"AIS steps must be a positive integer, got {steps!r}")
    if kind == "linear":
        return torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    if kind == "geometric":
        if steps == 1:
            return torch.tensor([0.0, 1.0], dtype=torch.float64)
        tail = torch.logspace(math.log10(first), 0.0, steps, dtype=torch.float64)
        return torch.cat([torch.zeros(1, dtype=torch.float64), tail])
    if kind == "sigmoid":
        curve = torch.sigmoid(torch.linspace(-sharpness, sharpness, steps + 1, dtype=torch.float64))
        return (curve - curve[0]) / (curve[-1] - curve[0])
    raise ConfigError(f"AIS schedule must be one of {', '.join(SCHEDULES)}; got {kind!r}")


def _ladder(schedule: str | torch.Tensor, steps: int) -> tuple[torch.Tensor, int, str]:
    """(betas, steps, name) from a schedule name and ``steps``, or from a given ladder of betas."""
    if not isinstance(schedule, torch.Tensor):
        if schedule == "adaptive":
            raise ConfigError("the adaptive schedule is a ladder from adaptive_betas: pass its betas as schedule")
        return beta_schedule(steps, schedule), steps, schedule
    betas = schedule.detach().to(device="cpu", dtype=torch.float64)
    if betas.dim() != 1 or betas.numel() < 2 or not bool(torch.isfinite(betas).all()):
        raise ConfigError(f"a schedule of inverse temperatures must be a 1-D tensor of >= 2 finite values, got "
                          f"shape {list(betas.shape)}")  # fmt: skip
    if float(betas[0]) != 0.0 or float(betas[-1]) != 1.0 or not bool((betas[1:] > betas[:-1]).all()):
        raise ConfigError("a schedule of inverse temperatures must increase strictly from 0 to 1")
    return betas, betas.numel() - 1, "given"


def log_mean_exp_with_se(log_weights: torch.Tensor) -> tuple[float, float, float]:
    """log mean exp(w), its delta-method standard error and the effective sample size of exp(w)."""
    values = log_weights.to(torch.float64)
    count = values.numel()
    top = values.max()
    scaled = torch.exp(values - top)
    mean = scaled.mean()
    log_mean = float(top + torch.log(mean))
    se = float(scaled.std(unbiased=True) / (math.sqrt(count) * mean)) if count > 1 else math.inf
    ess = float(scaled.sum() ** 2 / scaled.pow(2).sum())
    return log_mean, se, ess


def _model_score_and_grad(model: GenerativeConvNet, ops: Backend) -> ScoreAndGrad:
    def score_and_grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        trace = model.bottom_up(x, ops, check=False)
        return trace.score.to(torch.float64), model.top_down(trace, ops, dtype=x.dtype)

    return score_and_grad


def _check_ais_options(chains: int, steps: int, transition: str, delta: float | None) -> None:
    if not isinstance(chains, int) or isinstance(chains, bool) or chains < 2:
        raise ConfigError(f"AIS chains must be an integer >= 2, got {chains!r}")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ConfigError(f"AIS steps must be a positive integer, got {steps!r}")
    if transition not in TRANSITIONS:
        raise ConfigError(f"AIS transition must be one of {', '.join(TRANSITIONS)}; got {transition!r}")
    if delta is not None and not (math.isfinite(delta) and delta > 0):
        raise ConfigError(f"AIS delta (the transition step size) must be a positive number, got {delta}")


@dataclass
class MixtureBase:
    """q(x) = (1/M) sum_m N(x; centres_m, std^2 I): an AIS start that sits on the model's modes.

    On each activation piece of a GCN's f (f = alpha + <B, x> there) the model is the Gaussian
    N(sigma^2 B, sigma^2 I) cut to the piece, so components at the reconstructions sigma^2 df/dx of
    model samples, with std sigma, start the chains on the pieces that hold the mass instead of at
    N(0, sigma^2 I). q is normalised, with exact samples and an exact density, so AIS from it keeps
    E[weight] = Z and its log Z stays a stochastic lower bound. Chain i starts from component
    i mod M: with the chains a multiple of M the draws are stratified over the components, the mean
    weight is still unbiased, and the i.i.d. standard error can only over-state its spread.

    centres: [M, *shape]; std: the components' standard deviation.
    """

    centres: torch.Tensor
    std: float

    def __post_init__(self) -> None:
        if self.centres.dim() < 2 or self.centres.shape[0] < 1:
            raise ConfigError(f"mixture centres must be [M, ...] with M >= 1, got {list(self.centres.shape)}")
        if not bool(torch.isfinite(self.centres).all()):
            raise ConfigError("mixture centres must be finite")
        if not (math.isfinite(self.std) and self.std > 0):
            raise ConfigError(f"mixture std must be a positive number, got {self.std}")

    @property
    def components(self) -> int:
        return int(self.centres.shape[0])

    def log_density_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log q(x) [B] and d log q / dx (shape of x), float64."""
        flat = x.to(torch.float64).flatten(1)
        centres = self.centres.to(device=x.device, dtype=torch.float64).flatten(1)
        squared = (flat.pow(2).sum(1, keepdim=True) - 2.0 * flat @ centres.T + centres.pow(2).sum(1)).clamp_min(0.0)
        logits = -squared / (2.0 * self.std**2)
        normaliser = math.log(self.components) + 0.5 * flat.shape[1] * math.log(2.0 * math.pi * self.std**2)
        log_q = torch.logsumexp(logits, dim=1) - normaliser
        pulled = torch.softmax(logits, dim=1) @ centres
        return log_q, ((pulled - flat) / self.std**2).view(x.shape)

    def sample(self, normals: torch.Tensor, first_chain: int) -> torch.Tensor:
        """States centres[i mod M] + std * normals for the chains first_chain, first_chain + 1, ..."""
        index = (torch.arange(normals.shape[0]) + first_chain) % self.components
        return self.centres[index].to(device=normals.device, dtype=normals.dtype) + self.std * normals


def reference_base(shape: tuple[int, ...], sigma: float) -> MixtureBase:
    """The Gaussian reference N(0, sigma^2 I) as a one-component ``MixtureBase``."""
    return MixtureBase(torch.zeros((1, *shape)), float(sigma))


@dataclass
class _State:
    """A batch of chain states with what the transitions need: h = log p~ - log q and log q, with
    their gradients (float64)."""

    x: torch.Tensor
    h: torch.Tensor
    grad_h: torch.Tensor
    log_q: torch.Tensor
    grad_log_q: torch.Tensor

    def log_target(self, beta: float) -> torch.Tensor:
        return self.log_q + beta * self.h

    def grad_log_target(self, beta: float) -> torch.Tensor:
        return self.grad_log_q + beta * self.grad_h


def _evaluator(score_and_grad: ScoreAndGrad, base: MixtureBase, sigma: float) -> Callable[[torch.Tensor], _State]:
    """x -> its ``_State`` under p~(x) = exp(f(x)) N(x; 0, sigma^2 I) and the base q."""

    def evaluate(x: torch.Tensor) -> _State:
        score, grad = score_and_grad(x)
        flat = x.to(torch.float64).flatten(1)
        log_reference = -flat.pow(2).sum(1) / (2.0 * sigma**2) - 0.5 * flat.shape[1] * math.log(2 * math.pi * sigma**2)
        log_q, grad_log_q = base.log_density_and_grad(x)
        grad_h = grad.to(torch.float64) - x.to(torch.float64) / sigma**2 - grad_log_q
        return _State(x, score.to(torch.float64) + log_reference - log_q, grad_h, log_q, grad_log_q)

    return evaluate


def _hmc_move(
    evaluate: Callable[[torch.Tensor], _State],
    state: _State,
    beta: float,
    step: float,
    leapfrog: int,
    momentum: torch.Tensor,
    uniform_normals: torch.Tensor,
) -> tuple[_State, torch.Tensor]:
    """One Hamiltonian Monte Carlo transition leaving q^(1 - beta) p~^beta invariant (unit mass,
    ``leapfrog`` steps of size ``step``; one step is MALA). Returns the new states and the accepted mask."""
    p = momentum.to(torch.float64)
    start_energy = -state.log_target(beta) + 0.5 * p.flatten(1).pow(2).sum(1)
    moved = state
    p = p + 0.5 * step * moved.grad_log_target(beta)
    for index in range(leapfrog):
        moved = evaluate((moved.x.to(torch.float64) + step * p).to(state.x.dtype))
        p = p + (step if index < leapfrog - 1 else 0.5 * step) * moved.grad_log_target(beta)
    end_energy = -moved.log_target(beta) + 0.5 * p.flatten(1).pow(2).sum(1)
    log_alpha = torch.nan_to_num(start_energy - end_energy, nan=-math.inf)
    accept = torch.special.log_ndtr(uniform_normals.to(torch.float64)) < log_alpha
    gate = accept.view(-1, *([1] * (state.x.dim() - 1)))
    chosen = _State(
        torch.where(gate, moved.x, state.x), torch.where(accept, moved.h, state.h),
        torch.where(gate, moved.grad_h, state.grad_h), torch.where(accept, moved.log_q, state.log_q),
        torch.where(gate, moved.grad_log_q, state.grad_log_q),
    )  # fmt: skip
    return chosen, accept


def _systematic_resample(
    ops: Backend, state: _State, log_w: torch.Tensor, seed: int, position: int, first_chain: int
) -> _State:
    """The chains drawn in proportion to exp(log_w) by systematic resampling (one seeded uniform)."""
    count = log_w.shape[0]
    uniform = ops.standard_normal(derive_seed(seed, _RESAMPLE_STREAM), position * (1 << 20) + first_chain, (1,),
                                  state.x.device)  # fmt: skip
    offset = float(torch.special.ndtr(uniform.to(torch.float64))[0])
    cumulative = torch.cumsum(torch.softmax(log_w, dim=0), dim=0)
    marks = (offset + torch.arange(count, dtype=torch.float64, device=log_w.device)) / count
    index = torch.searchsorted(cumulative, marks).clamp_max(count - 1)
    return _State(state.x[index], state.h[index], state.grad_h[index], state.log_q[index], state.grad_log_q[index])


def _anneal_hmc(
    evaluate: Callable[[torch.Tensor], _State],
    ops: Backend,
    x: torch.Tensor,
    betas: torch.Tensor,
    step: float,
    leapfrog: int,
    adapt: bool,
    seed: int,
    first_chain: int,
    reverse: bool,
    resample: float = 0.0,
) -> tuple[torch.Tensor, float, float, torch.Tensor]:
    """``_anneal`` on the path q^(1 - beta) p~^beta from a base q with HMC moves: the weight gains
    (beta_k - beta_{k-1}) h(x), h = log p~ - log q.

    With ``resample`` > 0 the batch is one sequential Monte Carlo population: whenever the ESS of
    its weights falls below ``resample`` x its size, the log of their mean is banked and the chains
    are resampled in proportion to their weights (systematic resampling), weights reset to 1. The
    returned log weights then include the banked sum, so their mean is the population's estimate
    of Z (or 1/Z in reverse), unbiased, but the chains of one population are no longer independent.
    """
    count, numel = x.shape[0], x[0].numel()
    banked = 0.0
    stride = max(first_chain + count, 1 << 20) * numel
    levels = betas.tolist()
    order = list(range(1, len(levels))) if not reverse else list(range(len(levels) - 2, -1, -1))
    log_w = torch.zeros(count, dtype=torch.float64, device=x.device)
    state = evaluate(x)
    rates: list[float] = []
    target = TARGET_ACCEPTANCE if leapfrog == 1 else HMC_TARGET_ACCEPTANCE
    for position, k in enumerate(order):
        previous = levels[k - 1] if not reverse else levels[k + 1]
        beta = levels[k]
        log_w += (beta - previous) * state.h
        if position == len(order) - 1:
            break
        if resample > 0:
            log_mean, _, ess = log_mean_exp_with_se(log_w)
            if ess < resample * count:
                state = _systematic_resample(ops, state, log_w, seed, position, first_chain)
                banked += log_mean
                log_w = torch.zeros_like(log_w)
        momentum = ops.standard_normal(derive_seed(seed, _STEP_STREAM), position * stride + first_chain * numel,
                                       tuple(x.shape), x.device)  # fmt: skip
        normals = ops.standard_normal(derive_seed(seed, _ACCEPT_STREAM), position * (1 << 20) + first_chain,
                                      (count,), x.device)  # fmt: skip
        state, accept = _hmc_move(evaluate, state, beta, step, leapfrog, momentum, normals)
        rates.append(float(accept.double().mean()))
        if adapt:
            step = step * math.exp(rates[-1] - target)
    return log_w + banked, sum(rates) / len(rates) if rates else 1.0, step, state.x


def _target(
    model: GenerativeConvNet | ScoreAndGrad,
    shape: tuple[int, ...] | None,
    sigma: float | None,
    backend: str | Backend,
    device: torch.device | str,
) -> tuple[ScoreAndGrad, tuple[int, ...], float, Backend, torch.dtype]:
    """(score_and_grad, state shape, reference sigma, ops, state dtype) of a model or a function."""
    ops = resolve_backend(backend, device)
    if isinstance(model, GenerativeConvNet):
        shape = tuple(shape or (model.spec.in_channels, *model.spec.image_size))
        sigma = model.sigma if sigma is None else float(sigma)
        score_and_grad, dtype = _model_score_and_grad(model, ops), model.dtype
    else:
        if shape is None or sigma is None:
            raise ConfigError("AIS needs shape and sigma with a score-and-gradient function")
        score_and_grad, dtype = model, torch.float32
    if not (math.isfinite(sigma) and sigma > 0):
        raise ConfigError(f"sigma (the reference std) must be a positive number, got {sigma}")
    return score_and_grad, tuple(shape), float(sigma), ops, dtype


def _next_beta(log_w: torch.Tensor, h: torch.Tensor, beta: float, cess: float) -> float:
    """The largest beta' <= 1 whose step keeps the conditional ESS of the weights >= ``cess``:
    (sum_i W_i u_i)^2 / sum_i W_i u_i^2 with W the normalised weights and u = exp((beta' - beta) h)."""
    log_normalised = torch.log_softmax(log_w, dim=0)

    def conditional_ess(candidate: float) -> float:
        increment = (candidate - beta) * h
        first = torch.logsumexp(log_normalised + increment, dim=0)
        second = torch.logsumexp(log_normalised + 2.0 * increment, dim=0)
        return float(torch.exp(2.0 * first - second))

    if conditional_ess(1.0) >= cess:
        return 1.0
    low, high = beta, 1.0
    for _ in range(60):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if conditional_ess(middle) >= cess else (low, middle)
    # the conditional ESS tends to 1 as the step shrinks, so low > beta but for rounding
    return max(low, math.nextafter(beta, 2.0))


def adaptive_betas(
    model: GenerativeConvNet | ScoreAndGrad,
    *,
    shape: tuple[int, ...] | None = None,
    sigma: float | None = None,
    chains: int = 64,
    cess: float = 0.5,
    max_steps: int = 5000,
    transition: str = "hmc",
    leapfrog: int = 8,
    delta: float | None = None,
    base: MixtureBase | None = None,
    seed: int = 0,
    backend: str | Backend = "auto",
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, AISEstimate]:
    """A ladder of inverse temperatures chosen by conditional ESS, from one sequential Monte Carlo run.

    One population of ``chains`` anneals from the base (default N(0, sigma^2 I)) to the model on the
    path q^(1 - beta) p~^beta; each next beta is the largest whose weight increments keep the
    conditional ESS of the weights at ``cess`` (Zhou, Johansen & Aston 2016), so the ladder is dense
    where the targets change fast; the population is resampled (systematically) when its ESS falls
    below half its size, and moved by one MALA or HMC transition per beta. The run's own log Z is
    consistent but, its schedule depending on its own weights, not unbiased: use the ladder, fixed,
    for an independent ``annealed_log_z`` run (with ``resample`` for SMC), whose log Z is then a
    stochastic lower bound as with any fixed schedule.

    Args:
        model, shape, sigma, transition, leapfrog, delta, base, seed, backend, device: as in
            ``annealed_log_z`` (transition mala or hmc).
        chains: the population's size; cess: the conditional ESS kept per step, in (0, 1) (higher:
            more, smaller steps); max_steps: the most steps; a ladder that reaches it takes its last
            step to beta = 1 (still a valid ladder, a poor one: the estimate says how many it took).
    Returns:
        (betas [K + 1] float64 from 0 to 1, the run's AISEstimate with schedule "adaptive", its
        log_z_se NaN: one resampled population carries no error estimate of its own).

    Example:
        >>> betas, ladder = adaptive_betas(model, chains=64, cess=0.5)
        >>> estimate = annealed_log_z(model, chains=64, schedule=betas, transition="hmc", resample=0.5, batch_size=16)
    """
    _check_ais_options(chains, 1, transition, delta)
    if transition not in ("mala", "hmc"):
        raise ConfigError(f"the adaptive ladder takes transition mala or hmc, got {transition!r}")
    if not (isinstance(cess, float | int) and 0 < cess < 1):
        raise ConfigError(f"the conditional ESS of the adaptive ladder must be in (0, 1), got {cess!r}")
    if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
        raise ConfigError(f"the adaptive ladder's max_steps must be a positive integer, got {max_steps!r}")
    if not isinstance(leapfrog, int) or isinstance(leapfrog, bool) or leapfrog < 1:
        raise ConfigError(f"HMC leapfrog steps must be a positive integer, got {leapfrog!r}")
    score_and_grad, shape, sigma, ops, dtype = _target(model, shape, sigma, backend, device)
    dimension = math.prod(shape)
    leapfrog = leapfrog if transition == "hmc" else 1
    step = delta if delta is not None else (sigma * dimension ** (-0.25) if transition == "hmc"
                                            else 0.5 * sigma * dimension ** (-1.0 / 6.0))  # fmt: skip
    base = base if base is not None else reference_base(shape, sigma)
    if tuple(base.centres.shape[1:]) != tuple(shape):
        raise ConfigError(f"mixture centres must be [M, {', '.join(map(str, shape))}], got {list(base.centres.shape)}")
    evaluate = _evaluator(score_and_grad, base, sigma)
    target = TARGET_ACCEPTANCE if leapfrog == 1 else HMC_TARGET_ACCEPTANCE
    began = time.perf_counter()
    with torch.no_grad(), packing_scope():
        normals = ops.standard_normal(derive_seed(seed, _INIT_STREAM), 0, (chains, *shape), device)
        state = evaluate(base.sample(normals, 0).to(dtype))
        log_w = torch.zeros(chains, dtype=torch.float64, device=state.x.device)
        levels, banked, rates = [0.0], 0.0, []
        while levels[-1] < 1.0:
            beta = _next_beta(log_w, state.h, levels[-1], cess) if len(levels) < max_steps else 1.0
            log_w = log_w + (beta - levels[-1]) * state.h
            levels.append(beta)
            if beta >= 1.0:
                break
            position = len(levels) - 2
            log_mean, _, ess = log_mean_exp_with_se(log_w)
            if ess < 0.5 * chains:
                state = _systematic_resample(ops, state, log_w, derive_seed(seed, _LADDER_STREAM), position, 0)
                banked += log_mean
                log_w = torch.zeros_like(log_w)
            momentum = ops.standard_normal(derive_seed(seed, _STEP_STREAM), position * chains * dimension,
                                           (chains, *shape), state.x.device)  # fmt: skip
            uniform = ops.standard_normal(derive_seed(seed, _ACCEPT_STREAM), position * chains, (chains,),
                                          state.x.device)  # fmt: skip
            state, accept = _hmc_move(evaluate, state, beta, step, leapfrog, momentum, uniform)
            rates.append(float(accept.double().mean()))
            step *= math.exp(rates[-1] - target)
    weights = (log_w + banked).cpu()
    log_z, _, ess = log_mean_exp_with_se(weights)
    betas = torch.tensor(levels, dtype=torch.float64)
    estimate = AISEstimate(
        log_z=log_z, log_z_se=math.nan, direction="forward", chains=chains, steps=len(levels) - 1,
        transition=transition, schedule="adaptive", ess=ess, acceptance=sum(rates) / len(rates) if rates else 1.0,
        final_delta=step, seconds=time.perf_counter() - began, log_weights=weights, final_states=state.x,
    )  # fmt: skip
    return betas, estimate


def annealed_log_z(
    model: GenerativeConvNet | ScoreAndGrad,
    *,
    shape: tuple[int, ...] | None = None,
    sigma: float | None = None,
    chains: int = 128,
    steps: int = 200,
    transition: str = "mala",
    delta: float | None = None,
    adapt: bool | None = None,
    schedule: str | torch.Tensor = "sigmoid",
    start: torch.Tensor | None = None,
    base: MixtureBase | None = None,
    leapfrog: int = 8,
    resample: float = 0.0,
    seed: int = 0,
    batch_size: int | None = None,
    backend: str | Backend = "auto",
    device: torch.device | str = "cpu",
) -> AISEstimate:
    """Estimate log Z of exp(f(x)) N(x; 0, sigma^2 I) by AIS from the Gaussian reference or a base.

    Args:
        model: a ``GenerativeConvNet``, or a function x [B, ...] -> (f(x) [B], df/dx [B, ...]).
        shape: the shape of one state (default: the model's [C, H, W]); sigma: the reference std
            (default: the model's). Both are needed with a function.
        chains: independent AIS runs (importance weights); steps: transitions, one per beta.
        transition: "mala" (Metropolis-adjusted; exact invariance), "hmc" (Hamiltonian Monte
            Carlo, ``leapfrog`` steps per move, Metropolis-adjusted), "pcn" or "langevin"
            (unadjusted: cheaper, biased by its step size); with a ``base``, mala or hmc.
        delta: step size of the transitions; default 0.5 sigma D^(-1/6) for MALA, sigma D^(-1/4)
            for HMC's leapfrog (both then adapted, see ``adapt``); the model's training delta is
            *not* assumed.
        adapt: MALA only (default on): after each step multiply delta by exp(acceptance - 0.6),
            the acceptance taken over all chains, so delta follows the targets as beta grows. It
            depends on each chain's own past only through a 1/chains share.
        schedule: "sigmoid", "geometric" or "linear" (``beta_schedule``), or the inverse temperatures
            themselves, [K + 1] increasing from 0 to 1 (``adaptive_betas``' ladder); ``steps`` is then K.
        start: reverse AIS: [chains, ...] samples of the model (beta = 1), annealed down to 0;
            the estimate is then an upper bound on log Z (exact only for exact samples).
        base: a normalised start q other than N(0, sigma^2 I) (``MixtureBase``); the path is then
            q^(1 - beta) p~^beta, p~ = exp(f) N(0, sigma^2 I), and chains should be a multiple of
            its components.
        leapfrog: HMC's leapfrog steps per transition (each costs one f and df/dx).
        resample: mala/hmc with a base or hmc: sequential Monte Carlo, each batch of
            ``batch_size`` chains one population resampled when its ESS falls below ``resample`` x
            its size (0: plain AIS). log Z is then the log of the populations' mean estimate and
            its standard error comes from their spread (at least 2 populations).
        seed: seed of the initial states, the noise and the MALA decisions.
        batch_size: chains run at once (default all).
    Returns:
        AISEstimate (forward: a stochastic lower bound on log Z; reverse: an upper bound).

    Example:
        >>> estimate = annealed_log_z(model, chains=64, steps=100)
        >>> estimate.log_z, estimate.log_z_se
    """
    betas, steps, schedule_name = _ladder(schedule, steps)
    _check_ais_options(chains, steps, transition, delta)
    score_and_grad, shape, sigma, ops, dtype = _target(model, shape, sigma, backend, device)
    if start is not None and (start.dim() != len(shape) + 1 or tuple(start.shape[1:]) != tuple(shape)):
        raise ConfigError(f"start must be model samples [chains, {', '.join(map(str, shape))}], "
                          f"got {list(start.shape)}")  # fmt: skip
    if start is not None:
        chains = start.shape[0]
    dimension = math.prod(shape)
    adapt = transition != "langevin" if adapt is None else adapt
    step_size = delta if delta is not None else 0.5 * sigma * dimension ** (-1.0 / 6.0)
    generic = transition == "hmc" or base is not None
    if generic:
        if transition not in ("mala", "hmc"):
            raise ConfigError(f"AIS from a mixture base takes transition mala or hmc, got {transition!r}")
        if not isinstance(leapfrog, int) or isinstance(leapfrog, bool) or leapfrog < 1:
            raise ConfigError(f"HMC leapfrog steps must be a positive integer, got {leapfrog!r}")
        leapfrog = leapfrog if transition == "hmc" else 1
        if delta is None and transition == "hmc":
            step_size = sigma * dimension ** (-0.25)
        base = base if base is not None else reference_base(shape, sigma)
        if tuple(base.centres.shape[1:]) != tuple(shape):
            raise ConfigError(f"mixture centres must be [M, {', '.join(map(str, shape))}], "
                              f"got {list(base.centres.shape)}")  # fmt: skip
        if start is None and chains % base.components:
            raise ConfigError(f"AIS chains ({chains}) must be a multiple of the base's {base.components} components")
        evaluate = _evaluator(score_and_grad, base, sigma)
    if not (math.isfinite(resample) and 0 <= resample <= 1):
        raise ConfigError(f"AIS resample (an ESS fraction) must be in [0, 1], got {resample}")
    if resample > 0:
        if not generic:
            raise ConfigError(f"resampling AIS takes transition hmc, or mala with a base; got {transition!r}")
        if batch_size is None or chains % max(1, int(batch_size)) or chains // max(1, int(batch_size)) < 2:
            raise ConfigError(f"resampling AIS needs batch_size dividing chains ({chains}) into at least 2 "
                              f"populations, got {batch_size!r}")  # fmt: skip
    batch = chains if batch_size is None else max(1, min(int(batch_size), chains))
    began = time.perf_counter()
    log_weights, accepted, final_deltas, ends = [], [], [], []
    with torch.no_grad(), packing_scope():
        for first in range(0, chains, batch):
            count = min(batch, chains - first)
            if start is None:
                normals = ops.standard_normal(derive_seed(seed, _INIT_STREAM), first * dimension, (count, *shape),
                                              device)  # fmt: skip
                x0 = (base.sample(normals, first) if generic else sigma * normals).to(dtype)
            else:
                x0 = start[first : first + count].to(device=device, dtype=dtype)
            if generic:
                found = _anneal_hmc(evaluate, ops, x0, betas, step_size, leapfrog, adapt, seed, first,
                                    reverse=start is not None, resample=resample)  # fmt: skip
            else:
                found = _anneal(score_and_grad, ops, x0, betas, sigma, transition, step_size, adapt, seed, first,
                                reverse=start is not None)  # fmt: skip
            log_weights.append(found[0])
            accepted.append(found[1] * count)
            final_deltas.append(found[2])
            ends.append(found[3])
    weights = torch.cat(log_weights).cpu()
    log_mean, se, ess = log_mean_exp_with_se(weights)
    if resample > 0:
        # chains of one population are dependent: the error comes from the populations' estimates
        populations = torch.stack([torch.logsumexp(w, 0) - math.log(w.numel()) for w in log_weights]).cpu()
        se = log_mean_exp_with_se(populations)[1]
    acceptance = None if transition == "langevin" else float(sum(accepted) / chains)
    return AISEstimate(
        log_z=log_mean if start is None else -log_mean, log_z_se=se,
        direction="forward" if start is None else "reverse", chains=chains, steps=steps, transition=transition,
        schedule=schedule_name, ess=ess, acceptance=acceptance, final_delta=float(final_deltas[-1]),
        seconds=time.perf_counter() - began, log_weights=weights, final_states=torch.cat(ends),
    )  # fmt: skip


def _anneal(
    score_and_grad: ScoreAndGrad,
    ops: Backend,
    x: torch.Tensor,
    betas: torch.Tensor,
    sigma: float,
    transition: str,
    delta: float,
    adapt: bool,
    seed: int,
    first_chain: int,
    reverse: bool,
) -> tuple[torch.Tensor, float, float, torch.Tensor]:
    """One batch of AIS chains: log weights [B] (float64), mean acceptance over the moves, last delta,
    the final states.

    Forward: w += (beta_k - beta_{k-1}) f(x), then a move at beta_k, k = 1..K (no move after the
    last). Reverse: w += (beta_k - beta_{k+1}) f(x), then a move at beta_k, k = K-1..0 (a move at
    beta = 0 changes no weight and is skipped). Each chain draws its noise at its own place in the
    stream, so the batch size does not change the result.
    """
    count, numel = x.shape[0], x[0].numel()
    # Move t of chain i draws its noise at counter (t * 2^20 + i) * numel + e: batches of one run
    # never share noise, and the batch size does not change a chain.
    stride = max(first_chain + count, 1 << 20) * numel
    counter = noise_counter(derive_seed(seed, _STEP_STREAM), 0, x.device)
    levels = betas.tolist()
    order = list(range(1, len(levels))) if not reverse else list(range(len(levels) - 2, -1, -1))
    log_w = torch.zeros(count, dtype=torch.float64, device=x.device)
    score, grad = score_and_grad(x)
    rates: list[float] = []
    for position, k in enumerate(order):
        previous = levels[k - 1] if not reverse else levels[k + 1]
        beta = levels[k]
        log_w += (beta - previous) * score
        if position == len(order) - 1:
            break
        offset = position * stride + first_chain * numel
        form = _proposal_form(transition, delta, sigma)
        proposal = ops.langevin_update(x, (form[0] * beta) * grad, form[1], form[2], seed=counter, offset=offset)
        new_score, new_grad = score_and_grad(proposal)
        if transition == "langevin":
            x, score, grad = proposal, new_score, new_grad
            continue
        log_alpha = _mh_log_ratio(x, score, grad, proposal, new_score, new_grad, beta, sigma, form)
        normals = ops.standard_normal(derive_seed(seed, _ACCEPT_STREAM), position * (1 << 20) + first_chain,
                                      (count,), x.device)  # fmt: skip
        accept = torch.special.log_ndtr(normals.to(torch.float64)) < log_alpha
        gate = accept.view(-1, *([1] * (x.dim() - 1)))
        x = torch.where(gate, proposal, x)
        score = torch.where(accept, new_score, score)
        grad = torch.where(gate, new_grad, grad)
        rates.append(float(accept.double().mean()))
        if adapt:
            delta = delta * math.exp(rates[-1] - TARGET_ACCEPTANCE)
            delta = min(delta, sigma) if transition == "pcn" else delta
    return log_w, sum(rates) / len(rates) if rates else 1.0, delta, x


def _proposal_form(transition: str, delta: float, sigma: float) -> tuple[float, float, float]:
    """(gradient scale, op delta, op sigma): the proposal x + (d^2/2)(scale beta df/dx - x/s^2) + d z.

    mala / langevin: the GCN step itself (1, delta, sigma). pcn: the step that is exactly
    reversible for the Gaussian N(sigma^2 beta B, sigma^2 I) that p_beta is on each activation
    piece of f (f = alpha + <B, x> there): x' = mu + rho (x - mu) + delta z, rho = sqrt(1 -
    delta^2 / sigma^2), mu = sigma^2 beta df/dx, so a proposal that stays on its piece is always
    accepted and only piece changes are rejected; delta <= sigma (delta = sigma draws from the piece).
    """
    if transition != "pcn":
        return 1.0, delta, sigma
    delta = min(delta, sigma)
    rho = math.sqrt(max(0.0, 1.0 - (delta / sigma) ** 2))
    op_sigma = delta / math.sqrt(2.0 * (1.0 - rho))
    return sigma**2 / op_sigma**2, delta, op_sigma


def _mh_log_ratio(
    x: torch.Tensor,
    score: torch.Tensor,
    grad: torch.Tensor,
    proposal: torch.Tensor,
    new_score: torch.Tensor,
    new_grad: torch.Tensor,
    beta: float,
    sigma: float,
    form: tuple[float, float, float],
) -> torch.Tensor:
    """log of the Metropolis-Hastings ratio of a Langevin-form proposal under p_beta, per chain."""
    scale, delta, op_sigma = form

    def mean(states: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
        states = states.to(torch.float64)
        return states + 0.5 * delta**2 * (scale * beta * gradient.to(torch.float64) - states / op_sigma**2)

    def log_target(states: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        return beta * value - states.to(torch.float64).flatten(1).pow(2).sum(dim=1) / (2.0 * sigma**2)

    forward = (proposal.to(torch.float64) - mean(x, grad)).flatten(1).pow(2).sum(dim=1)
    backward = (x.to(torch.float64) - mean(proposal, new_grad)).flatten(1).pow(2).sum(dim=1)
    return log_target(proposal, new_score) - log_target(x, score) + (forward - backward) / (2.0 * delta**2)


def equilibrate(
    model: GenerativeConvNet,
    states: torch.Tensor,
    *,
    moves: int,
    leapfrog: int = 8,
    delta: float | None = None,
    seed: int = 0,
    backend: str | Backend = "auto",
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, float]:
    """``moves`` HMC transitions at beta = 1 (the model itself) from ``states``: brings persistent
    training chains, which lag the model they trained, nearer to its samples before reverse AIS.

    Args:
        model: a GCN or wGCN; states: [N, C, H, W] in model space; moves: transitions (>= 0);
        leapfrog, delta: as in ``annealed_log_z`` (the step size is adapted towards 70 % acceptance).
    Returns:
        (the states after the moves, their mean acceptance).

    Example:
        >>> samples, acceptance = equilibrate(model, run.record["chains"], moves=100)
    """
    if not isinstance(moves, int) or isinstance(moves, bool) or moves < 0:
        raise ConfigError(f"equilibration moves must be an integer >= 0, got {moves!r}")
    if moves == 0:
        return states, 1.0
    ops = resolve_backend(backend, device)
    shape = tuple(states.shape[1:])
    evaluate = _evaluator(_model_score_and_grad(model, ops), reference_base(shape, model.sigma), model.sigma)
    step = delta if delta is not None else model.sigma * math.prod(shape) ** (-0.25)
    count, numel = states.shape[0], math.prod(shape)
    rates = []
    with torch.no_grad(), packing_scope():
        state = evaluate(states.to(device=device, dtype=model.dtype))
        for move in range(moves):
            momentum = ops.standard_normal(derive_seed(seed, _EQUILIBRATE_STREAM), move * count * numel,
                                           (count, *shape), state.x.device)  # fmt: skip
            normals = ops.standard_normal(derive_seed(seed, _EQUILIBRATE_ACCEPT_STREAM), move * count, (count,),
                                          state.x.device)  # fmt: skip
            state, accept = _hmc_move(evaluate, state, 1.0, step, leapfrog, momentum, normals)
            rates.append(float(accept.double().mean()))
            step *= math.exp(rates[-1] - HMC_TARGET_ACCEPTANCE)
    return state.x, sum(rates) / len(rates)


def chain_mixture(model: GenerativeConvNet, states: torch.Tensor, components: int, backend: str | Backend = "auto",
                  std: float | None = None) -> MixtureBase:  # fmt: skip
    """A ``MixtureBase`` at the reconstructions sigma^2 df/dx of the first ``components`` states
    (model samples), std sigma: the Gaussian pieces those samples sit on."""
    with torch.no_grad():
        centres = model.sigma**2 * model.grad_f(states[:components].to(model.dtype), backend)
    return MixtureBase(centres.float().cpu(), float(std if std is not None else model.sigma))


@dataclass
class LikelihoodReport:
    """Held-out log-likelihood of a model, with the AIS estimates of log Z it rests on.

    nats / bits_per_dim: the mean over the images of log p(x) (per image, grey-level scale) and
    -log p / (D ln 2), from forward AIS: upper bounds on the log-likelihood in expectation (lower
    bounds on bits/dim). *_se: the AIS standard error (log Z's, the same for every image);
    *_data_se: the standard error of the mean over the images. nats_lower / bits_per_dim_upper:
    from reverse AIS when it ran (log_z_upper < log_z beyond the errors says the reverse start was
    not a sample of the model). base: the forward start ("reference", "chains" or "pilot"); pilot:
    the pilot run's figures (its log_z is a lower bound too, from fewer, costlier steps). ladder:
    with the adaptive schedule, the figures of the run that chose the betas (its log_z is
    consistent, not a bound: its schedule follows its own weights).
    """

    images: int
    dimension: int
    pixel_scale: float
    dequantized: bool
    log_z: float
    log_z_se: float
    nats: float
    nats_se: float
    nats_data_se: float
    bits_per_dim: float
    bits_per_dim_se: float
    bits_per_dim_data_se: float
    forward: dict[str, Any]
    log_z_upper: float | None = None
    log_z_upper_se: float | None = None
    nats_lower: float | None = None
    bits_per_dim_upper: float | None = None
    reverse: dict[str, Any] | None = None
    base: str = "reference"
    equilibrate_acceptance: float | None = None
    pilot: dict[str, Any] | None = None
    ladder: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def unnormalised_log_density(
    model: GenerativeConvNet, x: torch.Tensor, backend: str | Backend = "auto"
) -> torch.Tensor:
    """f(x) + log N(x; 0, sigma^2 I) per image (float64): log p(x) + log Z."""
    with torch.no_grad():
        score = model.bottom_up(x.to(model.dtype), backend).score.to(torch.float64)
    flat = x.to(torch.float64).flatten(1)
    dimension = flat.shape[1]
    variance = model.sigma**2
    return score - flat.pow(2).sum(dim=1) / (2.0 * variance) - 0.5 * dimension * math.log(2 * math.pi * variance)


def log_likelihood(
    model: GenerativeConvNet | str | Path,
    data: torch.Tensor | str | None = None,
    *,
    scale: PixelScale | None = None,
    chains: int = 128,
    steps: int = 200,
    transition: str = "mala",
    delta: float | None = None,
    schedule: str = "sigmoid",
    cess: float = 0.5,
    reverse: bool = False,
    reverse_start: torch.Tensor | None = None,
    base: str = "reference",
    leapfrog: int = 8,
    equilibrate_moves: int = 0,
    pilot_steps: int | None = None,
    resample: float = 0.0,
    populations: int = 4,
    dequantize: bool = False,
    seed: int = 0,
    batch_size: int | None = None,
    backend: str | Backend = "auto",
    device: torch.device | str = "cpu",
) -> LikelihoodReport:
    """Mean held-out log-likelihood of images under a GCN or wGCN, in nats and bits per dimension.

    Args:
        model: a ``GenerativeConvNet`` or a checkpoint path written by ``genconv train``.
        data: [N, C, H, W] images in pixel units [0, 255] (with ``scale`` for a model; a checkpoint
            brings its own), or a dataset spec; None with a checkpoint: its held-out images (its
            training images when it held none out).
        scale: the model's ``PixelScale`` (default for a model: centred on the data's own mean).
        chains, steps, transition, delta, schedule, seed, batch_size: the forward AIS run
            (``annealed_log_z``). schedule "adaptive": a first, independent run (``adaptive_betas``, as
            many chains as one population, mala or hmc, at most ``steps`` steps) chooses the betas by
            conditional ESS ``cess`` on the main run's path; the forward and reverse runs then use
            that ladder, fixed, so their bounds hold as with any fixed schedule.
        reverse: also run reverse AIS from model samples, an upper bound on log Z (a lower bound
            on the likelihood) when the samples are exact; ``reverse_start`` gives the samples in
            model space, else a checkpoint's persistent chains (cycled) are used.
        base: the forward start: "reference" (N(0, sigma^2 I)), "chains" (``chain_mixture`` of the
            model samples, one component per sample up to the largest count dividing ``chains``) or
            "pilot" (the same mixture at the end states of a first, independent forward AIS run of
            ``pilot_steps`` from the reference; those states also start reverse AIS). The pilot
            fixes q before the main run draws anything, so the main run stays a lower bound.
        pilot_steps: steps of the pilot run (default ``steps``; with the adaptive schedule the pilot
            runs the sigmoid one).
        resample, populations: sequential Monte Carlo for every AIS run here (``annealed_log_z``'s
            ``resample``), the chains split into ``populations`` equal populations.
        leapfrog: HMC's leapfrog steps (transition "hmc").
        equilibrate_moves: HMC moves at beta = 1 applied to the model samples (``equilibrate``)
            before they start reverse AIS or place the mixture.
        dequantize: add U(-1/2, 1/2) grey levels to every pixel (seeded) before evaluating.
    Returns:
        LikelihoodReport; ``nats`` and ``bits_per_dim`` rest on forward AIS, whose log Z is a
        stochastic lower bound, so they are upper (nats) and lower (bits/dim) bounds in expectation.

    Example:
        >>> report = log_likelihood("runs/faces/checkpoint.pt", chains=128, steps=200)
        >>> report.bits_per_dim, report.bits_per_dim_se
    """
    chains_start = None
    if isinstance(model, (str, Path)):
        from genconv.engine.evaluate import reference_images
        from genconv.engine.generate import load_run

        run = load_run(model, device=device)
        if run.record["model_kind"] == "ggcn":
            raise ConfigError("the log-likelihood is defined for gcn and wgcn checkpoints (a ggcn's density is "
                              "over its generator's latent space too)")  # fmt: skip
        images = data if isinstance(data, torch.Tensor) else reference_images(run.config, data)[0]
        scale = run.scale
        net = run.model
        chains_start = run.record.get("chains")
    else:
        net = model
        if not isinstance(data, torch.Tensor):
            raise ConfigError("log_likelihood needs data as a [N, C, H, W] tensor of pixel values with a model")
        images = data
        scale = scale or PixelScale.for_images("centred", images)
    if images.dim() != 4 or images.shape[0] < 1:
        raise ConfigError(f"data must be images [N, C, H, W] with N >= 1, got {list(images.shape)}")
    images = images.to(torch.float32)
    if dequantize:
        generator = torch.Generator().manual_seed(derive_seed(seed, _DEQUANTIZE_STREAM))
        images = images + torch.rand(images.shape, generator=generator) - 0.5
    x = scale.to_model(images).to(device)
    net.check_input(x)
    dimension = math.prod(x.shape[1:])
    if base not in BASES:
        raise ConfigError(f"AIS base must be one of {', '.join(BASES)}; got {base!r}")
    adaptive = schedule == "adaptive"
    if adaptive and transition not in ("mala", "hmc"):
        raise ConfigError(f"the adaptive schedule takes transition mala or hmc, got {transition!r}")
    if resample > 0:
        if not isinstance(populations, int) or populations < 2 or chains % populations:
            raise ConfigError(f"AIS populations must be an integer >= 2 dividing the chains ({chains}), "
                              f"got {populations!r}")  # fmt: skip
        batch_size = chains // populations
    per_image = unnormalised_log_density(net, x, backend).cpu()
    samples, settled, pilot = reverse_start, None, None
    if samples is None and chains_start is not None:
        samples = chains_start.to(torch.float32)
    if base == "pilot":
        pilot = annealed_log_z(net, chains=chains, steps=pilot_steps or steps, transition=transition, delta=delta,
                               schedule="sigmoid" if adaptive else schedule, leapfrog=leapfrog,
                               seed=derive_seed(seed, _PILOT_STREAM), resample=resample, batch_size=batch_size,
                               backend=backend, device=device)  # fmt: skip
        samples = pilot.final_states.to(torch.float32)
    if samples is not None and (reverse or base != "reference"):
        samples, settled = equilibrate(net, samples, moves=equilibrate_moves, leapfrog=leapfrog, seed=seed,
                                       backend=backend, device=device)  # fmt: skip
        settled = settled if equilibrate_moves else None
    mixture = None
    if base != "reference":
        if samples is None:
            raise ConfigError("base 'chains' needs model samples: give reverse_start (or a checkpoint with chains)")
        components = max(m for m in range(1, min(chains, samples.shape[0]) + 1) if chains % m == 0)
        mixture = chain_mixture(net, samples, components, backend)
    ladder = None
    if adaptive:
        schedule, ladder = adaptive_betas(net, chains=batch_size or chains, cess=cess, max_steps=steps,
                                          transition=transition, leapfrog=leapfrog, delta=delta, base=mixture,
                                          seed=derive_seed(seed, _LADDER_STREAM), backend=backend,
                                          device=device)  # fmt: skip
    forward = annealed_log_z(net, chains=chains, steps=steps, transition=transition, delta=delta, schedule=schedule,
                             base=mixture, leapfrog=leapfrog, resample=resample, seed=seed, batch_size=batch_size,
                             backend=backend, device=device)  # fmt: skip
    pixel_shift = dimension * math.log(scale.scale)
    log_p = per_image - forward.log_z - pixel_shift
    nats = float(log_p.mean())
    data_se = float(log_p.std(unbiased=True) / math.sqrt(log_p.numel())) if log_p.numel() > 1 else 0.0
    bits = dimension * math.log(2.0)
    report = LikelihoodReport(
        images=int(x.shape[0]), dimension=dimension, pixel_scale=scale.scale, dequantized=dequantize,
        log_z=forward.log_z, log_z_se=forward.log_z_se, nats=nats, nats_se=forward.log_z_se, nats_data_se=data_se,
        bits_per_dim=-nats / bits, bits_per_dim_se=forward.log_z_se / bits, bits_per_dim_data_se=data_se / bits,
        forward=forward.summary(), base=base, equilibrate_acceptance=settled,
        pilot=pilot.summary() if pilot is not None else None,
        ladder=ladder.summary() if ladder is not None else None,
    )  # fmt: skip
    if reverse:
        if samples is None:
            raise ConfigError("reverse AIS needs model samples: give reverse_start (or a checkpoint with chains)")
        start = samples if reverse_start is not None else samples[torch.arange(chains) % samples.shape[0]]
        upper = annealed_log_z(net, chains=chains, steps=steps, transition=transition, delta=delta,
                               schedule=schedule, start=start.to(torch.float32), base=mixture, leapfrog=leapfrog,
                               resample=resample, seed=seed + 1, batch_size=batch_size, backend=backend,
                               device=device)  # fmt: skip
        lower_nats = float((per_image - upper.log_z - pixel_shift).mean())
        report.log_z_upper, report.log_z_upper_se = upper.log_z, upper.log_z_se
        report.nats_lower, report.bits_per_dim_upper = lower_nats, -lower_nats / bits
        report.reverse = upper.summary()
    return report
