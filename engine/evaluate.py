"""`genconv eval`: sample quality of a checkpoint against held-out (or training) images."""

from pathlib import Path
from typing import Any

import torch

from genconv.engine.data import load_images
from genconv.engine.generate import default_init, load_run, sample_checkpoint, sampling_steps
from genconv.engine.likelihood import log_likelihood
from genconv.engine.metrics import (
    frechet_distance,
    inception_outputs,
    inception_score,
    load_inception,
    sliced_wasserstein_distance,
)
from genconv.engine.trainer import split_holdout


def reference_images(config: Any, data: str | None = None) -> tuple[torch.Tensor, str]:
    """Pixel images [N, C, H, W] to compare samples with: the run's held-out split, else its training images."""
    images = load_images(data or config.data, config.image_size, config.max_images)
    if data is not None:
        return images, "given"
    training, held_out = split_holdout(images, config.holdout)
    return (held_out, "held-out") if held_out.shape[0] else (training, "training")


def evaluate_checkpoint(
    path: str | Path,
    *,
    num: int,
    steps: int | None = None,
    init: str | None = None,
    hidden_steps: int | None = None,
    seed: int = 0,
    data: str | None = None,
    inception: str | None = None,
    backend: str = "auto",
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """SWD (and FID/IS with a local Inception network) of ``num`` samples against reference images.

    ``steps`` defaults to the run's Langevin steps per iteration, ``hidden_steps`` to the run's
    (GGCN from its generator); ``init`` as in ``sample_checkpoint``.
    """
    run = load_run(path, device="cpu")
    steps = run.config.langevin_steps if steps is None else steps
    steps, hidden_steps = sampling_steps(run, init or default_init(run), steps, hidden_steps)
    samples = sample_checkpoint(path, num=num, steps=steps, seed=seed, init=init, hidden_steps=hidden_steps,
                                backend=backend, device=device)  # fmt: skip
    reference, which = reference_images(run.config, data)
    synthesized = samples.image_space().clamp(0, 255)
    swd = sliced_wasserstein_distance(synthesized, reference, seed=seed)
    report: dict[str, Any] = {
        "checkpoint": str(path),
        "model": run.record["model_kind"],
        "samples": num,
        "steps": steps,
        "reference": which,
        "reference_images": int(reference.shape[0]),
        "swd_x1e3": swd.mean,
        "swd_x1e3_per_level": {str(size): value for size, value in swd.per_level.items()},
    }
    if inception is not None:
        network = load_inception(inception, device)
        pixels, reference_pixels = samples.pixels().to(device), reference.round().to(torch.uint8).to(device)
        features = inception_outputs(network, pixels, return_features=True)
        reference_features = inception_outputs(network, reference_pixels, return_features=True)
        report["fid"] = frechet_distance(features, reference_features)
        report["inception_score"] = inception_score(inception_outputs(network, pixels, no_output_bias=True))
    return report


def likelihood_of_checkpoint(
    path: str | Path,
    *,
    data: str | None = None,
    chains: int = 128,
    steps: int = 200,
    transition: str = "mala",
    schedule: str = "sigmoid",
    cess: float = 0.5,
    delta: float | None = None,
    reverse: bool = False,
    base: str = "reference",
    leapfrog: int = 8,
    equilibrate_moves: int = 0,
    pilot_steps: int | None = None,
    resample: float = 0.0,
    populations: int = 4,
    dequantize: bool = False,
    seed: int = 0,
    backend: str = "auto",
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """The held-out log-likelihood of a GCN or wGCN checkpoint by AIS (``genconv.log_likelihood``), as a report."""
    run = load_run(path, device="cpu")
    reference, which = reference_images(run.config, data)
    found = log_likelihood(path, reference, chains=chains, steps=steps, transition=transition, delta=delta,
                           schedule=schedule, cess=cess, reverse=reverse, base=base, leapfrog=leapfrog,
                           equilibrate_moves=equilibrate_moves, pilot_steps=pilot_steps, resample=resample,
                           populations=populations, dequantize=dequantize,
                           seed=seed, backend=backend,
                           device=device)  # fmt: skip
    return {"checkpoint": str(path), "model": run.record["model_kind"], "reference": which,
            "reference_images": int(reference.shape[0]), **found.to_dict()}  # fmt: skip
