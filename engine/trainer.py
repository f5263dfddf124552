"""Training runs: data, model, learner, logging, images, curves and atomic checkpoints.

A run directory holds config.json, metrics.jsonl (one JSON line per iteration), checkpoint.pt
(written atomically), latest.png and images/iter_N.png (observed beside synthesized) and
curves.png (mean f on data and on synthesized images, transport cost). ``--resume`` continues a
run exactly where its checkpoint left off.
"""

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from genconv.bindings.errors import ChainDivergedError, CheckpointError, ConfigError
from genconv.engine import data as datasets
from genconv.engine.checkpoint import check_run_record, load_checkpoint, save_checkpoint
from genconv.engine.config import TrainConfig, flag_of, resolve_device
from genconv.engine.distributed import SINGLE, ProcessGroup, barrier, check_divisible
from genconv.engine.generator import GeneratorSpec, UpsamplingGenerator
from genconv.engine.images import grid_array, save_png, side_by_side
from genconv.engine.learners import ChainLearner, GGCNLearner
from genconv.engine.model import GenerativeConvNet
from genconv.engine.network import NetworkSpec
from genconv.engine.outputs import write_text_atomic
from genconv.engine.plots import save_curves
from genconv.engine.presets import get_preset, network_for
from genconv.engine.progress import progress_reporter
from genconv.engine.seeding import DATA_ORDER_STREAM, GENERATOR_INIT_STREAM, MODEL_INIT_STREAM, derive_seed

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.jsonl"
CONFIG_NAME = "config.json"
LATEST_IMAGE_NAME = "latest.png"
CURVES_NAME = "curves.png"


@dataclass
class TrainSummary:
    """What a finished run leaves behind."""

    iterations: int
    checkpoint: Path
    last_metrics: dict[str, Any]
    first_iteration: int = 0  # where this run started (a resumed run's checkpoint iteration)


def _write_json_atomic(payload: dict[str, Any], path: Path) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The metric lines of a run; a line torn by a kill (the last one, half written) is skipped."""
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("iteration"), int):
            entries.append(entry)
    return entries


def _keep_metrics_up_to(path: Path, iteration: int) -> None:
    """Drop metric lines past ``iteration`` (written after the checkpoint a run resumes from)."""
    kept = [entry for entry in read_metrics(path) if entry["iteration"] <= iteration]
    write_text_atomic(path, "".join(json.dumps(entry) + "\n" for entry in kept))


def default_num_chains(config: TrainConfig, num_images: int) -> int:
    """The preset's chain count: per image (texture) or fixed (object)."""
    preset = get_preset(config.preset)
    if config.num_chains is not None:
        return config.num_chains
    if preset.chains_per_image is not None:
        return preset.chains_per_image * num_images
    assert preset.num_chains is not None
    return preset.num_chains


