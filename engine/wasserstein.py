"""genconv's formulation of the wGCN learning step (the paper's exact rule could not be recovered).

Learning alternates a particle step (Langevin: the W2 gradient flow of the free energy
F(rho) = E_rho[U] + E_rho[log rho], discretised) and a parameter step. wGCN adds to the MLE loss
the transport cost that the parameters induce on the particle cloud in one step, a JKO proximal
term (lambda_W / (2 tau)) W2^2(rho_{k+1}(theta), rho_k), tau = delta^2 / 2, bounded above by the
coupling that persistent chains give (particle m at step k <-> particle m at step k + 1):

    (lambda_W / (2 tau)) mean_m || (delta^2/2)(df_theta/dx(x_m) - x_m/sigma^2) + delta eps_m ||^2

with eps_m the step's noise, and the gradient taken through df_theta/dx (double
back-propagation, in PyTorch: the fused kernels have no second derivative). By default
(``transport="expected"``) the cost is averaged over eps_m, which it can be in closed form:
||(delta^2/2)(df/dx - x/sigma^2)||^2 + delta^2 D. That is the same objective in expectation; with
eps_m held fixed instead ("coupling"), the term delta eps_m . d(df/dx)/dtheta, zero on average,
puts noise of several times the penalty's own size into its gradient. Optionally the coupling is
replaced by the exact assignment between the two particle sets (mini-batches of up to 256
particles). The alternative ``penalty="gradient"`` adds a WGAN-GP-style penalty on
||df/dx|| at interpolates between data and particles.
"""

import math

import torch
from scipy.optimize import linear_sum_assignment

from genconv.engine.model import GenerativeConvNet

ASSIGNMENT_CHUNK = 256
TRANSPORTS: tuple[str, ...] = ("expected", "coupling", "assignment")
PENALTIES: tuple[str, ...] = ("transport", "gradient")


def exact_assignment(source: torch.Tensor, target: torch.Tensor, chunk: int = ASSIGNMENT_CHUNK) -> torch.Tensor:
    """The permutation p minimising sum_i ||source_i - target_p(i)||^2, within chunks of ``chunk`` rows."""
    permutation = torch.empty(source.shape[0], dtype=torch.long)
    flat_source, flat_target = source.detach().flatten(1).double().cpu(), target.detach().flatten(1).double().cpu()
    for start in range(0, source.shape[0], chunk):
        stop = min(start + chunk, source.shape[0])
        cost = torch.cdist(flat_source[start:stop], flat_target[start:stop]).pow(2)
        rows, columns = linear_sum_assignment(cost.numpy())
        permutation[start + torch.as_tensor(rows)] = start + torch.as_tensor(columns)
    return permutation.to(source.device)


def mean_squared_displacement(after: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    """(1/M) sum_m ||after_m - before_m||^2: the coupling bound on W2^2 between the two clouds."""
    return (after - before).float().pow(2).flatten(1).sum(dim=1).mean()


def transport_penalty(
    model: GenerativeConvNet,
    before: torch.Tensor,
    noise: torch.Tensor,
    delta: float,
    sigma: float,
    transport: str = "expected",
) -> torch.Tensor:
    """(1/(2 tau)) * W2^2 bound between the particles ``before`` and one Langevin step of them.

    Args:
        model: the energy whose parameters receive the gradient.
        before: [M, C, H, W] particles at step k; noise: the standard normals of their step.
        delta, sigma: the step size and the reference std; tau = delta^2 / 2.
        transport: "expected" (the coupling's cost averaged over the step's noise: the same
            objective in expectation, without the noise's zero-mean part in its gradient),
            "coupling" (particle m to particle m, the drawn noise) or "assignment" (exact, in chunks).
    Returns:
        a scalar differentiable in the model's parameters.
    """
    start = before.detach().float().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(model.f(start).sum(), start, create_graph=True)
        drift = (delta**2 / 2) * (grad - start.detach() / sigma**2)
        if transport == "expected":  # E_eps ||drift + delta eps||^2 = ||drift||^2 + delta^2 D
            return (drift.float().pow(2).flatten(1).sum(dim=1).mean() + delta**2 * drift[0].numel()) / delta**2
        after = start.detach() + drift + delta * noise.float()
        target = start.detach()
        if transport == "assignment":
            target = target[exact_assignment(after, target)]
        return mean_squared_displacement(after, target) / (delta**2)


def gradient_penalty(
    model: GenerativeConvNet,
    observed: torch.Tensor,
    synthesized: torch.Tensor,
    mixing: torch.Tensor,
    target_norm: float = 1.0,
    first_chain: int = 0,
) -> torch.Tensor:
    """mean (||df/dx(x_hat)|| - target_norm)^2 at x_hat = a * observed + (1 - a) * synthesized.

    Synthesized image i (global index first_chain + i) is paired with observed image
    (first_chain + i) mod N; ``mixing`` holds a in [0, 1] per pair.
    """
    index = torch.arange(synthesized.shape[0], device=observed.device) + first_chain
    pairs = observed[index % observed.shape[0]]
    weight = mixing.view(-1, *([1] * (synthesized.dim() - 1))).to(synthesized)
    with torch.enable_grad():
        mixed = (weight * pairs + (1 - weight) * synthesized.detach()).requires_grad_(True)
        (grad,) = torch.autograd.grad(model.f(mixed).sum(), mixed, create_graph=True)
        return (grad.flatten(1).norm(dim=1) - target_norm).pow(2).mean()


def gaussian_w2_squared(mean_a: torch.Tensor, std_a: float, mean_b: torch.Tensor, std_b: float) -> float:
    """W2^2(N(m_a, s_a^2 I_D), N(m_b, s_b^2 I_D)) = ||m_a - m_b||^2 + D (s_a - s_b)^2."""
    return float((mean_a - mean_b).pow(2).sum()) + mean_a.numel() * (std_a - std_b) ** 2


def gaussian_jko_step(mean: torch.Tensor, std: float, tau: float, sigma: float) -> tuple[torch.Tensor, float]:
    """One JKO step of F = E[||x||^2 / (2 sigma^2)] + E[log rho] restricted to N(m, s^2 I), in closed form.

    m' = m / (1 + tau / sigma^2); s' = [s/tau + sqrt(s^2/tau^2 + 4 (1/sigma^2 + 1/tau))] / (2 (1/sigma^2 + 1/tau)).
    Its fixed point is (0, sigma): the reference distribution.
    """
    curvature = 1 / sigma**2 + 1 / tau
    new_std = (std / tau + math.sqrt(std**2 / tau**2 + 4 * curvature)) / (2 * curvature)
    return mean / (1 + tau / sigma**2), new_std
