"""Training configuration: every option of ``genconv train``, resolved against a preset."""

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch

from genconv.bindings.backends import BACKEND_NAMES
from genconv.bindings.errors import ConfigError
from genconv.engine.langevin import INIT_KINDS
from genconv.engine.presets import get_preset
from genconv.engine.seeding import MAX_SEED

MODEL_KINDS: tuple[str, ...] = ("gcn",)


@dataclass(frozen=True)
class TrainConfig:
    """Options of a training run; None means "the preset's default" until ``resolved()``.

    Units: image_size in pixels; delta and sigma in model-space intensity units (pixel values
    in [0, 255] minus the channel mean); lr is Adam's step size; *_every count iterations.
    """

    model: str = "gcn"
    preset: str = "texture"
    data: str | None = None
    image_size: int | None = None
    max_images: int | None = None
    iterations: int | None = None
    langevin_steps: int | None = None
    delta: float | None = None
    sigma: float | None = None
    num_chains: int | None = None
    chain_init: str = "noise"
    persistent: bool = True
    batch_size: int | None = None
    lr: float | None = None
    beta1: float | None = None
    slope: float = 0.0
    seed: int = 0
    backend: str = "auto"
    device: str = "auto"
    image_every: int = 50
    checkpoint_every: int = 50

    def resolved(self) -> "TrainConfig":
        """A copy with every preset default filled in and every value checked."""
        preset = get_preset(self.preset)
        filled = replace(
            self,
            data=self.data or preset.data,
            image_size=self.image_size or preset.paper_image_size,
            max_images=self.max_images if self.max_images is not None else preset.max_images,
            iterations=self.iterations if self.iterations is not None else preset.iterations,
            langevin_steps=self.langevin_steps if self.langevin_steps is not None else preset.langevin_steps,
            delta=self.delta if self.delta is not None else preset.delta,
            sigma=self.sigma if self.sigma is not None else preset.sigma,
            lr=self.lr if self.lr is not None else preset.lr,
            beta1=self.beta1 if self.beta1 is not None else preset.beta1,
        )
        filled.validate()
        return filled

    def validate(self) -> None:
        """Raise ConfigError naming the first option with an unusable value."""
        _choice("model", self.model, MODEL_KINDS)
        _choice("backend", self.backend, BACKEND_NAMES)
        _choice("chain_init", self.chain_init, INIT_KINDS)
        if self.device != "auto":
            try:
                torch.device(self.device)
            except RuntimeError:
                raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}") from None
        for name in ("image_size", "iterations", "langevin_steps", "image_every", "checkpoint_every"):
            _positive_int(name, getattr(self, name))
        for name in ("max_images", "num_chains", "batch_size"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        for name in ("delta", "sigma", "lr"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number, got {value}")
        if not 0.0 <= self.beta1 < 1.0:
            raise ConfigError(f"beta1 must be in [0, 1), got {self.beta1}")
        if not 0.0 <= self.slope < 1.0:
            raise ConfigError(f"slope must be in [0, 1), got {self.slope}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"seed must be an integer in [0, 2**63 - 1], got {self.seed}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; other names as torch.device, checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but no CUDA device is available")
    return device
