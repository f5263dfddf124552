"""The ``object`` preset on the bundled faces: its defaults against the paper's settings, per seed.

Run from the project root (one training run at a time; 64 px, 700 iterations is ~5 min on one thread):

    OMP_NUM_THREADS=1 python -m bench.object_preset --out runs/object-check --iterations 700 --seeds 0 1 2
    OMP_NUM_THREADS=1 python -m bench.object_preset --out runs/object-check --iterations 700 --paper
    OMP_NUM_THREADS=1 python -m bench.object_preset --out runs/object-check --image-size 100 --iterations 400
    OMP_NUM_THREADS=1 python -m bench.object_preset --out runs/object-check --image-size 100 --iterations 400 \
        --sigma 4 --delta 2.8 --seeds 2

Each run trains ``genconv train --preset object --max-images 36 --holdout 20`` (the preset's 16
training faces, the next 20 held out) at the preset's defaults, or with ``--paper`` at the GCN
paper's settings (sigma 1, delta 0.1, lr 1e-4), or with --sigma / --delta / --langevin-steps /
--lr / --chains in place of those, and prints one JSON line: the patch SWD x1e3 of the persistent
chains (16 unless --chains; clipped to [0, 255]) against the held-out faces (projection seed 0), the
largest upward and downward energy excursions and the median seconds per iteration. A run folder
that holds a checkpoint is resumed (exactly), so an interrupted check finishes where it stopped.
"""

import argparse
import json
import statistics
from pathlib import Path

from genconv.engine.compare import dip_ratio, gap_relative_std, spike_ratio
from genconv.engine.config import TrainConfig
from genconv.engine.evaluate import reference_images
from genconv.engine.metrics import sliced_wasserstein_distance
from genconv.engine.trainer import CHECKPOINT_NAME, METRICS_NAME, Trainer, read_metrics

PAPER = {"sigma": 1.0, "delta": 0.1, "lr": 1e-4}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="parent directory of the runs")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=700)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--paper", action="store_true", help="the GCN paper's sigma 1, delta 0.1, lr 1e-4")
    parser.add_argument("--sigma", type=float, default=None, help="reference std in place of the preset's")
    parser.add_argument("--delta", type=float, default=None, help="Langevin step size in place of the preset's")
    parser.add_argument("--langevin-steps", type=int, default=None, help="Langevin steps per iteration")
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate in place of the preset's")
    parser.add_argument("--chains", type=int, default=None, help="number of persistent chains in place of the preset's")
    args = parser.parse_args()
    changed = {key: value for key, value in (("sigma", args.sigma), ("delta", args.delta),
                                             ("langevin_steps", args.langevin_steps), ("lr", args.lr),
                                             ("num_chains", args.chains)) if value is not None}  # fmt: skip
    for seed in args.seeds:
        label = ("paper" if args.paper else "preset") + "".join(f"-{key}{value:g}" for key, value in changed.items())
        name = f"{label}-{args.image_size}px-seed{seed}"
        config = TrainConfig(
            model="gcn", preset="object", image_size=args.image_size, max_images=36, holdout=20,
            iterations=args.iterations, seed=seed, **{**(PAPER if args.paper else {}), **changed},
        )  # fmt: skip
        run_dir = Path(args.out) / name
        trainer = Trainer(config, run_dir, resume=(run_dir / CHECKPOINT_NAME).exists(), progress=False)
        trainer.fit()
        metrics = read_metrics(trainer.out_dir / METRICS_NAME)
        reference, which = reference_images(trainer.config)
        samples = trainer.scale.to_pixel_values(trainer.chains).clamp(0, 255)
        swd = sliced_wasserstein_distance(samples, reference, seed=0)
        print(json.dumps({
            "run": name, "iterations": len(metrics), "swd_x1e3": round(swd.mean, 1), "reference": which,
            "spike_ratio": round(spike_ratio(metrics), 2), "dip_ratio": round(dip_ratio(metrics), 2),
            "gap_rel_std": round(gap_relative_std(metrics), 4),
            "seconds_per_iteration": round(statistics.median(m["seconds"] for m in metrics), 3),
            "final_f_data": metrics[-1]["f_data"], "final_f_syn": metrics[-1]["f_syn"],
            "images": str(trainer.out_dir / "latest.png"),
        }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
