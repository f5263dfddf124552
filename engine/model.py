"""The Generative ConvNet: p(x) ∝ exp(f(x; w)) N(x; 0, sigma^2 I), f a bottom-up ReLU ConvNet.

f is piecewise linear, so inside each activation pattern f(x) = alpha + <x, B> with
B = df/dx computed top-down: start from the top's coefficients and send them back through every
layer as a transposed convolution whose coefficients are switched on and off by the layer's
binary ReLU mask. ``reconstruct(x) = sigma^2 df/dx`` is the auto-encoder of the GCN paper, and
the Langevin step of the sampler is driven by the reconstruction error x - reconstruct(x).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genconv.bindings.backends import Backend, resolve_backend
from genconv.bindings.errors import ConfigError
from genconv.engine.network import ConvLayer, NetworkSpec


@dataclass
class PoolRecord:
    """What the top-down pass needs to route a gradient back through one pooling layer."""

    kind: str
    window: int
    input_hw: tuple[int, int]
    indices: torch.Tensor | None


@dataclass
class BottomUpPass:
    """The result of one explicit bottom-up pass: f per image (None when not asked for) and what the
    top-down pass needs."""

    score: torch.Tensor | None
    masks: list[torch.Tensor]
    input_hws: list[tuple[int, int]]
    pools: list[PoolRecord | None]
    top_shape: tuple[int, ...]


@dataclass(frozen=True)
class LangevinStepArgs:
    """One Langevin update x' = x + (delta^2/2)(df/dx - x/sigma^2) + delta*z, fused into the last layer."""

    x: torch.Tensor
    delta: float
    sigma: float
    seed: int | torch.Tensor | None = None
    offset: int = 0
    noise: torch.Tensor | None = None
    clamp: tuple[float, float] | None = None


def _pool_forward(h: torch.Tensor, layer: ConvLayer) -> tuple[torch.Tensor, PoolRecord]:
    input_hw = (h.shape[-2], h.shape[-1])
    if layer.pool_kind == "max":
        pooled, indices = F.max_pool2d(h, layer.pool, layer.pool, return_indices=True)
        return pooled, PoolRecord("max", layer.pool, input_hw, indices)
    return F.avg_pool2d(h, layer.pool, layer.pool), PoolRecord("avg", layer.pool, input_hw, None)


def _pool_backward(grad: torch.Tensor, record: PoolRecord) -> torch.Tensor:
    """Route a gradient back through a non-overlapping pool (max: to the argmax; avg: spread)."""
    if record.kind == "max":
        return F.max_unpool2d(grad, record.indices, record.window, record.window, output_size=record.input_hw)
    spread = grad.repeat_interleave(record.window, -2).repeat_interleave(record.window, -1)
    spread = spread / float(record.window * record.window)
    full = grad.new_zeros(grad.shape[:-2] + record.input_hw)
    full[..., : spread.shape[-2], : spread.shape[-1]] = spread
    return full


def _gate(grad: torch.Tensor, mask: torch.Tensor, slope: float) -> torch.Tensor:
    """grad * act'(r) (1 where the unit was on, ``slope`` where off), dense channels-last, grad's dtype."""
    gated = torch.where(mask, grad, grad * slope)
    return gated.contiguous(memory_format=torch.channels_last)


