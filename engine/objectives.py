"""Learning objectives whose gradients drive the parameter updates."""

from dataclasses import dataclass

import torch

from genconv.engine.model import GenerativeConvNet


@dataclass
class MaximumLikelihoodTerms:
    """The loss and the scores it was built from (per image, still attached to the graph)."""

    loss: torch.Tensor
    f_observed: torch.Tensor
    f_synthesized: torch.Tensor


def maximum_likelihood_loss(
    model: GenerativeConvNet, observed: torch.Tensor, synthesized: torch.Tensor
) -> MaximumLikelihoodTerms:
    """mean f(synthesized) - mean f(observed): its negative gradient in w is the log-likelihood gradient.

    d/dw of the loss = mean df/dw(synthesized) - mean df/dw(observed), so a descent step moves w
    along (data statistics - synthesized statistics), the MLE update of the GCN paper. The
    synthesized images are treated as constants.
    """
    f_observed = model.f(observed)
    f_synthesized = model.f(synthesized.detach())
    return MaximumLikelihoodTerms(f_synthesized.mean() - f_observed.mean(), f_observed, f_synthesized)


def amortization_loss(generator: torch.nn.Module, latent: torch.Tensor, refined: torch.Tensor) -> torch.Tensor:
    """mean_m ||g(z0_m) - sg[x_m]||^2: the generator learns to emit what the sampler refined (MCMC teaching)."""
    return (generator(latent) - refined.detach()).pow(2).flatten(1).sum(dim=1).mean()
