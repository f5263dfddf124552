"""The cuDNN candidate of each layer pass (PyTorch's convolution + a one-pass Triton epilogue)
against the twins, and the choice between it and the fused kernels."""

import pytest
import torch

from genconv.bindings import triton_backend
from genconv.bindings.triton_backend import PassChooser
from genconv.kernels import cudnn_candidate, epilogues, reference

from kernel_support import DEVICE, assert_close, case_id, non_contiguous

pytestmark = pytest.mark.interpreter

# batch, c_in, height, width, c_out, kernel, stride, padding, slope, dtype
CASES = [
    (2, 3, 16, 17, 5, 15, 3, 7, 0.0, torch.float32),
    (1, 4, 9, 11, 6, 3, 2, 1, 0.2, torch.float32),
    (2, 20, 7, 8, 9, 3, 1, 1, 0.0, torch.bfloat16),
]
IDS = [case_id(B=c[0], C=c[1], H=c[2], W=c[3], O=c[4], K=c[5], S=c[6], dtype=c[9]) for c in CASES]


def _layer(case, seed=0):
    batch, c_in, height, width, c_out, kernel, stride, padding, slope, dtype = case
    generator = torch.Generator().manual_seed(seed)
    x = (2 * torch.randn(batch, c_in, height, width, generator=generator)).to(DEVICE, dtype)
    weight = (0.4 * torch.randn(c_out, c_in, kernel, kernel, generator=generator)).to(DEVICE)
    bias = (0.3 * torch.randn(c_out, generator=generator)).to(DEVICE)
    return x, weight, bias, stride, padding, slope, dtype


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_every_pass_matches_the_twins(case) -> None:
    x, weight, bias, stride, padding, slope, dtype = _layer(case)
    h, mask = cudnn_candidate.conv_act_forward(x, weight, bias, stride, padding, slope)
    h_ref, mask_ref = reference.conv_act_forward(x, weight, bias, stride, padding, slope)
    assert h.dtype == dtype and h.is_contiguous(memory_format=torch.channels_last)
    assert_close(h, h_ref, dtype, "h")
    score, _ = cudnn_candidate.conv_act_forward_sum(x, weight, bias, stride, padding, slope)
    assert_close(score, reference.conv_act_forward_sum(x, weight, bias, stride, padding, slope)[0], dtype, "f")
    assert cudnn_candidate.conv_act_forward_sum(x, weight, bias, stride, padding, slope, score=False)[0] is None
    grad = non_contiguous(torch.randn(mask_ref.shape, generator=torch.Generator().manual_seed(1)).to(DEVICE, dtype))
    hw = (x.shape[-2], x.shape[-1])
    for upstream in (grad, None):
        out = cudnn_candidate.masked_conv_transpose(upstream, mask_ref, weight, stride, padding, slope, hw)
        expected = reference.masked_conv_transpose(upstream, mask_ref, weight, stride, padding, slope, hw)
        assert_close(out, expected, dtype if upstream is not None else torch.float32, "df/dx")
    state = x.float()
    fused = cudnn_candidate.masked_conv_transpose_langevin(grad, mask_ref, weight, stride, padding, slope, state, 0.3,
                                                           1.2, seed=4, offset=9, clamp=(-2.0, 2.0))  # fmt: skip
    twin = reference.masked_conv_transpose_langevin(grad, mask_ref, weight, stride, padding, slope, state, 0.3, 1.2,
                                                    seed=4, offset=9, clamp=(-2.0, 2.0))  # fmt: skip
    assert_close(fused, twin, dtype, "x'")


def test_epilogues_read_any_layout() -> None:
    pre = non_contiguous(torch.randn(2, 5, 6, 7, device=DEVICE))
    bias = torch.randn(5, device=DEVICE)
    h, mask = epilogues.bias_act_mask(pre, bias, 0.1, torch.float32)
    shifted = pre + bias.view(1, -1, 1, 1)
    torch.testing.assert_close(h, torch.where(shifted > 0, shifted, 0.1 * shifted))
    assert torch.equal(mask, shifted > 0)
    coefficients = epilogues.masked_coefficients(pre, mask, 0.1, torch.float32)
    torch.testing.assert_close(coefficients, pre * torch.where(mask, 1.0, 0.1))


def test_the_chooser_times_once_per_pass_and_shape(monkeypatch) -> None:
    timed = []

    def fake_time(call):
        timed.append(call)
        return 2.0 if len(timed) % 2 else 1.0  # triton (timed first) 2 ms, cudnn 1 ms

    monkeypatch.setattr(triton_backend, "_time", fake_time)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: False)
    chooser = PassChooser()
    cuda = torch.device("cuda")
    assert chooser.implementation("forward", ("shape", 1), cuda, lambda name: None) == "cudnn"
    assert chooser.implementation("forward", ("shape", 1), cuda, lambda name: None) == "cudnn"
    assert len(timed) == 2  # both ways timed once, then remembered
    chooser.implementation("forward", ("shape", 2), cuda, lambda name: None)
    assert len(timed) == 4 and chooser.summary() == {"cudnn": 2}
    assert chooser.implementation("forward", ("shape", 3), torch.device("cpu"), lambda name: None) == "triton"
    monkeypatch.setenv("GENCONV_CONV", "cudnn")
    assert chooser.implementation("forward", ("shape", 4), torch.device("cpu"), lambda name: None) == "cudnn"


def test_a_forced_candidate_runs_the_whole_chain(monkeypatch) -> None:
    from genconv.engine.langevin import langevin

    from support import ARCHITECTURES, build, random_input

    model = build(ARCHITECTURES[2], in_channels=3, dtype=torch.float32)
    x = random_input(model, batch=2).to(DEVICE)
    model = model.to(DEVICE)
    expected = langevin(model, x, steps=2, delta=0.3, seed=3, backend="reference").x
    monkeypatch.setenv("GENCONV_CONV", "cudnn")
    found = langevin(model, x, steps=2, delta=0.3, seed=3, backend="triton").x
    assert_close(found, expected, torch.float32, "chain")
