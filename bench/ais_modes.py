"""Where a GCN's mass is: the Gaussian-piece masses of its training chains, of the same chains after
HMC moves on the model, and of the end states of an AIS run from N(0, sigma^2 I).

On the activation piece of x, f = alpha + <B, x> and the model restricted to it is N(sigma^2 B,
sigma^2 I) with log mass alpha + sigma^2 ||B||^2 / 2 (the whole Gaussian counted): the larger, the
more of Z the piece holds. Run from the project root on a GCN or wGCN checkpoint:

    OMP_NUM_THREADS=1 python -m bench.ais_modes --checkpoint runs/faces-gcn-s0/checkpoint.pt

Prints one JSON line per stage: the mean and largest piece log mass over the states, and for the
AIS runs log Z (forward, a stochastic lower bound), its effective sample size and time.
"""

import argparse
import json
import time

import torch

from genconv.engine.generate import load_run
from genconv.engine.likelihood import annealed_log_z, chain_mixture, equilibrate
from genconv.engine.model import GenerativeConvNet


def piece_log_mass(model: GenerativeConvNet, states: torch.Tensor) -> torch.Tensor:
    """alpha + sigma^2 ||B||^2 / 2 per state (float64), from f and df/dx on the state's piece."""
    score, grad = model.score_and_grad(states.to(model.dtype))
    grad, flat = grad.to(torch.float64).flatten(1), states.to(torch.float64).flatten(1)
    return score.to(torch.float64) - (grad * flat).sum(1) + model.sigma**2 * grad.pow(2).sum(1) / 2


def _line(stage: str, masses: torch.Tensor, **extra: float) -> None:
    found = {"stage": stage, "mean_piece_log_mass": round(float(masses.mean()), 1),
             "max_piece_log_mass": round(float(masses.max()), 1)}  # fmt: skip
    print(json.dumps({**found, **{key: round(value, 2) for key, value in extra.items()}}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--moves", type=int, default=300, help="HMC moves on the model from the training chains")
    parser.add_argument("--pilot-steps", type=int, default=300, help="steps of the AIS run from the reference")
    parser.add_argument("--chains", type=int, default=16, help="AIS chains")
    args = parser.parse_args()
    torch.set_num_threads(1)
    run = load_run(args.checkpoint)
    model, chains = run.model, run.record["chains"].float()
    _line("training chains", piece_log_mass(model, chains))
    began = time.perf_counter()
    moved, acceptance = equilibrate(model, chains, moves=args.moves, seed=1)
    _line(f"after {args.moves} HMC moves", piece_log_mass(model, moved), acceptance=acceptance,
          seconds=time.perf_counter() - began)  # fmt: skip
    mixture = chain_mixture(model, chains, chains.shape[0])
    found = annealed_log_z(model, chains=chains.shape[0], steps=100, transition="hmc", base=mixture, seed=0)
    _line("AIS from the training chains' mixture, 100 HMC steps", piece_log_mass(model, found.final_states),
          log_z=found.log_z, ess=found.ess, seconds=found.seconds)  # fmt: skip
    pilot = annealed_log_z(model, chains=args.chains, steps=args.pilot_steps, transition="hmc", seed=10)
    _line(f"AIS from the reference, {args.pilot_steps} HMC steps", piece_log_mass(model, pilot.final_states),
          log_z=pilot.log_z, ess=pilot.ess, seconds=pilot.seconds)  # fmt: skip


if __name__ == "__main__":
    main()
