"""Training configuration: every option of ``genconv train``, resolved against a preset and a model family."""

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch

from genconv.bindings.choices import BACKEND_NAMES
from genconv.bindings.errors import ConfigError
from genconv.engine.data import PIXEL_RANGES
from genconv.engine.generator import GENERATOR_NORMS
from genconv.engine.langevin import INIT_KINDS
from genconv.engine.presets import GGCN_REGIME, get_preset
from genconv.engine.seeding import MAX_SEED
from genconv.engine.wasserstein import PENALTIES, TRANSPORTS

MODEL_KINDS: tuple[str, ...] = ("gcn", "wgcn", "ggcn")
# GGCN's energy scale: "inverse-variance" is f = h / sigma^2 with He-initialised convs and the top at
# zero; "none" is f = h with every weight from N(0, 0.01^2) (the spec's CoopNets-style start).
ENERGY_SCALES: tuple[str, ...] = ("inverse-variance", "none")
# What the hidden-space steps follow: "relative" is d f(g(z))/dz over the energy scale (d h(g(z))/dz,
# the clip in h's units); "absolute" is d f(g(z))/dz itself. The two agree for --energy-scale none.
HIDDEN_GRADIENTS: tuple[str, ...] = ("relative", "absolute")
# GGCN's top at the start: "zero" (f = 0 with the energy scale) or "least-squares" (fitted to
# ||x||^2 / (2 sigma^2) on the training images, ``GenerativeConvNet.fit_top``).
TOP_INITS: tuple[str, ...] = ("zero", "least-squares")
# GGCN's refinement: "pixel-range" clamps every refined state to the images' range ([-1, 1] for
# pixel range "unit"), "none" lets the steps leave it.
REFINE_CLAMPS: tuple[str, ...] = ("pixel-range", "none")
# The command-line flag of each field whose name differs from ``--field-name``; messages name flags.
FIELD_FLAGS = {"langevin_steps": "--steps", "num_chains": "--chains", "persistent": "--no-persistent",
               "amortize": "--no-amortize"}  # fmt: skip


def flag_of(name: str) -> str:
    """The command-line flag that sets the TrainConfig field ``name`` (what error messages call it)."""
    return FIELD_FLAGS.get(name, f"--{name.replace('_', '-')}")


GGCN_ONLY = (
    "latent_dim",
    "hidden_steps",
    "hidden_step_size",
    "hidden_grad_clip",
    "generator_lr",
    "generator_width",
    "generator_norm",
    "energy_scale",
    "hidden_gradient",
)


