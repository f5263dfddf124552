"""Draw samples from a trained GCN checkpoint, in batches that all draw from one noise stream."""

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from genconv.bindings.errors import ConfigError
from genconv.engine.checkpoint import load_checkpoint
from genconv.engine.data import to_pixels
from genconv.engine.langevin import check_step_sizes, init_chains, langevin
from genconv.engine.model import GenerativeConvNet
from genconv.engine.network import NetworkSpec
from genconv.engine.seeding import CHAIN_INIT_STREAM, LANGEVIN_STREAM, derive_seed

SAMPLE_INITS: tuple[str, ...] = ("noise", "zeros", "chains")


@dataclass
class Samples:
    """Samples in model space ([N, C, H, W] float32 on the CPU) and the mean that maps them to pixels."""

    x: torch.Tensor
    mean: torch.Tensor

    def pixels(self) -> torch.Tensor:
        """uint8 [N, C, H, W] images in [0, 255]."""
        return to_pixels(self.x, self.mean)

    def image_space(self) -> torch.Tensor:
        """float32 [N, C, H, W] in pixel units (mean added back, not clipped)."""
        return self.x + self.mean.view(1, -1, 1, 1)


def model_from_checkpoint(
    path: str | Path, expected_model: str | None = None, device: torch.device | str = "cpu"
) -> tuple[GenerativeConvNet, dict]:
    """Rebuild the model a checkpoint holds; returns (model in eval mode, checkpoint record)."""
    record = load_checkpoint(path, expected_model=expected_model, map_location="cpu")
    model = GenerativeConvNet(NetworkSpec.from_dict(record["network"]), sigma=float(record["sigma"]))
    model.load_state_dict(record["model"])
    return model.to(device).eval(), record


def sample_checkpoint(
    path: str | Path,
    *,
    num: int,
    steps: int,
    seed: int = 0,
    delta: float | None = None,
    init: str = "noise",
    batch_size: int = 64,
    backend: str = "auto",
    device: torch.device | str = "cpu",
    expected_model: str | None = None,
    progress: bool = False,
) -> Samples:
    """Run ``num`` Langevin chains for ``steps`` steps under a checkpoint's model.

    Args:
        path: checkpoint file written by ``genconv train``.
        num: number of samples; steps: Langevin steps per chain.
        seed: fixes the result; every chain draws the same noise whatever ``batch_size`` is
            (results then agree up to the rounding of batched convolutions).
        delta: step size, default the run's; init: "noise" (N(0, sigma^2)), "zeros", or "chains"
            (continue the run's persistent chains, cycled).
        batch_size: chains run at once.
    Returns:
        Samples on the CPU.
    """
    if num < 1 or batch_size < 1:
        raise ConfigError(f"num and batch size must be >= 1, got {num} and {batch_size}")
    if steps < 0:
        raise ConfigError(f"steps must be >= 0, got {steps}")
    if init not in SAMPLE_INITS:
        raise ConfigError(f"init must be one of {', '.join(SAMPLE_INITS)}; got {init!r}")
    model, record = model_from_checkpoint(path, expected_model, device)
    delta = float(record["config"]["delta"] if delta is None else delta)
    check_step_sizes(delta, model.sigma)
    chain_shape = tuple(record["chains"].shape[1:])
    chain_size = math.prod(chain_shape)
    batches = []
    with tqdm(total=num, disable=not progress, unit="sample") as bar:
        for first in range(0, num, batch_size):
            count = min(batch_size, num - first)
            if init == "chains":
                index = (torch.arange(count) + first) % record["chains"].shape[0]
                start = record["chains"][index].to(device)
            else:
                start = init_chains(
                    init,
                    count,
                    chain_shape,
                    model.sigma,
                    seed=derive_seed(seed, CHAIN_INIT_STREAM),
                    device=device,
                    backend=backend,
                    first_chain=first,
                )
            result = langevin(
                model,
                start,
                steps=steps,
                delta=delta,
                seed=derive_seed(seed, LANGEVIN_STREAM),
                stream_offset=first * chain_size,
                stream_stride=num * chain_size,
                backend=backend,
            )
            batches.append(result.x.float().cpu())
            bar.update(count)
    return Samples(torch.cat(batches), record["data_mean"].float())


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
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as handle:
        if suffix == ".npy":
            np.save(handle, values.detach().cpu().contiguous().numpy())
        else:
            torch.save(values.detach().cpu().contiguous(), handle)
    os.replace(temporary, path)
    return path
