"""Shared by the kernel parity tests: where kernels run, one tolerance table, one assert_close.

Kernels run compiled on a CUDA device when there is one, else in Triton's CPU interpreter
(tests/conftest.py sets TRITON_INTERPRET=1 before anything imports a kernel).
"""

import pytest
import torch

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
COMPILED = DEVICE.type == "cuda"

# (rtol, atol as a fraction of max |expected|) per storage dtype and where the kernels run.
# Compiled float32 dots use TF32 operands (10-bit mantissa), as cuDNN convolutions do by default;
# the interpreter computes them in float32. bfloat16 results carry one rounding (2^-8) each side.
TOLERANCES: dict[tuple[bool, torch.dtype], tuple[float, float]] = {
    (False, torch.float32): (1e-5, 1e-6),
    (True, torch.float32): (5e-3, 2e-3),
    (False, torch.bfloat16): (2e-2, 1e-2),
    (True, torch.bfloat16): (3e-2, 2e-2),
}


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    return TOLERANCES[(COMPILED, dtype)]


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, what: str = "") -> None:
    """Fail with max abs error, max relative error and the first bad index when out of tolerance."""
    assert actual.shape == expected.shape, f"{what}: shape {list(actual.shape)} != {list(expected.shape)}"
    rtol, atol_fraction = tolerance(dtype)
    actual64, expected64 = actual.detach().double().cpu(), expected.detach().double().cpu()
    scale = float(expected64.abs().max()) if expected64.numel() else 0.0
    error = (actual64 - expected64).abs()
    bad = ~(error <= atol_fraction * scale + rtol * expected64.abs())  # NaN counts as bad
    if bool(bad.any()):
        first = tuple(int(i) for i in bad.nonzero()[0])
        relative = error / expected64.abs().clamp_min(1e-30)
        max_abs = float(error.nan_to_num(float("inf")).max())
        max_rel = float(relative.nan_to_num(float("inf")).max())
        raise AssertionError(
            f"{what} ({dtype}): {int(bad.sum())} of {bad.numel()} elements out of tolerance; max abs error "
            f"{max_abs:.3e}, max rel error {max_rel:.3e}, first bad index {first}: got {float(actual64[first])}, "
            f"expected {float(expected64[first])}"
        )


def case_id(**sizes: object) -> str:
    """Readable parametrisation ids such as B3-C5-H17-bf16."""
    parts = []
    for key, value in sizes.items():
        if isinstance(value, torch.dtype):
            parts.append({torch.float32: "f32", torch.bfloat16: "bf16"}[value])
        else:
            parts.append(f"{key}{value}")
    return "-".join(parts)


@pytest.fixture
def nan_poisoned_outputs(monkeypatch):
    """Every torch.empty returns NaN (floats) or True (bools): an element a kernel leaves unwritten fails."""
    original = torch.empty

    def poisoned(*args, **kwargs):
        tensor = original(*args, **kwargs)
        if tensor.is_floating_point():
            tensor.fill_(float("nan"))
        elif tensor.dtype == torch.bool:
            tensor.fill_(True)
        return tensor

    monkeypatch.setattr(torch, "empty", poisoned)
    yield
    monkeypatch.setattr(torch, "empty", original)


def non_contiguous(tensor: torch.Tensor) -> torch.Tensor:
    """The same values as a strided view: every other column of a buffer twice as wide."""
    buffer = torch.zeros((*tensor.shape[:-1], 2 * tensor.shape[-1]), dtype=tensor.dtype, device=tensor.device)
    buffer[..., ::2] = tensor
    view = buffer[..., ::2]
    assert not view.is_contiguous()
    return view


# Largest fraction of a layer's units whose mask may differ between the kernels and the reference
# backend. A unit whose pre-activation lies within the rounding of zero flips: TF32 operands (10-bit
# mantissa) flip a few in 10^4 on trained-scale weights, bfloat16 products (8-bit) about four times
# as many; IEEE float32 in the interpreter flips next to none. One flip changes df/dx over the whole
# receptive field of the unit, so the elementwise comparison runs on one shared set of masks.
MASK_FLIP_BUDGET: dict[tuple[bool, torch.dtype], float] = {
    (False, torch.float32): 1e-4,
    (True, torch.float32): 2e-3,
    (False, torch.bfloat16): 1e-2,
    (True, torch.bfloat16): 1e-2,
}


def assert_step_agrees(
    model, x: torch.Tensor, noise: torch.Tensor, delta: float, reference: str = "torch"
) -> list[float]:
    """The Triton passes of a chain step against ``reference``: masks by the fraction that flip,
    then df/dx and the fused update elementwise on the kernels' own masks. Returns each layer's
    flipped fraction."""
    from genconv.engine.model import LangevinStepArgs

    dtype = x.dtype
    fused_trace = model.bottom_up(x, "triton")
    reference_trace = model.bottom_up(x, reference)
    flips = [float((a != b).float().mean()) for a, b in zip(fused_trace.masks, reference_trace.masks, strict=True)]
    budget = MASK_FLIP_BUDGET[(COMPILED, dtype)]
    assert max(flips) <= budget, f"masks ({dtype}): flipped fractions per layer {flips}, budget {budget}"
    for backend_trace, what in ((fused_trace, "kernels' masks"), (reference_trace, "reference masks")):
        grads = [model.top_down(backend_trace, backend, dtype=dtype) for backend in ("triton", reference)]
        assert_close(grads[0], grads[1], dtype, f"df/dx on the {what}")
    step = LangevinStepArgs(x, delta, model.sigma, noise=noise)
    updates = [model.top_down(fused_trace, backend, langevin=step) for backend in ("triton", reference)]
    assert_close(updates[0], updates[1], dtype, "x' on the kernels' masks")
    return flips


def transposed_layer(case: tuple, seed: int = 0) -> tuple:
    """A top-down layer for ``case`` (batch, c_in, height, width, c_out, kernel, stride, padding, slope,
    dtype): its input x, weights, the bottom-up mask and an upstream gradient, then stride, padding,
    slope and dtype."""
    from genconv.kernels import reference

    batch, c_in, height, width, c_out, kernel, stride, padding, slope, dtype = case
    generator = torch.Generator().manual_seed(seed)
    x = (2 * torch.randn(batch, c_in, height, width, generator=generator)).to(DEVICE, dtype)
    weight = (0.4 * torch.randn(c_out, c_in, kernel, kernel, generator=generator)).to(DEVICE)
    _, mask = reference.conv_act_forward(x, weight, None, stride, padding, slope)
    grad = torch.randn(mask.shape, generator=generator).to(DEVICE, dtype)
    return x, weight, mask, grad, stride, padding, slope, dtype
