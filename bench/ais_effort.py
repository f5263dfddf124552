"""Where SMC effort goes on a GCN: population size, leapfrog steps per move, or rungs of the ladder.

One adaptive ladder (``adaptive_betas``, a first SMC run of one population, seeded apart) and then
SMC on it (``annealed_log_z`` with resampling, ``--populations`` populations of ``--population``
chains). Run from the project root on a GCN or wGCN checkpoint:

    python -m bench.ais_effort --checkpoint runs/faces-gcn-s0/checkpoint.pt --population 64 --leapfrog 16

Prints one JSON line: the ladder's length and its own log Z, the SMC log Z (a stochastic lower bound)
with its standard error from the populations' spread, each population's estimate, the acceptance
and the seconds of the two runs. A converged estimate stops rising when any of the three knobs is
doubled; the populations agreeing with each other does not show it.
"""

import argparse
import json
import math

import torch

from genconv.engine.generate import load_run
from genconv.engine.likelihood import adaptive_betas, annealed_log_z

LADDER_SEED_OFFSET = 1000  # the ladder run draws from streams apart from the SMC run's


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--population", type=int, required=True, help="chains per SMC population and in the ladder")
    parser.add_argument("--populations", type=int, default=2)
    parser.add_argument("--leapfrog", type=int, default=8, help="HMC leapfrog steps per move")
    parser.add_argument("--cess", type=float, default=0.5, help="conditional ESS kept per rung of the ladder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_run(args.checkpoint).model
    betas, ladder = adaptive_betas(model, chains=args.population, cess=args.cess, leapfrog=args.leapfrog,
                                   seed=args.seed + LADDER_SEED_OFFSET)  # fmt: skip
    chains = args.population * args.populations
    found = annealed_log_z(model, chains=chains, schedule=betas, transition="hmc", leapfrog=args.leapfrog,
                           resample=0.5, batch_size=args.population, seed=args.seed)  # fmt: skip
    per_population = found.log_weights.view(args.populations, args.population)
    population_log_z = (torch.logsumexp(per_population, 1) - math.log(args.population)).tolist()
    print(json.dumps({
        "population": args.population, "populations": args.populations, "leapfrog": args.leapfrog,
        "cess": args.cess, "seed": args.seed, "ladder_steps": len(betas) - 1, "ladder_log_z": round(ladder.log_z, 1),
        "log_z": round(found.log_z, 1), "log_z_se": round(found.log_z_se, 2),
        "population_log_z": [round(value, 1) for value in population_log_z],
        "acceptance": round(found.acceptance, 3), "ladder_seconds": round(ladder.seconds, 1),
        "smc_seconds": round(found.seconds, 1),
    }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