@dataclass(frozen=True)
class TrainConfig:
    """Options of a training run; None means "the default of the preset and model family" until ``resolved()``.

    Units: image_size in pixels; delta and sigma in model-space units (pixels in [0, 255] minus the
    channel mean for pixel_range "centred", [-1, 1] for "unit"); lr is Adam's step size; *_every
    count iterations. wGCN: lambda_w weighs the transport (or gradient) penalty. GGCN: latent_dim
    is d of z ~ N(0, I_d); hidden_steps and hidden_step_size drive the Langevin run in z;
    langevin_steps is then the number of image-space refinement steps; energy_scale, warmup (the
    iterations of f's linear lr warm-up, any family) and hidden_gradient are described beside
    ``ENERGY_SCALES``, ``HIDDEN_GRADIENTS`` and ``genconv.engine.presets.GGCNRegime``.
    """

    model: str = "gcn"
    preset: str = "texture"
    data: str | None = None
    image_size: int | None = None
    max_images: int | None = None
    holdout: int = 0
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
    slope: float | None = None
    pixel_range: str | None = None
    lambda_w: float | None = None
    transport: str = "expected"
    penalty: str = "transport"
    gp_target: float = 1.0
    latent_dim: int | None = None
    hidden_steps: int | None = None
    hidden_step_size: float | None = None
    hidden_grad_clip: float | None = None
    generator_lr: float | None = None
    generator_width: int | None = None
    generator_norm: str | None = None
    energy_scale: str | None = None
    hidden_gradient: str | None = None
    top_init: str | None = None
    refine_clamp: str | None = None
    warmup: int | None = None
    amortize: bool = True
    seed: int = 0
    backend: str = "auto"
    device: str = "auto"
    image_every: int = 50
    checkpoint_every: int = 50

    def resolved(self) -> "TrainConfig":
        """A copy with every default filled in and every value checked."""
        _choice("model", self.model, MODEL_KINDS)
        preset = get_preset(self.preset)
        ggcn = self.model == "ggcn"
        if not ggcn:
            for name in GGCN_ONLY:
                if getattr(self, name) is not None:
                    raise ConfigError(f"{flag_of(name)} applies to --model ggcn only")
        if self.model == "gcn" and self.lambda_w:
            raise ConfigError("--lambda-w applies to wgcn and ggcn; use --model wgcn for the Wasserstein flow")
        regime = GGCN_REGIME

        def pick(name: str, gcn_default: Any, ggcn_default: Any) -> Any:
            value = getattr(self, name)
            return value if value is not None else (ggcn_default if ggcn else gcn_default)

        filled = replace(
            self,
            data=self.data if self.data is not None else preset.data,
            image_size=self.image_size if self.image_size is not None else preset.paper_image_size,
            max_images=self.max_images if self.max_images is not None else preset.max_images,
            iterations=self.iterations if self.iterations is not None else preset.iterations,
            langevin_steps=pick("langevin_steps", preset.langevin_steps, regime.langevin_steps),
            delta=pick("delta", preset.delta, regime.delta),
            sigma=pick("sigma", preset.sigma, regime.sigma),
            num_chains=pick("num_chains", None, preset.num_chains or regime.num_chains),
            lr=pick("lr", preset.lr, regime.lr),
            beta1=pick("beta1", preset.beta1, regime.beta1),
            slope=self.slope if self.slope is not None else preset.slope,
            pixel_range=pick("pixel_range", "centred", regime.pixel_range),
            lambda_w=pick("lambda_w", 0.0 if self.model == "gcn" else 1.0, regime.lambda_w),
            latent_dim=pick("latent_dim", None, regime.latent_dim),
            hidden_steps=pick("hidden_steps", None, regime.hidden_steps),
            hidden_step_size=pick("hidden_step_size", None, regime.hidden_step_size),
            hidden_grad_clip=pick("hidden_grad_clip", None, regime.hidden_grad_clip),
            generator_lr=pick("generator_lr", None, regime.generator_lr),
            generator_width=pick("generator_width", None, preset.generator_width),
            generator_norm=pick("generator_norm", None, regime.generator_norm),
            energy_scale=pick("energy_scale", None, regime.energy_scale),
            hidden_gradient=pick("hidden_gradient", None, regime.hidden_gradient),
            top_init=pick("top_init", None, regime.top_init),
            refine_clamp=pick("refine_clamp", None, regime.refine_clamp),
            warmup=pick("warmup", 0, regime.warmup),
        )
        filled.validate()
        return filled

    def validate(self) -> None:
        """Raise ConfigError naming the first option with an unusable value."""
        _choice("model", self.model, MODEL_KINDS)
        _choice("backend", self.backend, BACKEND_NAMES)
        _choice("chain_init", self.chain_init, INIT_KINDS)
        _choice("pixel_range", self.pixel_range, PIXEL_RANGES)
        _choice("transport", self.transport, TRANSPORTS)
        _choice("penalty", self.penalty, PENALTIES)
        for name, allowed in (
            ("generator_norm", GENERATOR_NORMS),
            ("energy_scale", ENERGY_SCALES),
            ("hidden_gradient", HIDDEN_GRADIENTS),
            ("top_init", TOP_INITS),
            ("refine_clamp", REFINE_CLAMPS),
        ):
            if getattr(self, name) is not None:
                _choice(name, getattr(self, name), allowed)
        if self.device != "auto":
            try:
                torch.device(self.device)
            except RuntimeError:
                raise ConfigError(f"--device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}") from None
        for name in ("image_size", "iterations", "image_every", "checkpoint_every"):
            _positive_int(name, getattr(self, name))
        for name in ("max_images", "num_chains", "batch_size", "latent_dim", "generator_width"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        for name in ("langevin_steps", "hidden_steps", "holdout", "warmup"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ConfigError(f"{flag_of(name)} must be a non-negative integer, got {value!r}")
        if self.model != "ggcn" and self.langevin_steps == 0:
            raise ConfigError("--steps must be a positive integer for gcn and wgcn")
        for name in ("delta", "sigma", "lr", "hidden_step_size", "hidden_grad_clip", "generator_lr"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{flag_of(name)} must be a positive number, got {value}")
        for name in ("lambda_w", "gp_target"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{flag_of(name)} must be a non-negative number, got {value}")
        if not 0.0 <= self.beta1 < 1.0:
            raise ConfigError(f"--beta1 must be in [0, 1), got {self.beta1}")
        if not 0.0 <= self.slope < 1.0:
            raise ConfigError(f"--slope must be in [0, 1), got {self.slope}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"--seed must be an integer in [0, 2**63 - 1], got {self.seed}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{flag_of(name)} must be one of {', '.join(allowed)}; got {value!r}")


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{flag_of(name)} must be a positive integer, got {value!r}")


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; other names as torch.device, checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name!r} was asked for but no CUDA device is available")
    return device