def split_holdout(images: torch.Tensor, holdout: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(training images, held-out images): the last ``holdout`` images are kept out of training."""
    if holdout >= images.shape[0]:
        raise ConfigError(f"holdout {holdout} leaves no training images out of {images.shape[0]}")
    return images[: images.shape[0] - holdout], images[images.shape[0] - holdout :]


def build_generator(config: TrainConfig, channels: int, scale: datasets.PixelScale) -> UpsamplingGenerator:
    """The GGCN generator for a run, emitting model-space images of the pixel range [0, 255]."""
    assert config.image_size is not None and config.latent_dim is not None and config.generator_width is not None
    low = tuple((0.0 - mean) / scale.scale for mean in scale.mean)
    high = tuple((255.0 - mean) / scale.scale for mean in scale.mean)
    spec = GeneratorSpec(config.latent_dim, channels, (config.image_size, config.image_size), config.generator_width,
                         config.generator_norm, low, high)  # fmt: skip
    return UpsamplingGenerator(spec, init_seed=derive_seed(config.seed, GENERATOR_INIT_STREAM))


class Trainer:
    """A resumable training run of a GCN, wGCN or GGCN writing into ``out_dir``.

    Args:
        config: the run's options (defaults of the preset and model family are filled in).
        out_dir: the run directory; it must not already hold a run unless ``resume``.
        resume: continue the run in ``out_dir`` from its checkpoint.
        progress: show a progress bar.
        explicit: on resume, the options the user set (TrainConfig field names): each must equal
            the run's unless it is one a resumed run may change. None: the options that differ
            from TrainConfig's defaults.
        group: this process's place under torchrun (default: a single process). Each rank holds
            its share of the chains and of every data batch; rank 0 writes every file.

    Example:
        >>> trainer = Trainer(TrainConfig(data="texture:brick", image_size=32, iterations=5), "runs/demo")
        >>> summary = trainer.fit()
    """

    def __init__(
        self, config: TrainConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True,
        group: ProcessGroup = SINGLE, explicit: set[str] | None = None,
    ) -> None:  # fmt: skip
        self.out_dir = Path(out_dir)
        self.group = group
        self.progress = progress and group.is_main
        checkpoint_path = self.out_dir / CHECKPOINT_NAME
        record = None
        if resume:
            record = load_checkpoint(checkpoint_path, expected_model=config.model)
            check_run_record(record, checkpoint_path)
            stored = TrainConfig.from_dict(record["config"])
            if stored.num_chains is None and "chains" in record:  # the count the run resolved to
                stored = replace(stored, num_chains=int(record["chains"].shape[0]))
            config = _resumed_config(stored, config, explicit)
        elif checkpoint_path.exists():
            raise ConfigError(
                f"--out {str(self.out_dir)!r} already holds a run ({CHECKPOINT_NAME}); pass --resume to "
                "continue it or choose another --out"
            )
        self.config = config.resolved()
        self.device = resolve_device(self.config.device)
        self._build(record)
        barrier(group)  # every rank has checked the run directory before rank 0 writes into it

    def _build(self, record: dict[str, Any] | None) -> None:
        config = self.config
        assert config.image_size is not None and config.data is not None and config.pixel_range is not None
        images = datasets.load_images(config.data, config.image_size, config.max_images)
        training, held_out = split_holdout(images, config.holdout)
        if record is None:
            self.scale = datasets.PixelScale.for_images(config.pixel_range, training)
            spec = network_for(config.preset, images.shape[1], config.image_size, slope=config.slope)
            if config.energy_scale == "inverse-variance":
                assert config.sigma is not None
                spec = replace(spec, scale=1.0 / config.sigma**2, init="he")
        else:
            self.scale = datasets.PixelScale.from_dict(record["pixels"])
            spec = NetworkSpec.from_dict(record["network"])
            if spec.in_channels != images.shape[1]:
                raise CheckpointError(
                    f"the checkpoint's model reads {spec.in_channels}-channel images but {config.data} has "
                    f"{images.shape[1]}"
                )
        self.observed = self.scale.to_model(training).to(self.device)
        self.held_out = self.scale.to_model(held_out).to(self.device)
        assert config.sigma is not None
        init_seed = derive_seed(config.seed, MODEL_INIT_STREAM)
        self.model = GenerativeConvNet(spec, sigma=config.sigma, init_seed=init_seed).to(self.device)
        if record is None and config.top_init == "least-squares":
            self.model.fit_top(self.observed)
        if config.model == "ggcn":
            generator = build_generator(config, images.shape[1], self.scale).to(self.device)
            check_divisible("the number of chains", config.num_chains or 0, self.group)
            self.learner: ChainLearner | GGCNLearner = GGCNLearner(self.model, generator, config, self.device,
                                                                   self.group)  # fmt: skip
        else:
            chains = default_num_chains(config, self.observed.shape[0])
            check_divisible("the number of chains", chains, self.group)
            self.learner = ChainLearner(self.model, config, self.observed, chains, self.group)
        self.iteration = 0
        if record is not None:
            try:
                self.model.load_state_dict(record["model"])
                self.learner.load(record)
            except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as error:
                raise CheckpointError(
                    f"checkpoint {str(self.out_dir / CHECKPOINT_NAME)!r} does not fit its own run "
                    f"({type(error).__name__}: {' '.join(str(error).split())[:200]})"
                ) from None
            self.iteration = int(record["iteration"])

    @property
    def chains(self) -> torch.Tensor:
        """The current synthesized images (model space)."""
        return self.learner.synthesized()

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
        """One learning iteration of the run's model family. Returns its metrics."""
        batch = self._data_batch()
        try:
            metrics = self.learner.iteration(batch, self.iteration + 1)
        except ChainDivergedError:
            checkpoint = self.out_dir / CHECKPOINT_NAME
            kept = (
                f"the last good checkpoint is kept in {str(checkpoint)!r}"
                if checkpoint.is_file()
                else "no checkpoint was written before it"
            )
            raise ChainDivergedError(
                f"Langevin chains became NaN/Inf at iteration {self.iteration + 1}; try a smaller --delta (now "
                f"{self.config.delta}); {kept}"
            ) from None
        self.iteration += 1
        return {"iteration": self.iteration, **metrics}

    def checkpoint_payload(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, optimisers, chains, RNG counters."""
        return {
            "config": self.config.to_dict(),
            "network": self.model.spec.to_dict(),
            "sigma": self.model.sigma,
            "model": self.model.state_dict(),
            "iteration": self.iteration,
            "pixels": self.scale.to_dict(),
            **self.learner.state(),
        }

    def save_checkpoint(self) -> Path:
        """Write the checkpoint atomically (rank 0; every rank must call this, to gather the chains)."""
        payload = self.checkpoint_payload()
        path = self.out_dir / CHECKPOINT_NAME
        if self.group.is_main:
            save_checkpoint(path, self.config.model, payload)
        barrier(self.group)
        return path

    def save_images(self) -> Path:
        """PNG of the observed images (left) beside the synthesized ones (right)."""
        observed = grid_array(self.scale.to_pixels(self.observed[:16]))
        synthesized = grid_array(self.scale.to_pixels(self.chains[:64]))
        canvas = side_by_side(observed, synthesized)
        save_png(canvas, self.out_dir / "images" / f"iter_{self.iteration:06d}.png")
        return save_png(canvas, self.out_dir / LATEST_IMAGE_NAME)

    def fit(self, on_iteration: Callable[[dict[str, Any]], None] | None = None) -> TrainSummary:
        """Train until ``config.iterations``, logging, drawing and checkpointing on the way."""
        config = self.config
        assert config.iterations is not None
        main = self.group.is_main
        metrics_path = self.out_dir / METRICS_NAME
        if self.iteration >= config.iterations:  # nothing to train: the run's files stay as they are
            return TrainSummary(self.iteration, self.out_dir / CHECKPOINT_NAME, {}, self.iteration)
        if main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            _write_json_atomic({**config.to_dict(), "world_size": self.group.world_size}, self.out_dir / CONFIG_NAME)
            _keep_metrics_up_to(metrics_path, self.iteration)
        metrics: dict[str, Any] = {}
        started, first = time.perf_counter(), self.iteration
        with (
            progress_reporter(
                config.iterations, enabled=self.progress, initial=self.iteration, unit="iteration"
            ) as bar,
            open(metrics_path if main else os.devnull, "a") as log,
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
                if main and (finished or self.iteration % config.image_every == 0):
                    self.save_images()
                    save_curves(read_metrics(metrics_path), self.out_dir / CURVES_NAME, title=config.model)
                if finished or self.iteration % config.checkpoint_every == 0:
                    self.save_checkpoint()
                if on_iteration is not None:
                    on_iteration(metrics)
        return TrainSummary(self.iteration, self.out_dir / CHECKPOINT_NAME, metrics, first)


_RESUME_MAY_CHANGE = ("iterations", "backend", "device", "image_every", "checkpoint_every")


def _resumed_config(stored: TrainConfig, requested: TrainConfig, explicit: set[str] | None = None) -> TrainConfig:
    """The stored config with the options a resumed run may change taken from ``requested``.

    ``explicit`` names the options the user set; None takes those that differ from TrainConfig's
    defaults (an API caller's config cannot say more). Every other option set must equal the run's.
    """
    defaults = TrainConfig()
    if explicit is None:
        explicit = {name for name, value in requested.to_dict().items() if value != getattr(defaults, name)}
    stored_dict = stored.to_dict()
    changes = {name: getattr(requested, name) for name in _RESUME_MAY_CHANGE if name in explicit}
    for name, value in requested.to_dict().items():
        if name in _RESUME_MAY_CHANGE or name == "model" or name not in explicit or name not in stored_dict:
            continue
        if value != stored_dict[name]:
            flag = flag_of(name)
            shown = "" if isinstance(value, bool) else f" {value}"
            kept = stored_dict[name]
            raise ConfigError(
                f"{flag}{shown} differs from the resumed run's {'unset' if kept is None else kept}; a resumed run "
                f"keeps its settings except {', '.join(flag_of(n) for n in _RESUME_MAY_CHANGE)}"
            )
    return TrainConfig.from_dict({**stored_dict, **changes})
