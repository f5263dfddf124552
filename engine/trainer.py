"""Maximum-likelihood learning of a GCN with persistent Langevin chains (Algorithm 1).

Each iteration runs ``langevin_steps`` Langevin steps on the synthesized chains under the current
weights, then takes one Adam step on mean f(synthesized) - mean f(observed), i.e. ascends
mean df/dw(observed) - mean df/dw(synthesized). A run directory holds config.json,
metrics.jsonl, checkpoint.pt (atomic) and PNG grids (observed beside synthesized).
"""

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from genconv.bindings.errors import ChainDivergedError, CheckpointError, ConfigError
from genconv.engine import data as datasets
from genconv.engine.checkpoint import load_checkpoint, save_checkpoint
from genconv.engine.config import TrainConfig, resolve_device
from genconv.engine.images import grid_array, save_png, side_by_side
from genconv.engine.langevin import init_chains, langevin
from genconv.engine.model import GenerativeConvNet
from genconv.engine.network import NetworkSpec
from genconv.engine.objectives import maximum_likelihood_loss
from genconv.engine.presets import get_preset, network_for
from genconv.engine.seeding import (
    CHAIN_INIT_STREAM,
    DATA_ORDER_STREAM,
    LANGEVIN_STREAM,
    MODEL_INIT_STREAM,
    derive_seed,
)

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.jsonl"
CONFIG_NAME = "config.json"
LATEST_IMAGE_NAME = "latest.png"


@dataclass
class TrainSummary:
    """What a finished (or stopped) run leaves behind."""

    iterations: int
    checkpoint: Path
    last_metrics: dict[str, Any]


def _write_json_atomic(payload: dict[str, Any], path: Path) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


def _keep_metrics_up_to(path: Path, iteration: int) -> None:
    """Drop metric lines past ``iteration`` (written after the checkpoint a run resumes from)."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["iteration"] <= iteration]
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text("".join(line + "\n" for line in kept))
    os.replace(temporary, path)


def default_num_chains(config: TrainConfig, num_images: int) -> int:
    """The preset's chain count: per image (texture) or fixed (object)."""
    preset = get_preset(config.preset)
    if config.num_chains is not None:
        return config.num_chains
    if preset.chains_per_image is not None:
        return preset.chains_per_image * num_images
    assert preset.num_chains is not None
    return preset.num_chains


