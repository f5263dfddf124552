"""The torch.library ops: opcheck, gradients to second order, torch.compile, the Triton path, errors."""

import pytest
import torch
import torch.nn.functional as F
from torch._dynamo.backends.debugging import aot_eager
from torch.autograd import gradcheck, gradgradcheck

import genconv  # noqa: F401  (registers the ops)
from genconv.bindings import backends, ops
from genconv.bindings.errors import ConfigError
from genconv.kernels import reference

from kernel_support import assert_close, non_contiguous

SEED, BASE = 12345, 77


pytestmark = pytest.mark.usefixtures("one_intra_op_thread")


STRIDE, PADDING, SLOPE = 2, 1, 0.2
X_SHAPE, HW = (2, 2, 5, 4), [5, 4]


def _tensor(*shape: int, seed: int, dtype: torch.dtype = torch.float64, grad: bool = True) -> torch.Tensor:
    values = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)
    return values.requires_grad_(grad)


def _conv_inputs(dtype: torch.dtype = torch.float64, grad: bool = True):
    """x [2, 2, 5, 4], weight [3, 2, 3, 3], bias [3], the layer's mask and a top gradient G [2, 3, 3, 2].

    Small on purpose: gradgradcheck evaluates the ops twice per input element.
    """
    x = _tensor(*X_SHAPE, seed=0, dtype=dtype, grad=grad)
    weight = _tensor(3, 2, 3, 3, seed=1, dtype=dtype, grad=grad)
    bias = _tensor(3, seed=2, dtype=dtype, grad=grad)
    h, mask = reference.conv_act_forward(x.detach(), weight.detach(), bias.detach(), STRIDE, PADDING, SLOPE)
    top = _tensor(*h.shape, seed=3, dtype=dtype, grad=grad)
    return x, weight, bias, mask, top


