"""Draw samples from a trained checkpoint (GCN, wGCN or GGCN), in batches of one noise stream."""

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genconv.bindings.backends import resolve_backend
from genconv.bindings.errors import ChainDivergedError, CheckpointError, ConfigError, GenconvError
from genconv.engine.checkpoint import check_run_record, load_checkpoint
from genconv.engine.config import TrainConfig
from genconv.engine.data import PixelScale
from genconv.engine.generator import GeneratorSpec, UpsamplingGenerator
from genconv.engine.hidden import hidden_energy_scale, hidden_langevin
from genconv.engine.langevin import check_step_sizes, init_chains, langevin
from genconv.engine.model import GenerativeConvNet
from genconv.engine.network import NetworkSpec
from genconv.engine.outputs import write_atomic
from genconv.engine.progress import progress_reporter
from genconv.engine.seeding import CHAIN_INIT_STREAM, HIDDEN_STREAM, LANGEVIN_STREAM, LATENT_STREAM, derive_seed

SAMPLE_INITS: tuple[str, ...] = ("noise", "zeros", "chains", "generator")


@dataclass
class Samples:
    """Samples in model space ([N, C, H, W] float32 on the CPU) and the map back to pixels."""

    x: torch.Tensor
    scale: PixelScale

    def pixels(self) -> torch.Tensor:
        """uint8 [N, C, H, W] images in [0, 255]."""
        return self.scale.to_pixels(self.x)

    def image_space(self) -> torch.Tensor:
        """float32 [N, C, H, W] in pixel units (not clipped)."""
        return self.scale.to_pixel_values(self.x)


@dataclass
class LoadedRun:
    """A trained model rebuilt from its checkpoint."""

    model: GenerativeConvNet
    generator: UpsamplingGenerator | None
    scale: PixelScale
    config: TrainConfig
    record: dict[str, Any]