class Trainer:
    """A resumable GCN training run writing into ``out_dir``.

    Args:
        config: the run's options (preset defaults are filled in).
        out_dir: the run directory; it must not already hold a run unless ``resume``.
        resume: continue the run in ``out_dir`` from its checkpoint.
        progress: show a progress bar.

    Example:
        >>> trainer = Trainer(TrainConfig(data="texture:brick", image_size=32, iterations=5), "runs/demo")
        >>> summary = trainer.fit()
    """

    def __init__(
        self, config: TrainConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True
    ) -> None:
        self.out_dir = Path(out_dir)
        self.progress = progress
        checkpoint_path = self.out_dir / CHECKPOINT_NAME
        record = None
        if resume:
            record = load_checkpoint(checkpoint_path, expected_model=config.model)
            config = _resumed_config(TrainConfig.from_dict(record["config"]), config)
        elif checkpoint_path.exists():
            raise ConfigError(
                f"--out {str(self.out_dir)!r} already holds a run ({CHECKPOINT_NAME}); pass --resume to "
                "continue it or choose another --out"
            )
        self.config = config.resolved()
        self.device = resolve_device(self.config.device)
        self._build(record)

    def _build(self, record: dict[str, Any] | None) -> None:
        config = self.config
        assert config.image_size is not None and config.data is not None
        images = datasets.load_images(config.data, config.image_size, config.max_images)
        self.mean = datasets.channel_mean(images) if record is None else record["data_mean"].cpu()
        self.observed = datasets.to_model_space(images, self.mean).to(self.device)
        if record is None:
            spec = network_for(config.preset, images.shape[1], config.image_size, slope=config.slope)
        else:
            spec = NetworkSpec.from_dict(record["network"])
            if spec.in_channels != images.shape[1]:
                raise CheckpointError(
                    f"the checkpoint's model reads {spec.in_channels}-channel images but {config.data} has "
                    f"{images.shape[1]}"
                )
        assert config.sigma is not None and config.lr is not None and config.beta1 is not None
        init_seed = derive_seed(config.seed, MODEL_INIT_STREAM)
        self.model = GenerativeConvNet(spec, sigma=config.sigma, init_seed=init_seed).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
        self.num_chains = default_num_chains(config, self.observed.shape[0])
        self.langevin_seed = derive_seed(config.seed, LANGEVIN_STREAM)
        self.iteration = 0
        self.langevin_step = 0
        if record is None:
            self.chains = self._fresh_chains(0)
        else:
            self.model.load_state_dict(record["model"])
            self.optimizer.load_state_dict(record["optimizer"])
            self.chains = record["chains"].to(self.device)
            self.iteration = int(record["iteration"])
            self.langevin_step = int(record["rng"]["langevin_step"])

    def _fresh_chains(self, iteration: int) -> torch.Tensor:
        config = self.config
        return init_chains(
            config.chain_init,
            self.num_chains,
            tuple(self.observed.shape[1:]),
            self.model.sigma,
            seed=derive_seed(config.seed, CHAIN_INIT_STREAM, iteration),
            data=self.observed,
            device=self.device,
            backend=config.backend,
        )

    def _data_batch(self) -> torch.Tensor:
        """All observed images, or this iteration's slice of a per-epoch permutation."""
        count = self.observed.shape[0]
        size = self.config.batch_size
        if size is None or size >= count:
            return self.observed
        batches_per_epoch = math.ceil(count / size)
        epoch, position = divmod(self.iteration, batches_per_epoch)
        generator = torch.Generator().manual_seed(derive_seed(self.config.seed, DATA_ORDER_STREAM, epoch))
        order = torch.randperm(count, generator=generator)
        return self.observed[order[position * size : (position + 1) * size].to(self.device)]

    def train_iteration(self) -> dict[str, Any]:
        """One learning iteration: Langevin on the chains, then one Adam step. Returns its metrics."""
        config = self.config
        if not config.persistent:
            self.chains = self._fresh_chains(self.iteration)
        result = langevin(
            self.model,
            self.chains,
            steps=config.langevin_steps,
            delta=config.delta,
            seed=self.langevin_seed,
            start_step=self.langevin_step,
            backend=config.backend,
        )
        if not bool(torch.isfinite(result.x).all()):
            raise ChainDivergedError(
                f"Langevin chains became NaN/Inf at iteration {self.iteration + 1}; try a smaller --delta "
                f"(now {config.delta}); the last good checkpoint is kept in {str(self.out_dir)!r}"
            )
        self.chains = result.x
        self.langevin_step = result.next_step
        terms = maximum_likelihood_loss(self.model, self._data_batch(), self.chains)
        self.optimizer.zero_grad(set_to_none=True)
        terms.loss.backward()
        layer_norms = [
            float(torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in layer.parameters()])))
            for layer in self.model._weighted_layers()
        ]
        self.optimizer.step()
        self.iteration += 1
        return {
            "iteration": self.iteration,
            "f_data": float(terms.f_observed.detach().mean()),
            "f_syn": float(terms.f_synthesized.detach().mean()),
            "loss": float(terms.loss.detach()),
            "grad_norm": math.sqrt(sum(norm * norm for norm in layer_norms)),
            "layer_grad_norms": layer_norms,
            "chain_std": float(self.chains.float().std()),
        }

    def checkpoint_payload(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, optimiser, chains, RNG counters."""
        return {
            "config": self.config.to_dict(),
            "network": self.model.spec.to_dict(),
            "sigma": self.model.sigma,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "chains": self.chains.detach().cpu(),
            "iteration": self.iteration,
            "rng": {"seed": self.config.seed, "langevin_seed": self.langevin_seed, "langevin_step": self.langevin_step},
            "data_mean": self.mean.cpu(),
        }

    def save_checkpoint(self) -> Path:
        return save_checkpoint(self.out_dir / CHECKPOINT_NAME, self.config.model, self.checkpoint_payload())

    def save_images(self) -> Path:
        """PNG of the observed images (left) beside the synthesized chains (right)."""
        observed = grid_array(datasets.to_pixels(self.observed[:16], self.mean))
        synthesized = grid_array(datasets.to_pixels(self.chains[:64], self.mean))
        canvas = side_by_side(observed, synthesized)
        save_png(canvas, self.out_dir / "images" / f"iter_{self.iteration:06d}.png")
        return save_png(canvas, self.out_dir / LATEST_IMAGE_NAME)

    def fit(self, on_iteration: Callable[[dict[str, Any]], None] | None = None) -> TrainSummary:
        """Train until ``config.iterations``, logging, drawing and checkpointing on the way."""
        config = self.config
        assert config.iterations is not None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(config.to_dict(), self.out_dir / CONFIG_NAME)
        metrics_path = self.out_dir / METRICS_NAME
        _keep_metrics_up_to(metrics_path, self.iteration)
        metrics: dict[str, Any] = {}
        started = time.perf_counter()
        with (
            tqdm(total=config.iterations, initial=self.iteration, disable=not self.progress, unit="it") as bar,
            open(metrics_path, "a") as log,
        ):
            while self.iteration < config.iterations:
                tick = time.perf_counter()
                metrics = self.train_iteration()
                metrics["seconds"] = time.perf_counter() - tick
                metrics["elapsed"] = time.perf_counter() - started
                log.write(json.dumps(metrics) + "\n")
                log.flush()
                bar.set_postfix(f_data=f"{metrics['f_data']:.4g}", f_syn=f"{metrics['f_syn']:.4g}")
                bar.update(1)
                finished = self.iteration == config.iterations
                if finished or self.iteration % config.image_every == 0:
                    self.save_images()
                if finished or self.iteration % config.checkpoint_every == 0:
                    self.save_checkpoint()
                if on_iteration is not None:
                    on_iteration(metrics)
        if not (self.out_dir / CHECKPOINT_NAME).exists():
            self.save_checkpoint()
        return TrainSummary(self.iteration, self.out_dir / CHECKPOINT_NAME, metrics)


_RESUME_MAY_CHANGE = ("iterations", "backend", "device", "image_every", "checkpoint_every")


def _resumed_config(stored: TrainConfig, requested: TrainConfig) -> TrainConfig:
    """The stored config with the options a resumed run may change taken from ``requested``.

    ``requested`` fields left at their defaults keep the stored values.
    """
    defaults = TrainConfig()
    changes = {}
    for name in _RESUME_MAY_CHANGE:
        value = getattr(requested, name)
        if value != getattr(defaults, name):
            changes[name] = value
    stored_dict = stored.to_dict()
    for name, value in requested.to_dict().items():
        if name in _RESUME_MAY_CHANGE or value == getattr(defaults, name):
            continue
        if value != stored_dict[name]:
            raise ConfigError(
                f"--{name.replace('_', '-')} {value} differs from the resumed run's {stored_dict[name]}; a resumed "
                f"run keeps its settings except {', '.join(_RESUME_MAY_CHANGE)}"
            )
    return TrainConfig.from_dict({**stored_dict, **changes})
