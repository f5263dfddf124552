"""A GCN's activation pieces, the exact structure AIS could exploit, measured on a checkpoint.

On the piece (ReLU / leaky-ReLU mask region) that holds x, f = a + <B, x>, so the model restricted
to the piece is N(sigma^2 B, sigma^2 I) cut to the piece, with mass exp(a + sigma^2 ||B||^2 / 2) times
the Gaussian's probability of the piece. This script finds pieces whose Gaussian mean lies in the
piece itself (self-consistent pieces) by the fixed-point iteration x <- sigma^2 df/dx(x) (the
reconstruction) from the run's persistent chains, then measures, around each end point mu:

- how large the piece is: the fraction of draws mu + s sigma z that keep mu's gradient (the same
  piece), for s = 0.01, 0.1, 1;
- how far f is from the piece's plane over the piece's Gaussian: d = f(x) - a - <B, x> for
  x ~ N(mu, sigma^2 I) (d > 0: f curves upwards, the Gaussian under-counts the model there);
- importance sampling of Z with that one Gaussian as proposal (exact density, full support, so the
  mean weight is unbiased for Z and its log a stochastic lower bound on log Z): log Z, ESS, the
  log weights' spread.

Run from the project root (about a minute on one thread):

    OMP_NUM_THREADS=1 python -m bench.ais_pieces --checkpoint runs/faces-gcn-s0/checkpoint.pt

Prints one JSON line per stage.
"""

import argparse
import json
import math

import torch

from genconv.engine.generate import load_run
from genconv.engine.likelihood import log_mean_exp_with_se


def _line(stage: str, **found: object) -> None:
    print(json.dumps({"stage": stage, **found}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--iterations", type=int, default=40, help="fixed-point iterations")
    parser.add_argument("--pieces", type=int, default=4, help="end points probed")
    parser.add_argument("--draws", type=int, default=256, help="Gaussian draws per probe")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    run = load_run(args.checkpoint)
    model = run.model
    sigma, shape = model.sigma, tuple(run.record["chains"].shape[1:])
    dimension = math.prod(shape)

    def score_grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        score, grad = model.score_and_grad(x.to(model.dtype).view(-1, *shape))
        return score.to(torch.float64), grad.to(torch.float64).flatten(1)

    x = run.record["chains"].to(torch.float64).flatten(1)
    for _ in range(args.iterations):
        x = sigma**2 * score_grad(x)[1]
    score, grad = score_grad(x)
    offset = score - (grad * x).sum(1)
    log_mass = offset + sigma**2 * grad.pow(2).sum(1) / 2
    gap = (sigma**2 * grad - x).norm(dim=1)
    _line("fixed points", states=x.shape[0], iterations=args.iterations,
          exactly_self_consistent=int((gap == 0).sum()), gap_median=round(float(gap.median()), 3),
          gap_max=round(float(gap.max()), 2), piece_log_mass_min=round(float(log_mass.min()), 1),
          piece_log_mass_max=round(float(log_mass.max()), 1))  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    for index in torch.argsort(log_mass, descending=True)[: args.pieces].tolist():
        mu, slope, a = x[index], grad[index], offset[index]
        stays = {}
        for scale in (0.01, 0.1, 1.0):
            draws = mu + scale * sigma * torch.randn(args.draws, dimension, generator=generator, dtype=torch.float64)
            found, found_grad = score_grad(draws)
            stays[str(scale)] = float(((found_grad - slope).norm(dim=1) <= 1e-6 * slope.norm()).double().mean())
        deviation = found - a - draws @ slope
        log_weights = log_mass[index] + deviation
        log_z, _, ess = log_mean_exp_with_se(log_weights)
        _line("piece", piece_log_mass=round(float(log_mass[index]), 1), gap=round(float(gap[index]), 3),
              same_piece_fraction=stays, deviation_mean=round(float(deviation.mean()), 1),
              deviation_std=round(float(deviation.std()), 2), deviation_min=round(float(deviation.min()), 1),
              is_log_z=round(log_z, 1), is_ess=round(ess, 2),
              log_weight_std=round(float(log_weights.std()), 2))  # fmt: skip


if __name__ == "__main__":
    main()
