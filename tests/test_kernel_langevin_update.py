"""Parity of the fused Langevin update kernel with its reference twin."""

import pytest
import torch

from genconv.kernels import langevin_update as kernel_module
from genconv.kernels import reference
from genconv.kernels.langevin_update import langevin_update

from kernel_support import DEVICE, assert_close, case_id, nan_poisoned_outputs, non_contiguous  # noqa: F401

pytestmark = pytest.mark.interpreter

CASES = [
    (1, 1, 5, 7, torch.float32),
    (3, 2, 9, 4, torch.float32),
    (2, 3, 17, 13, torch.float32),
    (2, 3, 17, 13, torch.bfloat16),
    (4, 1, 33, 31, torch.bfloat16),
]
IDS = [case_id(B=b, C=c, H=h, W=w, dtype=d) for b, c, h, w, d in CASES]


def _inputs(batch, channels, height, width, dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = (3 * torch.randn(batch, channels, height, width, generator=generator)).to(DEVICE, dtype)
    grad = torch.randn(batch, channels, height, width, generator=generator).to(DEVICE, dtype)
    return x, grad


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.usefixtures("nan_poisoned_outputs")
def test_counter_noise_matches_reference(case) -> None:
    *shape, dtype = case
    x, grad = _inputs(*shape, dtype)
    out = langevin_update(x, grad, 0.3, 1.7, seed=12345, offset=999)
    expected = reference.langevin_update(x, grad, 0.3, 1.7, seed=12345, offset=999)
    assert out.is_contiguous() and out.dtype == dtype
    assert_close(out, expected, dtype, "x'")


@pytest.mark.parametrize("case", CASES[1:4], ids=IDS[1:4])
@pytest.mark.usefixtures("nan_poisoned_outputs")
def test_given_noise_clamp_and_strided_inputs(case) -> None:
    *shape, dtype = case
    x, grad = _inputs(*shape, dtype, seed=1)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(2)).to(DEVICE, dtype)
    x_view, grad_view, noise_view = non_contiguous(x), grad.transpose(2, 3).contiguous().transpose(2, 3), noise
    assert not x_view.is_contiguous() and not grad_view.is_contiguous()
    out = langevin_update(x_view, grad_view, 0.5, 0.8, noise=noise_view, clamp=(-2.0, 2.5))
    expected = reference.langevin_update(x, grad, 0.5, 0.8, noise=noise, clamp=(-2.0, 2.5))
    assert_close(out, expected, dtype, "x'")
    assert float(out.float().min()) >= -2.0 and float(out.float().max()) <= 2.5


def test_same_seed_same_result_whatever_the_block_size(monkeypatch) -> None:
    x, grad = _inputs(3, 2, 37, 29, torch.float32)
    first = langevin_update(x, grad, 0.3, 1.0, seed=77, offset=5)
    for block in (128, 256):
        configs = [kernel_module.triton.Config({"BLOCK": block})]
        monkeypatch.setattr(kernel_module, "_configs", lambda configs=configs: configs)
        assert torch.equal(langevin_update(x, grad, 0.3, 1.0, seed=77, offset=5), first)


def test_bad_arguments() -> None:
    x, grad = _inputs(1, 1, 4, 4, torch.float32)
    with pytest.raises(ValueError, match="shape of x"):
        langevin_update(x, grad[..., :3], 0.3, 1.0, seed=0)
    with pytest.raises(ValueError, match="noise or a seed"):
        langevin_update(x, grad, 0.3, 1.0)
    with pytest.raises(TypeError, match="float32 or bfloat16"):
        langevin_update(x.double(), grad.double(), 0.3, 1.0, seed=0)


def test_seed_and_counter_base_read_from_device_memory() -> None:
    """A [seed, base] tensor gives the noise of seed at counter offset + base (for CUDA graphs)."""
    x, grad = _inputs(2, 3, 5, 6, torch.float32)
    counter = torch.tensor([4242, 1000], dtype=torch.int64, device=DEVICE)
    from_memory = langevin_update(x, grad, 0.3, 1.0, seed=counter, offset=7)
    assert torch.equal(from_memory, langevin_update(x, grad, 0.3, 1.0, seed=4242, offset=1007))
    assert_close(from_memory, reference.langevin_update(x, grad, 0.3, 1.0, seed=counter.cpu(), offset=7),
                 torch.float32, "x'")  # fmt: skip


def test_counters_past_two_to_the_31_keep_the_same_kernel_variant() -> None:
    """A long chain's offsets pass 2^31: they travel as two int32 halves, so the launch arguments keep
    their int32 types (no second specialisation compiled mid-run) and the draws stay exact."""
    from genconv.kernels.launch import recording_launches

    x, grad = _inputs(2, 3, 5, 4, torch.float32)
    counter = torch.tensor([12345, 0], dtype=torch.int64, device=DEVICE)
    types = []
    for offset in (999, 2**31 + 999, 2**40 + 7):
        with recording_launches() as launches:
            langevin_update(x, grad, 0.3, 1.7, seed=counter, offset=offset)
        ints = [arg for arg in launches[0].args if isinstance(arg, int)]
        assert all(-(2**31) <= value < 2**31 for value in ints)
        types.append([type(arg).__name__ for arg in launches[0].args])
        out = langevin_update(x, grad, 0.3, 1.7, seed=counter, offset=offset)
        assert_close(out, reference.langevin_update(x, grad, 0.3, 1.7, seed=12345, offset=offset), torch.float32, "x'")
    assert types[0] == types[1] == types[2]