def load_run(path: str | Path, expected_model: str | None = None, device: torch.device | str = "cpu") -> LoadedRun:
    """Rebuild the model (and GGCN generator) a checkpoint holds, in eval mode on ``device``."""
    record = load_checkpoint(path, expected_model=expected_model, map_location="cpu")
    check_run_record(record, path)
    try:
        model = GenerativeConvNet(NetworkSpec.from_dict(record["network"]), sigma=float(record["sigma"]))
        model.load_state_dict(record["model"])
        generator = None
        if "generator" in record:
            generator = UpsamplingGenerator(GeneratorSpec.from_dict(record["generator_spec"]))
            generator.load_state_dict(record["generator"])
        config = TrainConfig.from_dict(record["config"])
        scale = PixelScale.from_dict(record["pixels"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as error:
        if isinstance(error, GenconvError):
            raise
        raise CheckpointError(
            f"checkpoint {str(path)!r} is inconsistent: its model cannot be rebuilt ({type(error).__name__}: "
            f"{' '.join(str(error).split())[:200]})"
        ) from None
    if generator is not None:
        generator = generator.to(device).eval()
    return LoadedRun(model.to(device).eval(), generator, scale, config, record)


def model_from_checkpoint(
    path: str | Path, expected_model: str | None = None, device: torch.device | str = "cpu"
) -> tuple[GenerativeConvNet, dict[str, Any]]:
    """The energy model a checkpoint holds and the checkpoint record."""
    run = load_run(path, expected_model, device)
    return run.model, run.record


def default_init(run: LoadedRun) -> str:
    """Where chains start unless told: GGCN's generator, else the run's own chains.

    A GCN or wGCN learns its energy along the chains it trains with, so the states those chains
    reached are where the model's samples live; fresh noise needs far longer chains than the run
    ever ran (noise -> texture takes thousands of steps at the training step size).
    """
    if run.generator is not None:
        return "generator"
    return "chains" if "chains" in run.record else "noise"


DEFAULT_SAMPLE_STEPS = 200  # image-space steps of a GCN or wGCN sampling run unless told


def sampling_steps(run: LoadedRun, init: str, steps: int | None, hidden_steps: int | None) -> tuple[int, int]:
    """(image-space steps, hidden steps) of a sampling run, the unset ones from the run.

    GGCN drawing from its generator samples as it trained: the run's hidden steps on z ~ N(0, I),
    g, then the run's refinement steps. Other runs take ``DEFAULT_SAMPLE_STEPS`` image-space steps
    and no hidden steps.
    """
    ggcn = run.generator is not None and init == "generator"
    if steps is None:
        steps = int(run.config.langevin_steps or 0) if ggcn else DEFAULT_SAMPLE_STEPS
    if hidden_steps is None:
        hidden_steps = int(run.config.hidden_steps or 0) if ggcn else 0
    return steps, hidden_steps


def _start(run: LoadedRun, init: str, first: int, count: int, total: int, seed: int, hidden_steps: int,
           backend: str, device: torch.device | str) -> torch.Tensor:  # fmt: skip
    """Initial states of chains first .. first + count of a sampling run."""
    if init == "chains":
        if "chains" not in run.record:
            raise ConfigError("init 'chains' needs a checkpoint with persistent chains (gcn or wgcn)")
        index = (torch.arange(count) + first) % run.record["chains"].shape[0]
        return run.record["chains"][index].to(device)
    if init == "generator":
        if run.generator is None:
            raise ConfigError("init 'generator' needs a GGCN checkpoint")
        latent_dim = run.generator.spec.latent_dim
        ops = resolve_backend(backend, device)
        z = ops.standard_normal(derive_seed(seed, LATENT_STREAM), first * latent_dim, (count, latent_dim), device)
        if hidden_steps:
            z = hidden_langevin(
                run.model, run.generator, z, steps=hidden_steps, step_size=run.config.hidden_step_size,
                seed=derive_seed(seed, HIDDEN_STREAM), stream_offset=first * latent_dim,
                stream_stride=total * latent_dim, grad_clip=run.config.hidden_grad_clip, backend=backend,
                energy_scale=hidden_energy_scale(run.model, run.config.hidden_gradient),
            ).x  # fmt: skip
        with torch.no_grad():
            return run.generator(z)
    assert run.config.image_size is not None
    shape = (run.model.spec.in_channels, run.config.image_size, run.config.image_size)
    return init_chains(init, count, shape, run.model.sigma, seed=derive_seed(seed, CHAIN_INIT_STREAM),
                       device=device, backend=backend, first_chain=first)  # fmt: skip


def sample_checkpoint(
    path: str | Path,
    *,
    num: int,
    steps: int | None = None,
    seed: int = 0,
    delta: float | None = None,
    init: str | None = None,
    hidden_steps: int | None = None,
    batch_size: int = 64,
    backend: str = "auto",
    device: torch.device | str = "cpu",
    expected_model: str | None = None,
    progress: bool = False,
) -> Samples:
    """Run ``num`` Langevin chains for ``steps`` image-space steps under a checkpoint's model.

    Args:
        path: checkpoint file written by ``genconv train``.
        num: number of samples; steps: image-space Langevin steps per chain (GGCN: refinement steps;
            default ``sampling_steps``: the run's for GGCN from its generator, else 200).
        seed: fixes the result; every chain draws the same noise whatever ``batch_size`` is
            (results then agree up to the rounding of batched convolutions).
        delta: step size, default the run's.
        init: "noise" (N(0, sigma^2)), "zeros", "chains" (the run's persistent chains, cycled) or
            "generator" (GGCN: z ~ N(0, I) -> g(z)); default ``default_init``: "generator" for GGCN,
            "chains" for GCN and wGCN.
        hidden_steps: GGCN: hidden-space Langevin steps on z before g (default: the run's).
        batch_size: chains run at once.
    Returns:
        Samples on the CPU.
    """
    if num < 1 or batch_size < 1:
        raise ConfigError(f"num and batch size must be >= 1, got {num} and {batch_size}")
    if (steps is not None and steps < 0) or (hidden_steps is not None and hidden_steps < 0):
        raise ConfigError(f"steps and hidden steps must be >= 0, got {steps} and {hidden_steps}")
    run = load_run(path, expected_model, device)
    init = init or default_init(run)
    steps, hidden_steps = sampling_steps(run, init, steps, hidden_steps)
    with progress_reporter(num, enabled=progress, unit="sample") as bar:
        x = sample_range(run, 0, num, num, steps=steps, seed=seed, delta=delta, init=init, hidden_steps=hidden_steps,
                         batch_size=batch_size, backend=backend, device=device, on_batch=bar.update)  # fmt: skip
    return Samples(x, run.scale)


def sample_range(
    run: LoadedRun,
    first: int,
    count: int,
    total: int,
    *,
    steps: int,
    seed: int,
    delta: float | None,
    init: str,
    hidden_steps: int,
    batch_size: int,
    backend: str,
    device: torch.device | str,
    on_batch: Callable[[int], object] | None = None,
) -> torch.Tensor:
    """Chains ``first .. first + count`` of a ``total``-chain sampling run: [count, C, H, W] model space, CPU.

    Every chain's noise is fixed by its global index (and ``seed``), so a range gives the same
    chains whichever process computes it and however the run is split.
    """
    if init not in SAMPLE_INITS:
        raise ConfigError(f"init must be one of {', '.join(SAMPLE_INITS)}; got {init!r}")
    delta = float(run.config.delta if delta is None else delta)
    check_step_sizes(delta, run.model.sigma)
    clamp = None  # a GGCN run refining within the pixel range samples within it
    if run.generator is not None and init == "generator" and run.config.refine_clamp == "pixel-range":
        clamp = (min(run.generator.spec.output_low), max(run.generator.spec.output_high))
    batches = []
    for start_index in range(first, first + count, batch_size):
        size = min(batch_size, first + count - start_index)
        start = _start(run, init, start_index, size, total, seed, hidden_steps, backend, device)
        chain_size = math.prod(start.shape[1:])
        if not bool(torch.isfinite(start).all()):
            raise ChainDivergedError(
                f"the chains' starting states (--init {init}) hold NaN/Inf"
                + (": the hidden-space steps diverged; try fewer --hidden-steps" if hidden_steps else "")
            )
        try:
            result = langevin(
                run.model, start, steps=steps, delta=delta, seed=derive_seed(seed, LANGEVIN_STREAM),
                stream_offset=start_index * chain_size, stream_stride=total * chain_size, backend=backend,
                clamp=clamp,
            )  # fmt: skip
        except ChainDivergedError as error:
            where = f"at step {error.step} of {steps}" if error.step else f"within {steps} steps"
            raise ChainDivergedError(
                f"samples became NaN/Inf {where} at step size {delta:g}; try a smaller --delta (the run trained "
                f"with {run.config.delta:g})",
                error.step,
            ) from None
        batches.append(result.x.float().cpu())
        if on_batch is not None:
            on_batch(size)
    return torch.cat(batches)


def check_raw_path(path: str | Path) -> Path:
    """The path raw samples go to; ConfigError unless it ends in .npy or .pt."""
    path = Path(path)
    if path.suffix.lower() not in (".npy", ".pt"):
        raise ConfigError(f"raw samples must go to a .npy or .pt file, got {str(path)!r}")
    return path


def save_raw(values: torch.Tensor, path: str | Path) -> Path:
    """Write samples as .npy or .pt through a temporary file, so a crash leaves no torn file."""
    path = check_raw_path(path)
    suffix = path.suffix.lower()
    data = values.detach().cpu().contiguous()

    def write(handle: Any) -> None:
        if suffix == ".npy":
            np.save(handle, data.numpy())
        else:
            torch.save(data, handle)

    return write_atomic(path, write)
