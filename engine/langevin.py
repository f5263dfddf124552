"""Langevin dynamics for a Generative ConvNet, driven by the reconstruction error.

    x <- x - (delta^2 / (2 sigma^2)) (x - sigma^2 df/dx) + delta * z,   z ~ N(0, I)

(the GCN paper's convention: noise std delta, drift delta^2/2, reference term
-(delta^2/(2 sigma^2)) x). Noise is counter-based: step t of a run with ``seed`` draws element e
at counter (start_step + t) * numel + e, so the same seed gives the same chain on every backend
and a chain can be continued exactly from ``next_step``.
"""

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from genconv.bindings.backends import Backend, packing_scope, resolve_backend
from genconv.bindings.errors import ChainDivergedError, ConfigError, InputTypeError
from genconv.bindings.graphs import CHAIN_GRAPHS, ChainKey
from genconv.bindings.ops import noise_counter
from genconv.bindings.sampler import check_clamp
from genconv.bindings.seeding import seed_from
from genconv.engine.model import GenerativeConvNet, LangevinStepArgs

InitKind = Literal["noise", "zeros", "data"]
INIT_KINDS: tuple[str, ...] = ("noise", "zeros", "data")


@dataclass
class LangevinDiagnostics:
    """Per-step, per-chain figures, each [steps, B], taken at the state before each update.

    energy: E(x) = ||x||^2/(2 sigma^2) - f(x); grad_norm: ||df/dx||; recon_error:
    mean |x - sigma^2 df/dx| (the paper's reconstruction error).
    """

    energy: torch.Tensor
    grad_norm: torch.Tensor
    recon_error: torch.Tensor


@dataclass
class LangevinResult:
    """Final chain states, the counter to continue the same noise stream, optional diagnostics."""

    x: torch.Tensor
    seed: int
    next_step: int
    diagnostics: LangevinDiagnostics | None = None


