"""Architecture of the bottom-up ConvNet f: conv + bias + (leaky) ReLU layers and a top.

The spec is plain data (JSON-able) so checkpoints and configs can carry it.
"""

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from genconv.bindings.errors import ConfigError

TopKind = Literal["sum", "fc"]
PoolKind = Literal["max", "avg"]
InitKind = Literal["normal", "he"]
WEIGHT_INITS: tuple[str, ...] = ("normal", "he")


@dataclass(frozen=True)
class ConvLayer:
    """One bottom-up layer: conv(kernel, stride, padding) + bias + activation, then optional pooling.

    ``padding`` None means kernel // 2. ``pool`` > 1 adds a non-overlapping pool of that window
    (window = stride) after the activation.
    """

    channels: int
    kernel: int
    stride: int = 1
    padding: int | None = None
    pool: int = 0
    pool_kind: PoolKind = "max"

    @property
    def pad(self) -> int:
        return self.kernel // 2 if self.padding is None else self.padding


@dataclass(frozen=True)
class NetworkSpec:
    """The whole scoring network f.

    ``top`` = "sum": f is the sum of the top layer's responses over channels and positions (the
    stationary/texture model). ``top`` = "fc": a fully connected layer maps the top layer to a
    scalar (the object model); it fixes the input size to ``image_size``.
    ``slope`` is the leaky-ReLU slope (0 = ReLU); ``bias`` = False gives a positively homogeneous f.
    ``scale`` multiplies the network's output: f(x) = scale * h(x). ``init`` "normal" draws every
    weight from N(0, init_std^2); "he" draws the conv weights at He initialisation for the leaky
    ReLU (std sqrt(2 / ((1 + slope^2) fan_in))) and sets the top (and every bias) to zero, so f = 0
    at the start. GGCN's energy scale is scale = 1 / sigma^2 with init "he": the network itself
    then needs dh/dx = O(1) to reconstruct images, which He initialisation already gives.
    """

    in_channels: int
    layers: tuple[ConvLayer, ...]
    top: TopKind = "sum"
    slope: float = 0.0
    bias: bool = True
    image_size: tuple[int, int] | None = None
    init_std: float = 0.01
    scale: float = 1.0
    init: InitKind = "normal"

    def __post_init__(self) -> None:
        if self.in_channels < 1:
            raise ConfigError(f"in_channels must be >= 1, got {self.in_channels}")
        if not self.layers:
            raise ConfigError("a network needs at least one conv layer")
        if self.top not in ("sum", "fc"):
            raise ConfigError(f"top must be 'sum' or 'fc', got {self.top!r}")
        if not 0.0 <= self.slope < 1.0:
            raise ConfigError(f"slope must be in [0, 1), got {self.slope}")
        for index, layer in enumerate(self.layers, start=1):
            if layer.channels < 1 or layer.kernel < 1 or layer.stride < 1 or layer.pad < 0:
                raise ConfigError(f"layer {index}: channels, kernel and stride must be >= 1 and padding >= 0")
            if layer.pool < 0:
                raise ConfigError(f"layer {index}: pool must be 0 (none) or a window >= 2, got {layer.pool}")
            if layer.pool_kind not in ("max", "avg"):
                raise ConfigError(f"layer {index}: pool_kind must be 'max' or 'avg', got {layer.pool_kind!r}")
        if not (isinstance(self.scale, int | float) and math.isfinite(self.scale) and self.scale > 0):
            raise ConfigError(f"scale must be a positive number, got {self.scale!r}")
        if self.init not in WEIGHT_INITS:
            raise ConfigError(f"init must be one of {', '.join(WEIGHT_INITS)}; got {self.init!r}")
        if self.top == "fc" and self.image_size is None:
            raise ConfigError("a network with a fully connected top needs image_size")
        if self.image_size is not None:
            self.layer_sizes(self.image_size)

    def layer_sizes(self, image_size: tuple[int, int]) -> list[tuple[int, int]]:
        """Spatial size after each layer (after its pooling) for an input of ``image_size``.

        Raises:
            ConfigError: the input is too small for some layer.
        """
        height, width = image_size
        sizes = []
        for index, layer in enumerate(self.layers, start=1):
            too_small = min(height, width) < layer.kernel
            height = (height + 2 * layer.pad - layer.kernel) // layer.stride + 1
            width = (width + 2 * layer.pad - layer.kernel) // layer.stride + 1
            if layer.pool > 1:
                height, width = height // layer.pool, width // layer.pool
            if too_small or height < 1 or width < 1:
                raise ConfigError(
                    f"image size {image_size[0]}x{image_size[1]} is too small for this network: layer {index} "
                    f"({layer.kernel}x{layer.kernel} conv, stride {layer.stride}"
                    f"{f', pool {layer.pool}' if layer.pool > 1 else ''}) needs an input at least as large as "
                    f"its kernel and an output; the smallest accepted size is {self.min_image_size()}"
                )
            sizes.append((height, width))
        return sizes

    def min_image_size(self) -> int:
        """The smallest square input for which every layer's input is at least its kernel size.

        (Smaller inputs could still give outputs through zero padding, but the filters would see
        mostly padding; genconv rejects them.)
        """
        size = 1
        for layer in reversed(self.layers):
            if layer.pool > 1:
                size *= layer.pool
            size = max((size - 1) * layer.stride + layer.kernel - 2 * layer.pad, layer.kernel)
        return size

    def check_input(self, height: int, width: int) -> None:
        """Raise ConfigError unless an input of height x width fits this network."""
        if self.image_size is not None and self.top == "fc" and (height, width) != tuple(self.image_size):
            raise ConfigError(
                f"this network's fully connected top expects {self.image_size[0]}x{self.image_size[1]} "
                f"images, got {height}x{width}"
            )
        self.layer_sizes((height, width))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["layers"] = [asdict(layer) for layer in self.layers]
        data["image_size"] = None if self.image_size is None else list(self.image_size)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NetworkSpec":
        values = dict(data)
        values["layers"] = tuple(ConvLayer(**layer) for layer in values["layers"])
        if values.get("image_size") is not None:
            values["image_size"] = tuple(values["image_size"])
        return cls(**values)