class GenerativeConvNet(nn.Module):
    """A GCN with a configurable bottom-up ConvNet and Gaussian reference N(0, sigma^2 I).

    Args:
        spec: the architecture of f.
        sigma: standard deviation of the reference distribution q, > 0.
        init_seed: seed of the N(0, init_std^2) weight initialisation (None: torch's global RNG).

    Example:
        >>> from genconv.engine.presets import network_for
        >>> model = GenerativeConvNet(network_for("texture", in_channels=1, image_size=32), sigma=1.0)
        >>> model.f(torch.randn(2, 1, 32, 32)).shape
        torch.Size([2])
    """

    def __init__(self, spec: NetworkSpec, sigma: float = 1.0, init_seed: int | None = None) -> None:
        super().__init__()
        if not sigma > 0:
            raise ConfigError(f"sigma must be positive, got {sigma}")
        self.spec = spec
        self.sigma = float(sigma)
        self.convs = nn.ModuleList()
        channels = spec.in_channels
        for layer in spec.layers:
            self.convs.append(
                nn.Conv2d(channels, layer.channels, layer.kernel, layer.stride, layer.pad, bias=spec.bias)
            )
            channels = layer.channels
        self.fc: nn.Linear | None = None
        if spec.top == "fc":
            assert spec.image_size is not None
            height, width = spec.layer_sizes(spec.image_size)[-1]
            self.fc = nn.Linear(channels * height * width, 1, bias=spec.bias)
        generator = None if init_seed is None else torch.Generator().manual_seed(init_seed)
        for module in self._weighted_layers():
            if spec.init == "normal":
                nn.init.normal_(module.weight, 0.0, spec.init_std, generator=generator)
            elif isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                nn.init.normal_(module.weight, 0.0, (2.0 / ((1 + spec.slope**2) * fan_in)) ** 0.5, generator=generator)
            else:  # the top at zero: f = 0, the model starts as its Gaussian reference
                nn.init.zeros_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        self.scale = float(spec.scale)

    def _weighted_layers(self) -> list[nn.Conv2d | nn.Linear]:
        """The conv layers bottom-up, then the fully connected top if there is one."""
        return [*self.convs, *([self.fc] if self.fc is not None else [])]

    @property
    def dtype(self) -> torch.dtype:
        return self.convs[0].weight.dtype

    def check_input(self, x: torch.Tensor) -> None:
        """ConfigError unless x is [B, C, H, W] with this network's channels and a size it accepts."""
        if x.dim() != 4 or x.shape[1] != self.spec.in_channels:
            raise ConfigError(f"x must have shape [B, {self.spec.in_channels}, H, W], got {list(x.shape)}")
        self.spec.check_input(x.shape[-2], x.shape[-1])

    def _activate(self, pre: torch.Tensor) -> torch.Tensor:
        return F.relu(pre) if self.spec.slope == 0 else F.leaky_relu(pre, self.spec.slope)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """The activations under the top: every conv layer, its activation and its pooling."""
        self.check_input(x)
        h = x.to(self.dtype)
        for layer, conv in zip(self.spec.layers, self.convs, strict=True):
            h = self._activate(conv(h))
            if layer.pool > 1:
                h = _pool_forward(h, layer)[0]
        return h

    def f(self, x: torch.Tensor) -> torch.Tensor:
        """The score f(x; w) per image, differentiable in x and w (the learning path).

        Args:
            x: [B, C, H, W] images in model space.
        Returns:
            [B] scores, in the model's dtype.
        """
        h = self._features(x)
        if self.fc is not None:
            return self._scaled(self.fc(h.flatten(1)).squeeze(1))
        return self._scaled(h.sum(dim=(1, 2, 3)))

    def _scaled(self, value: torch.Tensor) -> torch.Tensor:
        return value if self.scale == 1.0 else value * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """E(x) = ||x||^2 / (2 sigma^2) - f(x), per image ([B])."""
        squared = x.to(self.dtype).pow(2).flatten(1).sum(dim=1)
        return squared / (2.0 * self.sigma**2) - self.f(x)

    @torch.no_grad()
    def bottom_up(
        self, x: torch.Tensor, backend: str | Backend = "auto", *, score: bool = True, check: bool = True
    ) -> BottomUpPass:
        """The explicit bottom-up pass: f per image and every layer's binary mask, no autograd.

        ``score=False`` skips f where it costs work (a sampling chain needs only the masks; the
        pass's ``score`` is then None); ``check=False`` skips the input checks (a chain checks its
        states once, not every step).
        """
        if check:
            self.check_input(x)
        ops = resolve_backend(backend, x.device)
        masks, input_hws, pools = [], [], []
        h = x
        found = None
        last = len(self.spec.layers) - 1
        for index, (layer, conv) in enumerate(zip(self.spec.layers, self.convs, strict=True)):
            input_hws.append((h.shape[-2], h.shape[-1]))
            summed_top = index == last and self.fc is None and layer.pool <= 1
            if summed_top:
                out, mask = ops.conv_act_forward_sum(
                    h, conv.weight, conv.bias, layer.stride, layer.pad, self.spec.slope, score=score
                )
            else:
                out, mask = ops.conv_act_forward(h, conv.weight, conv.bias, layer.stride, layer.pad, self.spec.slope)
            masks.append(mask)
            record = None
            if summed_top:
                found = out
            elif layer.pool > 1:
                out, record = _pool_forward(out, layer)
            pools.append(record)
            h = out
        top_shape = tuple(masks[-1].shape) if pools[-1] is None else tuple(h.shape)
        if self.fc is not None:
            found = self.fc(h.flatten(1).to(self.fc.weight.dtype)).squeeze(1) if score else None
        elif found is None and score:
            found = h.flatten(1).sum(dim=1)
        if found is not None:
            found = self._scaled(found)
        return BottomUpPass(found, masks, input_hws, pools, top_shape)

    def _top_coefficients(
        self, top_shape: tuple[int, ...], dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor | None:
        """B at the top: None (ones, which the top-down ops take implicitly) for the summed top,
        the FC weights for the object top; times the network's ``scale``."""
        if self.fc is None:
            return None if self.scale == 1.0 else torch.full(top_shape, self.scale, dtype=dtype, device=device)
        return self._scaled(self.fc.weight.to(dtype)).reshape((1,) + top_shape[1:]).expand(top_shape)

    @torch.no_grad()
    def top_down(
        self,
        trace: BottomUpPass,
        backend: str | Backend = "auto",
        dtype: torch.dtype | None = None,
        langevin: LangevinStepArgs | None = None,
    ) -> torch.Tensor:
        """The explicit top-down pass: df/dx, or with ``langevin`` the next chain state.

        The gradient goes back through every layer as a transposed convolution of the mask-gated
        coefficients; with ``langevin`` the bottom layer's pass ends in the Langevin update, so
        the image-space gradient is never materialised by a fused backend.
        """
        device = trace.masks[0].device
        ops = resolve_backend(backend, device)
        dtype = dtype or (langevin.x.dtype if langevin is not None else self.dtype)  # the gradient's dtype
        grad = self._top_coefficients(trace.top_shape, dtype, device)
        gated = False  # whether grad already carries act' of the current layer (gated by the layer above)
        for index in reversed(range(len(self.spec.layers))):
            layer, conv = self.spec.layers[index], self.convs[index]
            if trace.pools[index] is not None:
                if grad is None:
                    grad = torch.ones(trace.top_shape, dtype=dtype, device=device)
                grad = _pool_backward(grad, trace.pools[index])
                gated = False
            mask = None if gated else trace.masks[index]
            if grad is not None and mask is not None:
                # coefficients that are not gated yet (the FC top's, a pooled layer's): gate them here,
                # one elementwise pass over a small map, so the top-down kernels read dense gated
                # coefficients with asynchronous copies instead of gating strided loads mask by mask
                grad = _gate(grad, mask, self.spec.slope)
                mask = None
            if index == 0 and langevin is not None:
                return ops.masked_conv_transpose_langevin(
                    grad,
                    mask,
                    conv.weight,
                    layer.stride,
                    layer.pad,
                    self.spec.slope,
                    langevin.x,
                    langevin.delta,
                    langevin.sigma,
                    seed=langevin.seed,
                    offset=langevin.offset,
                    noise=langevin.noise,
                    clamp=langevin.clamp,
                )
            # Gate the result with the layer below's act' at once (no pooling in between): its
            # top-down pass then reads plain coefficients.
            below = trace.masks[index - 1] if index > 0 and trace.pools[index - 1] is None else None
            # the summed top (no gradient) computes in the pass's dtype, so a bfloat16 chain's top-down
            # pass runs in bfloat16 from its first layer on
            grad = ops.masked_conv_transpose(
                grad, mask, conv.weight, layer.stride, layer.pad, self.spec.slope, trace.input_hws[index],
                output_mask=below, dtype=dtype if grad is None else None,
            )  # fmt: skip
            gated = below is not None
        return grad.to(dtype)

    def score_and_grad(self, x: torch.Tensor, backend: str | Backend = "auto") -> tuple[torch.Tensor, torch.Tensor]:
        """f(x) and df/dx from one explicit bottom-up and one top-down pass."""
        trace = self.bottom_up(x, backend)
        return trace.score, self.top_down(trace, backend, dtype=x.dtype).contiguous()

    def grad_f(self, x: torch.Tensor, backend: str | Backend = "auto") -> torch.Tensor:
        """df/dx computed top-down with the binary masks (no autograd); shape and dtype of x."""
        return self.score_and_grad(x, backend)[1]

    def grad_f_autograd(self, x: torch.Tensor) -> torch.Tensor:
        """df/dx by autograd through ``f``: the oracle for ``grad_f``."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.f(x).sum(), x)
        return grad

    @torch.no_grad()
    def fit_top(self, x: torch.Tensor, ridge: float = 1e-2) -> float:
        """Set the fully connected top so that f fits ||x||^2 / (2 sigma^2) on the images x, by one ridge
        least-squares step on the top's inputs (the conv layers and every bias stay as they are).

        ||x||^2 / (2 sigma^2) is f's working scale: there E(x) = ||x||^2 / (2 sigma^2) - f(x) is
        level over the images and the reconstruction sigma^2 df/dx is of the size of x. Starting
        there, f need not first grow to that scale while it learns. With fewer images than
        features the fit is the ridge solution of least norm (``ridge`` times the mean squared
        feature norm). Returns the fit's root-mean-square relative error on x.

        Example:
            >>> model.fit_top(training_images)
        """
        if self.fc is None:
            raise ConfigError("fitting the top needs a network with a fully connected top (preset object, faces, ...)")
        h = self._features(x)
        features = h.flatten(1).double()
        bias = self.fc.bias.double() if self.fc.bias is not None else 0.0
        target = x.double().pow(2).flatten(1).sum(dim=1) / (2.0 * self.sigma**2 * self.scale) - bias
        gram = features @ features.T
        gram += ridge * float(gram.diagonal().mean()) * torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
        weight = features.T @ torch.linalg.solve(gram, target)
        self.fc.weight.copy_(weight.view_as(self.fc.weight).to(self.fc.weight.dtype))
        fitted = features @ weight + bias
        return float(((fitted - (target + bias)).pow(2).mean() / (target + bias).pow(2).mean()).sqrt())

    def reconstruct(self, x: torch.Tensor, backend: str | Backend = "auto") -> torch.Tensor:
        """The auto-encoder reconstruction sigma^2 df/dx: the mean of the Gaussian piece holding x."""
        return self.sigma**2 * self.grad_f(x, backend)

    @torch.no_grad()
    def decompose(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The affine form of f on the activation piece of x: f(x) = alpha + <x, B>.

        Returns:
            (alpha [B], B [B, C, H, W]) from the explicit alpha and B recursions of the paper.
        """
        trace = self.bottom_up(x, "reference")
        dtype = x.dtype if x.dtype == torch.float64 else torch.float32
        grad = self._top_coefficients(trace.top_shape, dtype, x.device)
        if grad is None:
            grad = torch.ones(trace.top_shape, dtype=dtype, device=x.device)
        alpha = torch.zeros(x.shape[0], dtype=dtype, device=x.device)
        if self.fc is not None and self.fc.bias is not None:
            alpha = alpha + self._scaled(self.fc.bias.to(dtype))
        reference_ops = resolve_backend("reference", x.device)
        for index in reversed(range(len(self.spec.layers))):
            layer, conv, mask = self.spec.layers[index], self.convs[index], trace.masks[index]
            if trace.pools[index] is not None:
                grad = _pool_backward(grad, trace.pools[index])
            if conv.bias is not None:
                gate = torch.where(mask, torch.ones((), dtype=dtype), torch.full((), self.spec.slope, dtype=dtype))
                alpha = alpha + (grad * gate * conv.bias.to(dtype).view(1, -1, 1, 1)).flatten(1).sum(dim=1)
            grad = reference_ops.masked_conv_transpose(
                grad, mask, conv.weight, layer.stride, layer.pad, self.spec.slope, trace.input_hws[index]
            )
        return alpha, grad
