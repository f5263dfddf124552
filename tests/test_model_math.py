"""The piecewise-linear structure of f (GCN spec oracles 1-4 and 8), in float64."""

import pytest
import torch

from genconv.engine.model import GenerativeConvNet
from genconv.engine.network import ConvLayer, NetworkSpec

from support import ARCHITECTURE_IDS, ARCHITECTURES, build, random_input


def _masks(model: GenerativeConvNet, x: torch.Tensor) -> list[torch.Tensor]:
    return model.bottom_up(x, "torch").masks


@pytest.mark.parametrize("entry", ARCHITECTURES, ids=ARCHITECTURE_IDS)
def test_explicit_top_down_equals_autograd(entry: tuple) -> None:
    model = build(entry)
    x = random_input(model)
    explicit = model.grad_f(x, backend="torch")
    autograd = model.grad_f_autograd(x)
    assert explicit.abs().max() > 0
    torch.testing.assert_close(explicit, autograd, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("entry", ARCHITECTURES, ids=ARCHITECTURE_IDS)
def test_explicit_bottom_up_score_equals_module_forward(entry: tuple) -> None:
    model = build(entry)
    x = random_input(model)
    torch.testing.assert_close(model.bottom_up(x, "torch").score, model.f(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("entry", ARCHITECTURES, ids=ARCHITECTURE_IDS)
def test_alpha_recursion_reproduces_f_minus_inner_product(entry: tuple) -> None:
    model = build(entry)
    x = random_input(model)
    alpha, basis = model.decompose(x)
    torch.testing.assert_close(basis, model.grad_f_autograd(x), rtol=1e-12, atol=1e-12)
    inner = (x * basis).flatten(1).sum(dim=1)
    torch.testing.assert_close(alpha + inner, model.f(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("entry", ARCHITECTURES, ids=ARCHITECTURE_IDS)
def test_bias_free_net_is_positively_homogeneous(entry: tuple) -> None:
    model = build(entry, bias=False)
    x = random_input(model)
    f = model.f(x)
    for scale in (0.37, 3.7, 41.0):
        torch.testing.assert_close(model.f(scale * x), scale * f, rtol=1e-10, atol=1e-12)
        for before, after in zip(_masks(model, x), _masks(model, scale * x), strict=True):
            assert torch.equal(before, after)
    euler = (x * model.grad_f(x, backend="torch")).flatten(1).sum(dim=1)
    torch.testing.assert_close(euler, f, rtol=1e-10, atol=1e-12)
    alpha, _ = model.decompose(x)
    assert alpha.abs().max() < 1e-10 * f.abs().max()


@pytest.mark.parametrize("entry", ARCHITECTURES[:4] + ARCHITECTURES[5:6], ids=ARCHITECTURE_IDS[:4] + ["leaky-fc"])
def test_local_affinity_within_an_activation_piece(entry: tuple) -> None:
    """Oracle 2: where J and I share every mask, grad f(J) = grad f(I) and f is affine between them."""
    model = build(entry)
    x = random_input(model, batch=6)
    generator = torch.Generator().manual_seed(5)
    checked = 0
    for eta in (1e-6, 1e-4, 1e-3):
        y = x + eta * torch.randn(x.shape, generator=generator, dtype=x.dtype)
        same = torch.ones(x.shape[0], dtype=torch.bool)
        for mask_x, mask_y in zip(_masks(model, x), _masks(model, y), strict=True):
            same &= (mask_x == mask_y).flatten(1).all(dim=1)
        pooled = any(layer.pool > 1 for layer in model.spec.layers)
        if pooled:
            trace_x, trace_y = model.bottom_up(x, "torch"), model.bottom_up(y, "torch")
            for rec_x, rec_y in zip(trace_x.pools, trace_y.pools, strict=True):
                if rec_x is not None and rec_x.indices is not None:
                    same &= (rec_x.indices == rec_y.indices).flatten(1).all(dim=1)
        if not same.any():
            continue
        grad_x, grad_y = model.grad_f(x[same], "torch"), model.grad_f(y[same], "torch")
        torch.testing.assert_close(grad_y, grad_x, rtol=0, atol=0)
        predicted = model.f(x[same]) + ((y[same] - x[same]) * grad_x).flatten(1).sum(dim=1)
        torch.testing.assert_close(model.f(y[same]), predicted, rtol=1e-11, atol=1e-11)
        alpha_x, _ = model.decompose(x[same])
        alpha_y, _ = model.decompose(y[same])
        torch.testing.assert_close(alpha_y, alpha_x, rtol=1e-11, atol=1e-11)
        checked += int(same.sum())
    assert checked > 0, "no perturbation stayed inside its activation piece"


def test_exact_gaussian_inside_a_piece() -> None:
    """Oracle 4: log p(J) - log p(I) = -(|J - s^2 B|^2 - |I - s^2 B|^2) / (2 s^2) on one piece."""
    model = build(ARCHITECTURES[2])
    sigma = model.sigma
    x = random_input(model, batch=4)
    y = x + 1e-4 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=x.dtype)
    same = torch.ones(x.shape[0], dtype=torch.bool)
    for mask_x, mask_y in zip(_masks(model, x), _masks(model, y), strict=True):
        same &= (mask_x == mask_y).flatten(1).all(dim=1)
    assert same.sum() >= 2
    x, y = x[same], y[same]
    log_ratio = model.energy(x) - model.energy(y)
    mean = model.reconstruct(x, backend="torch")
    gaussian = -((y - mean).pow(2).flatten(1).sum(1) - (x - mean).pow(2).flatten(1).sum(1)) / (2 * sigma**2)
    torch.testing.assert_close(log_ratio, gaussian, rtol=1e-9, atol=1e-9)
    score = (model.reconstruct(x, "torch") - x) / sigma**2
    energy_grad = torch.autograd.functional.jacobian(lambda v: model.energy(v).sum(), x)
    torch.testing.assert_close(score, -energy_grad, rtol=1e-10, atol=1e-10)


def test_reconstruction_is_sigma_squared_gradient() -> None:
    model = build(ARCHITECTURES[1])
    x = random_input(model)
    torch.testing.assert_close(model.reconstruct(x, "torch"), model.sigma**2 * model.grad_f_autograd(x))


def test_hessian_vector_products_vanish() -> None:
    """Oracle 8: f is piecewise linear, so its Hessian is 0 and score matching = reconstruction error."""
    model = build(ARCHITECTURES[0])
    x = random_input(model, batch=2)
    vector = torch.randn_like(x)
    _, hvp = torch.autograd.functional.hvp(lambda v: model.f(v).sum(), x, vector)
    assert hvp.abs().max() == 0


def test_score_matching_objective_is_the_reconstruction_error() -> None:
    model = build(ARCHITECTURES[0])
    x = random_input(model, batch=3)
    sigma = model.sigma
    dim = x[0].numel()
    grad_log_p = (model.reconstruct(x, "torch") - x) / sigma**2
    laplacian = -dim / sigma**2  # Delta f = 0 almost everywhere
    objective = (0.5 * grad_log_p.pow(2).flatten(1).sum(1) + laplacian).mean()
    recon = (x - model.reconstruct(x, "torch")).pow(2).flatten(1).sum(1).mean() / (2 * sigma**4) - dim / sigma**2
    torch.testing.assert_close(objective, recon)


def test_input_shape_errors_name_the_expected_form() -> None:
    model = build(ARCHITECTURES[3])
    with pytest.raises(ValueError, match=r"x must have shape \[B, 2, H, W\]"):
        model.f(torch.zeros(2, 3, 14, 15, dtype=torch.float64))
    with pytest.raises(ValueError, match="expects 14x15 images"):
        model.f(torch.zeros(2, 2, 16, 16, dtype=torch.float64))
    spec = NetworkSpec(1, (ConvLayer(4, 15, 3, 7), ConvLayer(4, 5, 1, 0)), top="sum")
    with pytest.raises(ValueError, match="too small for this network"):
        GenerativeConvNet(spec).f(torch.zeros(1, 1, 8, 8))
    assert spec.min_image_size() == 15
    GenerativeConvNet(spec).f(torch.zeros(1, 1, 15, 15))
    with pytest.raises(ValueError, match="smallest accepted size is 15"):
        GenerativeConvNet(spec).f(torch.zeros(1, 1, 14, 15))