def check_step_sizes(delta: float, sigma: float) -> None:
    """ConfigError unless the step size delta and the reference std sigma are positive and finite."""
    for name, value in (("delta", delta), ("sigma", sigma)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InputTypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    if not (delta > 0 and delta < float("inf")):
        raise ConfigError(f"delta (the Langevin step size) must be a positive number, got {delta}")
    if not (sigma > 0 and sigma < float("inf")):
        raise ConfigError(f"sigma (the reference std) must be a positive number, got {sigma}")


def check_chain_tensor(name: str, x: object, dims: int | None = None) -> torch.Tensor:
    """``x`` if it is a floating-point torch tensor (with ``dims`` dimensions and a batch >= 1); InputTypeError
    for NumPy arrays, lists, integer, boolean or complex tensors, ConfigError for a wrong shape."""
    if not isinstance(x, torch.Tensor):
        hint = " (torch.from_numpy(array).float() makes one)" if type(x).__module__ == "numpy" else ""
        raise InputTypeError(f"{name} must be a torch.Tensor, got {type(x).__module__}.{type(x).__name__}{hint}")
    if not x.is_floating_point():
        raise InputTypeError(
            f"{name} must be a floating-point tensor (float32, float64, float16 or bfloat16), got {x.dtype}: Langevin "
            "steps would be truncated or lose the imaginary part"
        )
    if (dims is not None and x.dim() != dims) or x.dim() < 1 or x.shape[0] < 1:
        expected = "[B, C, H, W]" if dims == 4 else "[B, ...]"
        raise ConfigError(f"{name} must be a tensor {expected} with B >= 1, got shape {list(x.shape)}")
    return x


def first_nonfinite_step(flags: list[torch.Tensor]) -> int | None:
    """The first step (from 1) whose flag says the states were not finite, or None; one device sync."""
    if not flags:
        return None
    bad = torch.stack(flags)
    if not bool(bad.any()):
        return None
    return int(bad.nonzero()[0, 0]) + 1


def diverged(step: int | None, steps: int, start_step: int, hint: str) -> ChainDivergedError:
    """The error for chains that became NaN/Inf (at ``step`` of ``steps`` when known)."""
    where = f"at step {step} of {steps}" if step is not None else f"within {steps} steps"
    return ChainDivergedError(
        f"Langevin chains became NaN/Inf {where} (noise counter step {start_step + (step or steps) - 1}); {hint}",
        step,
    )


def standard_normal(
    seed: int, shape: tuple[int, ...], device: torch.device | str, backend: str | Backend = "auto", offset: int = 0
) -> torch.Tensor:
    """Counter-based N(0, 1) numbers: the same values for a seed on every backend and device."""
    return resolve_backend(backend, device).standard_normal(seed, offset, shape, device)


def init_chains(
    kind: str,
    num: int,
    shape: tuple[int, int, int],
    sigma: float,
    *,
    seed: int = 0,
    data: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    backend: str | Backend = "auto",
    first_chain: int = 0,
) -> torch.Tensor:
    """Initial chain states [num, *shape]: N(0, sigma^2) noise, zeros (the mean image) or data.

    Args:
        kind: "noise", "zeros" or "data" (copies of ``data``, cycled).
        num: number of chains; shape: (C, H, W); sigma: reference std for "noise".
        seed: seed of the noise; data: [N, C, H, W] model-space images for "data".
        first_chain: global index of the first chain, so batches of one run draw disjoint noise.
    """
    if kind not in INIT_KINDS:
        raise ConfigError(f"chain init must be one of {', '.join(INIT_KINDS)}; got {kind!r}")
    if num < 1:
        raise ConfigError(f"the number of chains must be >= 1, got {num}")
    full_shape = (num, *shape)
    if kind == "zeros":
        return torch.zeros(full_shape, device=device, dtype=dtype)
    if kind == "data":
        if data is None or data.shape[0] == 0:
            raise ConfigError("chain init 'data' needs observed images")
        index = (torch.arange(num, device=data.device) + first_chain) % data.shape[0]
        return data[index].to(device=device, dtype=dtype).clone()
    chain_size = math.prod(shape)
    normals = standard_normal(seed, full_shape, device, backend, offset=first_chain * chain_size)
    return (sigma * normals).to(dtype)


def langevin(
    model: GenerativeConvNet,
    x: torch.Tensor,
    *,
    steps: int,
    delta: float,
    sigma: float | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    start_step: int = 0,
    stream_offset: int = 0,
    stream_stride: int | None = None,
    noise: torch.Tensor | None = None,
    noise_free: bool = False,
    clamp: tuple[float, float] | None = None,
    backend: str | Backend = "auto",
    diagnostics: bool = False,
    callback: Callable[[int, torch.Tensor], None] | None = None,
    cuda_graph: bool = True,
    check_finite: bool = True,
) -> LangevinResult:
    """Run ``steps`` Langevin steps of ``model`` from the chain states ``x``.

    Args:
        model: the GCN whose density exp(f) N(0, sigma^2) is sampled.
        x: [B, C, H, W] initial states (model space, a floating-point tensor); not modified.
        steps: number of updates, >= 0 (0 returns a copy of x).
        delta: step size = noise std, > 0.
        sigma: reference std, default ``model.sigma``.
        seed / generator: the noise stream (a generator only draws the seed); neither = torch's RNG.
        start_step: counter of the first step, to continue a stream (``LangevinResult.next_step``).
        stream_offset, stream_stride: step t draws its noise at counters stream_offset +
            (start_step + t) * stream_stride + e (stride default x.numel()); chains sampled in
            batches use offset = first chain * chain size and stride = all chains' size, so each
            chain draws the same noise however the chains are batched.
        noise: [steps, B, C, H, W] standard normals to use instead of the counter-based stream.
        noise_free: gradient descent on the energy (no noise): converges to auto-encoding images.
        clamp: optional (low, high) bounds on the states after each step, finite low < high.
        backend: "torch", "triton", "auto" or a Backend.
        diagnostics: record energy, ||df/dx|| and reconstruction error per step and chain.
        callback: called as callback(step_index, states) after every step.
        cuda_graph: on CUDA with the fused kernels, record a chain whose shapes repeat in a CUDA
            graph and replay it (not with diagnostics, a callback, given noise or noise_free).
        check_finite: refuse non-finite starting states and raise ``ChainDivergedError`` naming the
            first step whose states became NaN/Inf (checked with one device sync at the end of the
            run; a recorded graph names no step); False lets such chains continue.
    Returns:
        LangevinResult with the final states (x's dtype, a new tensor) and, if asked, the diagnostics. A
        bfloat16 chain runs its convolutions in bfloat16 and keeps its states in float32 between
        steps (``state_dtype``); callbacks see those float32 states.

    Raises:
        InputTypeError: x or noise is not a floating-point torch tensor; ConfigError: other bad
        arguments (a reversed clamp, negative steps, ...); ChainDivergedError: see check_finite.

    Example:
        >>> result = langevin(model, torch.zeros(4, 1, 32, 32), steps=20, delta=0.3, seed=0)
        >>> result.x.shape
        torch.Size([4, 1, 32, 32])
    """
    check_chain_tensor("x", x, dims=4)
    sigma = model.sigma if sigma is None else sigma
    check_step_sizes(delta, sigma)
    delta, sigma = float(delta), float(sigma)
    for name, value in (("steps", steps), ("start_step", start_step), ("stream_offset", stream_offset)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
    steps, start_step, stream_offset = int(steps), int(start_step), int(stream_offset)
    integral = isinstance(stream_stride, numbers.Integral) and not isinstance(stream_stride, bool)
    if stream_stride is not None and not integral:
        raise ConfigError(f"stream_stride must be an integer or None, got {stream_stride!r}")
    stride = x.numel() if stream_stride is None else int(stream_stride)
    if stride < x.numel():
        raise ConfigError(f"stream_stride must be at least x.numel() = {x.numel()}, got {stride}")
    if noise is not None:
        check_chain_tensor("noise", noise)
        if noise.shape[0] < steps or tuple(noise.shape[1:]) != tuple(x.shape):
            raise ConfigError(
                f"noise must have shape [{steps}, {', '.join(map(str, x.shape))}], got {list(noise.shape)}"
            )
    clamp = check_clamp(clamp)
    if check_finite and not bool(torch.isfinite(x).all()):
        raise ConfigError("x holds NaN or infinite values: chains must start from finite states")
    if steps == 0:
        empty = _stack_diagnostics([], x.shape[0], x.device) if diagnostics else None
        return LangevinResult(x=x.detach().clone(), seed=seed_from(seed, generator), next_step=start_step,
                              diagnostics=empty)  # fmt: skip
    run_seed = seed_from(seed, generator)
    hint = f"try a smaller delta (now {delta:g})"
    ops = resolve_backend(backend, x.device)
    model.check_input(x)
    plain = not (diagnostics or noise_free or noise is not None or callback is not None)
    if cuda_graph and plain and x.is_cuda and ops.name == "triton" and steps > 0:
        parameters = tuple((p.data_ptr(), tuple(p.shape)) for p in model.parameters())
        key = ChainKey(
            id(model), model.spec, parameters, tuple(x.shape), x.dtype, x.device,
            steps, float(delta), sigma, stride, clamp, ops.name,
        )  # fmt: skip

        def runner(states: torch.Tensor, counter: torch.Tensor) -> torch.Tensor:
            return _fused_chain(model, ops, states, steps, delta, sigma, counter, stride, clamp)

        replayed = CHAIN_GRAPHS.run(key, x, run_seed, stream_offset + start_step * stride, runner)
        if replayed is not None:
            if check_finite and first_nonfinite_step([~torch.isfinite(replayed).all()]) is not None:
                raise diverged(None, steps, start_step, hint)
            return LangevinResult(x=replayed, seed=run_seed, next_step=start_step + steps)
    # One [seed, base] tensor for the whole chain: the kernels read it, a step adds its offset.
    counter = noise_counter(run_seed, 0, x.device)
    records: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    flags: list[torch.Tensor] = []  # per step: were any states non-finite (checked once, at the end)
    zeros = torch.zeros_like(x) if noise_free else None
    state = x.to(state_dtype(x.dtype))
    with packing_scope():
        for step in range(steps):
            step_noise = zeros if noise_free else (None if noise is None else noise[step])
            update = LangevinStepArgs(
                x=state,
                delta=delta,
                sigma=sigma,
                seed=counter,
                offset=stream_offset + (start_step + step) * stride,
                noise=step_noise,
                clamp=clamp,
            )
            trace = model.bottom_up(state.to(x.dtype), ops, score=diagnostics, check=False)
            if diagnostics:
                grad = model.top_down(trace, ops, dtype=x.dtype)
                records.append(_step_diagnostics(state, trace.score, grad, sigma))
                state = ops.langevin_update(
                    state, grad, delta, sigma, seed=counter, offset=update.offset, noise=step_noise, clamp=clamp
                )
            else:
                state = model.top_down(trace, ops, dtype=x.dtype, langevin=update)
            if check_finite:
                flags.append(~torch.isfinite(state).all())
            if callback is not None:
                callback(step, state)
    if check_finite:
        bad_step = first_nonfinite_step(flags)
        if bad_step is not None:
            raise diverged(bad_step, steps, start_step, hint)
    found = None
    if diagnostics:
        found = _stack_diagnostics(records, x.shape[0], x.device)
    return LangevinResult(x=state.to(x.dtype), seed=run_seed, next_step=start_step + steps, diagnostics=found)


def state_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a chain keeps its states in: float32 for bfloat16 chains (whose convolutions run in
    bfloat16), since a bfloat16 state would round away Langevin steps smaller than its 2^-8
    relative spacing; the chain's own dtype otherwise."""
    return torch.float32 if dtype == torch.bfloat16 else dtype


def _fused_chain(
    model: GenerativeConvNet,
    ops: Backend,
    x: torch.Tensor,
    steps: int,
    delta: float,
    sigma: float,
    counter: torch.Tensor,
    stride: int,
    clamp: tuple[float, float] | None,
) -> torch.Tensor:
    """``steps`` fused steps whose kernels read [seed, base] from ``counter``: what a graph records."""
    state = x.to(state_dtype(x.dtype))
    with packing_scope():
        for step in range(steps):
            update = LangevinStepArgs(x=state, delta=delta, sigma=sigma, seed=counter, offset=step * stride,
                                      clamp=clamp)  # fmt: skip
            trace = model.bottom_up(state.to(x.dtype), ops, score=False, check=False)
            state = model.top_down(trace, ops, dtype=x.dtype, langevin=update)
    return state.to(x.dtype)


def _step_diagnostics(
    x: torch.Tensor, score: torch.Tensor, grad: torch.Tensor, sigma: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    flat_x = x.to(dtype).flatten(1)
    flat_grad = grad.to(dtype).flatten(1)
    energy = flat_x.pow(2).sum(dim=1) / (2.0 * sigma**2) - score.to(dtype)
    recon_error = (flat_x - sigma**2 * flat_grad).abs().mean(dim=1)
    return energy, flat_grad.norm(dim=1), recon_error


def _stack_diagnostics(
    records: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], batch: int, device: torch.device
) -> LangevinDiagnostics:
    if not records:
        empty = torch.zeros((0, batch), device=device)
        return LangevinDiagnostics(empty, empty.clone(), empty.clone())
    energy, grad_norm, recon = (torch.stack(column) for column in zip(*records, strict=True))
    return LangevinDiagnostics(energy=energy, grad_norm=grad_norm, recon_error=recon)