def _floats(tensors, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    """Detached copies in ``dtype`` of the floating tensors; masks stay bool."""
    return [t.detach().to(dtype) if t.is_floating_point() else t for t in tensors]


def _opcheck_cases():
    x, weight, bias, mask, top = _conv_inputs()
    g, noise = _tensor(*X_SHAPE, seed=4), _tensor(*X_SHAPE, seed=5)
    counter = ops.noise_counter(SEED, BASE)
    return [
        ("langevin_update", ops.langevin_update, (x, g, 0.3, 1.3, counter, 11), {}),
        ("langevin_update-clamp", ops.langevin_update, (x, g, 0.3, 1.3, counter, 11), {"clamp": [-1.0, 1.0]}),
        ("langevin_update-noise-no-reference", ops.langevin_update, (x, g, 0.3, float("inf"), counter, 0),
         {"noise": noise}),
        ("conv_act_forward-leaky-bias", ops.conv_act_forward, (x, weight, bias, STRIDE, PADDING, SLOPE), {}),
        ("conv_act_forward-relu-no-bias", ops.conv_act_forward, (x, weight, None, 1, 0, 0.0), {}),
        ("masked_conv_transpose", ops.masked_conv_transpose, (top, mask, weight, STRIDE, PADDING, SLOPE, HW), {}),
        ("masked_conv_transpose_langevin", ops.masked_conv_transpose_langevin,
         (top, mask, weight, STRIDE, PADDING, SLOPE, x, 0.3, 1.2, counter, 4), {"noise": noise, "clamp": [-2.0, 2.0]}),
    ]  # fmt: skip


OPCHECK_CASES = _opcheck_cases()


@pytest.mark.parametrize("case", OPCHECK_CASES, ids=[case[0] for case in OPCHECK_CASES])
def test_opcheck(case) -> None:
    """Schema, fake tensors, autograd registration and AOT dispatch (dynamic shapes) all pass."""
    _, op, args, kwargs = case
    results = torch.library.opcheck(op, args, kwargs)
    assert set(results.values()) == {"SUCCESS"}, results


def _as_float32(value):
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.detach().float().requires_grad_(value.requires_grad)
    return value


def _route_cpu_to_triton(monkeypatch) -> None:
    """Send CPU tensors to the Triton kernels, run by the interpreter (TRITON_INTERPRET=1)."""
    if not backends.triton_interpreter_enabled():
        pytest.skip("routes CPU tensors to the kernels, which needs TRITON_INTERPRET=1")
    pytest.importorskip("triton")
    monkeypatch.setitem(ops.DEVICE_BACKENDS, "cpu", "triton")


@pytest.mark.interpreter
@pytest.mark.parametrize("case", OPCHECK_CASES, ids=[case[0] for case in OPCHECK_CASES])
def test_opcheck_on_the_triton_kernels(case, monkeypatch) -> None:
    """The same checks with the ops dispatching to the kernels (float32, the kernels' dtype)."""
    _, op, args, kwargs = case
    _route_cpu_to_triton(monkeypatch)
    results = torch.library.opcheck(op, tuple(map(_as_float32, args)), {k: _as_float32(v) for k, v in kwargs.items()})
    assert set(results.values()) == {"SUCCESS"}, results


def test_cpu_ops_are_the_reference_twins() -> None:
    """On CPU each op returns its twin's result (to float rounding; the counter noise to a few ulp of
    log and cos, exactly with given noise); >4-D states work."""
    x, weight, bias, mask, top = _floats(_conv_inputs())
    g = _tensor(*X_SHAPE, seed=4, dtype=torch.float32, grad=False)
    noise = _tensor(*X_SHAPE, seed=5, dtype=torch.float32, grad=False)
    counter = ops.noise_counter(SEED, BASE)
    close = {"rtol": 1e-5, "atol": 1e-6}
    expected = reference.langevin_update(x, g, 0.3, 1.3, seed=SEED, offset=BASE + 11, clamp=(-1.0, 1.0))
    torch.testing.assert_close(ops.langevin_update(x, g, 0.3, 1.3, counter, 11, None, [-1.0, 1.0]), expected, **close)
    given = reference.langevin_update(x, g, 0.3, 1.3, noise=noise, clamp=(-1.0, 1.0))
    assert torch.equal(ops.langevin_update(x, g, 0.3, 1.3, counter, 11, noise, [-1.0, 1.0]), given)
    x5, g5 = x.view(2, 2, 5, 2, 2), g.view(2, 2, 5, 2, 2)
    five_d = ops.langevin_update(x5, g5, 0.3, 1.3, counter, 11, None, [-1.0, 1.0])
    torch.testing.assert_close(five_d, expected.view(x5.shape), **close)
    h, m = ops.conv_act_forward(x, weight, bias, STRIDE, PADDING, SLOPE)
    h_ref, m_ref = reference.conv_act_forward(x, weight, bias, STRIDE, PADDING, SLOPE)
    torch.testing.assert_close(h, h_ref, **close)
    assert torch.equal(m, m_ref)
    grad_x = ops.masked_conv_transpose(top, mask, weight, STRIDE, PADDING, SLOPE, HW)
    expected_grad = reference.masked_conv_transpose(top, mask, weight, STRIDE, PADDING, SLOPE, tuple(HW))
    torch.testing.assert_close(grad_x, expected_grad, **close)
    fused = ops.masked_conv_transpose_langevin(top, mask, weight, STRIDE, PADDING, SLOPE, x, 0.3, 1.2, counter, 4)
    twin = reference.masked_conv_transpose_langevin(
        top, mask, weight, STRIDE, PADDING, SLOPE, x, 0.3, 1.2, seed=SEED, offset=BASE + 4
    )
    torch.testing.assert_close(fused, twin, **close)


def test_gradients_and_second_derivatives() -> None:
    """Every op's backward matches finite differences, and so does its double backward (float64)."""
    x, weight, bias, mask, top = _conv_inputs()
    g, noise = _tensor(*X_SHAPE, seed=4), _tensor(*X_SHAPE, seed=5)
    counter = ops.noise_counter(SEED)
    functions = [
        (lambda x, g, n: ops.langevin_update(x, g, 0.3, 1.2, counter, 4, n, [-2.0, 2.0]), (x, g, noise)),
        (lambda x, w, b: ops.conv_act_forward(x, w, b, STRIDE, PADDING, SLOPE)[0], (x, weight, bias)),
        (lambda t, w: ops.masked_conv_transpose(t, mask, w, STRIDE, PADDING, SLOPE, HW), (top, weight)),
        (
            lambda t, w, x, n: ops.masked_conv_transpose_langevin(
                t, mask, w, STRIDE, PADDING, SLOPE, x, 0.3, 1.2, counter, 4, n, [-2.0, 2.0]
            ),
            (top, weight, x, noise),
        ),
    ]
    for function, inputs in functions:
        assert gradcheck(function, inputs)
        assert gradgradcheck(function, inputs)


def test_conv_gradients_equal_torch_autograd() -> None:
    """The registered formulas give what autograd gives through conv2d + leaky_relu."""
    x, weight, bias, _, _ = _conv_inputs()
    upstream = _tensor(2, 3, 3, 2, seed=6, grad=False)
    h, _ = ops.conv_act_forward(x, weight, bias, STRIDE, PADDING, SLOPE)
    ours = torch.autograd.grad((h * upstream).sum(), (x, weight, bias))
    expected_h = F.leaky_relu(F.conv2d(x, weight, bias, STRIDE, PADDING), SLOPE)
    theirs = torch.autograd.grad((expected_h * upstream).sum(), (x, weight, bias))
    for mine, want in zip(ours, theirs, strict=True):
        torch.testing.assert_close(mine, want, rtol=1e-12, atol=1e-12)


def _gcn_step_loss(x: torch.Tensor, weight: torch.Tensor, counter: torch.Tensor) -> torch.Tensor:
    """A user function: one fused GCN Langevin step of a one-layer sum model, then a loss."""
    h, mask = torch.ops.genconv.conv_act_forward(x, weight, None, 1, 1, 0.0)
    top = torch.ones_like(h)
    state = torch.ops.genconv.masked_conv_transpose_langevin(top, mask, weight, 1, 1, 0.0, x, 0.3, 1.0, counter, 0)
    state = torch.ops.genconv.langevin_update(state, h.sum(1, keepdim=True) * 0.01, 0.1, 2.0, counter, x.numel())
    return state.pow(2).mean() + h.mean()


def test_torch_compile_fullgraph_matches_eager() -> None:
    """fullgraph=True (no graph breaks) with backend "aot_eager": fake kernels, AOT autograd, same numbers.

    (aot_eager rather than inductor: inductor's C++ compile of the CPU graph is slow here and
    adds nothing, since the genconv ops stay opaque nodes either way.)
    """
    x = _tensor(2, 1, 9, 8, seed=7, dtype=torch.float32, grad=False)
    counter = ops.noise_counter(SEED)
    traced: set[str] = set()

    def recording_backend(graph_module: torch.fx.GraphModule, example_inputs):
        traced.update(str(node.target) for node in graph_module.graph.nodes if node.op == "call_function")
        return aot_eager(graph_module, example_inputs)

    results = []
    for function in (_gcn_step_loss, torch.compile(_gcn_step_loss, backend=recording_backend, fullgraph=True)):
        weight = _tensor(3, 1, 3, 3, seed=8, dtype=torch.float32)
        loss = function(x, weight, counter)
        loss.backward()
        results.append((loss.detach(), weight.grad))
    (eager_loss, eager_grad), (compiled_loss, compiled_grad) = results
    torch.testing.assert_close(compiled_loss, eager_loss)
    torch.testing.assert_close(compiled_grad, eager_grad)
    assert float(eager_grad.abs().sum()) > 0
    assert {"genconv.conv_act_forward", "genconv.masked_conv_transpose_langevin",
            "genconv.langevin_update"} <= traced, traced  # fmt: skip


@pytest.mark.interpreter
def test_ops_on_the_triton_kernels_match_the_reference(monkeypatch) -> None:
    """With CPU tensors routed to Triton (TRITON_INTERPRET=1) every op and backward matches the twins."""
    x, weight, bias, mask, top = _floats(_conv_inputs())
    g = _tensor(*X_SHAPE, seed=4, dtype=torch.float32, grad=False)
    counter = ops.noise_counter(SEED, BASE)
    upstream = _tensor(2, 3, 3, 2, seed=6, dtype=torch.float32, grad=False)

    def run_all() -> list[torch.Tensor]:
        leaf_x, leaf_w = x.clone().requires_grad_(True), weight.clone().requires_grad_(True)
        h, m = ops.conv_act_forward(leaf_x, leaf_w, bias, STRIDE, PADDING, SLOPE)
        grads = torch.autograd.grad((h * upstream).sum(), (leaf_x, leaf_w))
        return [
            ops.langevin_update(non_contiguous(x), g, 0.3, float("inf"), counter, 11, None, [-1.0, 1.5]),
            ops.langevin_update(x.view(2, 2, 5, 2, 2), g.view(2, 2, 5, 2, 2), 0.3, 1.3, counter, 11),
            h.detach(),
            m.float(),
            *grads,
            ops.masked_conv_transpose(top, mask, weight, STRIDE, PADDING, SLOPE, HW),
            ops.masked_conv_transpose_langevin(top, mask, weight, STRIDE, PADDING, SLOPE, x, 0.3, 1.2, counter, 4),
        ]

    expected = run_all()
    _route_cpu_to_triton(monkeypatch)
    for index, (got, want) in enumerate(zip(run_all(), expected, strict=True)):
        assert_close(got, want, torch.float32, f"output {index}")


@pytest.mark.gpu
def test_cuda_ops_match_the_cpu_twins() -> None:
    x, weight, bias, mask, top = _floats(_conv_inputs())
    g = _tensor(*X_SHAPE, seed=4, dtype=torch.float32, grad=False)
    cpu_counter, cuda_counter = ops.noise_counter(SEED, BASE), ops.noise_counter(SEED, BASE, "cuda")
    pairs = [
        (ops.langevin_update(x, g, 0.3, 1.3, cpu_counter, 11), ops.langevin_update(
            x.cuda(), g.cuda(), 0.3, 1.3, cuda_counter, 11)),
        (ops.conv_act_forward(x, weight, bias, STRIDE, PADDING, SLOPE)[0],
         ops.conv_act_forward(x.cuda(), weight.cuda(), bias.cuda(), STRIDE, PADDING, SLOPE)[0]),
        (ops.masked_conv_transpose_langevin(top, mask, weight, STRIDE, PADDING, SLOPE, x, 0.3, 1.2, cpu_counter, 4),
         ops.masked_conv_transpose_langevin(top.cuda(), mask.cuda(), weight.cuda(), STRIDE, PADDING, SLOPE,
                                            x.cuda(), 0.3, 1.2, cuda_counter, 4)),
    ]  # fmt: skip
    for index, (want, got) in enumerate(pairs):
        assert_close(got, want, torch.float32, f"op {index}")


def test_bad_arguments_raise_config_errors_naming_them() -> None:
    x, weight, bias, mask, top = _floats(_conv_inputs())
    counter = ops.noise_counter(SEED)
    with pytest.raises(ConfigError, match=r"grad_f must have the shape of x"):
        ops.langevin_update(x, x[:1], 0.3, 1.0, counter, 0)
    with pytest.raises(ConfigError, match=r"counter must be an int64 tensor \[seed, base\]"):
        ops.langevin_update(x, x, 0.3, 1.0, counter.int(), 0)
    with pytest.raises(ConfigError, match=r"clamp must be \[low, high\] with low < high"):
        ops.langevin_update(x, x, 0.3, 1.0, counter, 0, None, [1.0, -1.0])
    with pytest.raises(ConfigError, match=r"delta must be >= 0 and sigma > 0"):
        ops.langevin_update(x, x, 0.3, 0.0, counter, 0)
    with pytest.raises(ConfigError, match=r"square weight \[C_out, C, K, K\]"):
        ops.conv_act_forward(x, weight[..., :2], bias, 1, 1, 0.0)
    with pytest.raises(ConfigError, match=r"mask must have the shape of x"):
        ops.masked_conv_transpose(top, mask[:, :2], weight, STRIDE, PADDING, SLOPE, HW)
    with pytest.raises(ConfigError, match=r"x must be \[B, C_in, H, W\] = \[2, 2, H, W\]"):
        ops.masked_conv_transpose_langevin(top, mask, weight, STRIDE, PADDING, SLOPE, x[:, :1], 0.3, 1.0, counter, 0)
    with pytest.raises(ConfigError, match=r"seed must be an integer in \[0, 2\*\*63 - 1\]"):
        ops.noise_counter(-1)
    compiled = torch.compile(lambda a, b: ops.langevin_update(a, b, 0.3, 1.0, counter, 0), backend="eager",
                             fullgraph=True)  # fmt: skip
    with pytest.raises(Exception, match=r"grad_f must have the shape of x"):
        compiled(x, x[:1])
