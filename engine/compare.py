"""`genconv compare`: GCN vs wGCN vs GGCN on the same data and budget, over several seeds.

Each family trains with its own defaults into OUT/<model>/seed-<s>, once per seed. Per run the
report holds the energy curves' stability (the std of mean f(data) - mean f(syn) over the second
half of training relative to the mean |f| there), the largest energy spike (max |f(syn)| over the
median |f(syn)| of the last 50 iterations), the deepest dip (the largest fall of |f(data)| or
|f(syn)| below the median of the 25 iterations before), the median wall time per iteration, the
patch SWD of the model's samples against held-out images and, for gcn and wgcn, the held-out
bits per dimension by a short forward AIS run (``COMPARE_AIS``; a lower bound on bits/dim in
expectation, see ``genconv.engine.likelihood``); per model, the mean and the spread (sample
standard deviation) of each over the seeds. It is written as OUT/compare.json, OUT/compare.md and
OUT/compare.png. A run directory that already holds a checkpoint is resumed, so rerunning an
interrupted comparison finishes it.
"""

import json
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from genconv.engine.compare_figure import save_compare_figure
from genconv.engine.config import GGCN_ONLY, TrainConfig
from genconv.engine.evaluate import reference_images
from genconv.engine.generate import sample_checkpoint
from genconv.engine.likelihood import log_likelihood
from genconv.engine.metrics import sliced_wasserstein_distance
from genconv.engine.outputs import write_text_atomic
from genconv.engine.trainer import CHECKPOINT_NAME, METRICS_NAME, Trainer, read_metrics

COMPARED = ("gcn", "wgcn", "ggcn")
DEFAULT_SEED_COUNT = 3
SPIKE_WINDOW = 50  # iterations whose median |f(syn)| a spike is measured against
DIP_WINDOW = 25  # iterations before each one whose median |f| a dip is measured against
SUMMARISED = (
    "swd_x1e3", "gap_rel_std", "spike_ratio", "dip_ratio", "seconds_per_iteration", "bits_per_dim", "ais_seconds",
)  # fmt: skip
# A cheap AIS schedule for the held-out likelihood of gcn and wgcn: few chains, a longer annealing
# (the estimate's bias shrinks with the steps, its standard error with the chains).
COMPARE_AIS = {"chains": 8, "steps": 500, "transition": "mala"}


def config_for(kind: str, base: TrainConfig) -> TrainConfig:
    """``base`` for model family ``kind``: options of other families are dropped, not refused."""
    dropped: dict[str, Any] = {} if kind == "ggcn" else dict.fromkeys(GGCN_ONLY)
    if kind == "gcn":
        dropped["lambda_w"] = None
    return replace(base, model=kind, **dropped)


def gap_relative_std(metrics: list[dict[str, Any]]) -> float:
    """std of mean f(data) - mean f(syn) over the second half of training / the mean of |f| there.

    |f| is (|mean f(data)| + |mean f(syn)|) / 2 per iteration: the gap's jitter in units of the
    energies' own scale, comparable between models whose f grows to different sizes.
    """
    half = metrics[len(metrics) // 2 :]
    gaps = [entry["f_data"] - entry["f_syn"] for entry in half]
    scale = statistics.fmean((abs(entry["f_data"]) + abs(entry["f_syn"])) / 2 for entry in half)
    return statistics.pstdev(gaps) / scale if scale > 0 else float("inf")


def spike_ratio(metrics: list[dict[str, Any]]) -> float:
    """max over iterations of |mean f(syn)| / the median |mean f(syn)| of the last ``SPIKE_WINDOW`` iterations.

    Above 10 the run has an energy spike.
    """
    sizes = [abs(entry["f_syn"]) for entry in metrics]
    typical = statistics.median(sizes[-SPIKE_WINDOW:])
    return max(sizes) / typical if typical > 0 else float("inf")


def dip_ratio(metrics: list[dict[str, Any]], window: int = DIP_WINDOW) -> float:
    """The deepest downward collapse of the energies: max over iterations t of the median |mean f| of
    the ``window`` iterations before t over |mean f| at t, for f(data) and f(syn).

    1 when an energy never falls below its recent level; 2 when it halves (e.g. f(syn) 1.2e5 ->
    6e4 within a few iterations). ``spike_ratio`` looks at maxima only and misses such dips; the
    energies' growth at the start of training raises neither. Runs shorter than ``window`` + 1
    iterations give 1.
    """
    worst = 1.0
    for key in ("f_data", "f_syn"):
        sizes = [abs(entry[key]) for entry in metrics]
        for index in range(window, len(sizes)):
            typical = statistics.median(sizes[index - window : index])
            if typical > 0:
                worst = max(worst, typical / sizes[index] if sizes[index] > 0 else float("inf"))
    return worst


def _samples(trainer: Trainer, checkpoint: Path, seed: int) -> torch.Tensor:
    """The model's own samples after training, in pixel units: the persistent chains, or GGCN's
    chains as it trains them (hidden-space steps, the generator, image-space refinement)."""
    if trainer.config.model == "ggcn":
        config = trainer.config
        samples = sample_checkpoint(checkpoint, num=config.num_chains, steps=config.langevin_steps, seed=seed,
                                    hidden_steps=config.hidden_steps, device=trainer.device,
                                    backend=config.backend)  # fmt: skip
        return samples.image_space()
    return trainer.scale.to_pixel_values(trainer.chains).cpu()


RunResult = tuple[dict[str, Any], list[dict[str, Any]], torch.Tensor]


def _likelihood(trainer: Trainer, reference: torch.Tensor, ais: dict[str, Any]) -> dict[str, Any]:
    """Held-out bits/dim of a gcn or wgcn run by forward AIS (options ``ais``); None for ggcn."""
    if trainer.config.model == "ggcn":
        return {"bits_per_dim": None, "bits_per_dim_se": None, "ais_ess": None, "ais_seconds": None}
    found = log_likelihood(trainer.model, reference, scale=trainer.scale, seed=trainer.config.seed,
                           backend=trainer.config.backend, device=trainer.device, **ais)  # fmt: skip
    return {"bits_per_dim": found.bits_per_dim, "bits_per_dim_se": found.bits_per_dim_se,
            "ais_ess": found.forward["ess"], "ais_seconds": found.forward["seconds"]}  # fmt: skip


def _run(config: TrainConfig, run_dir: Path, progress: bool, ais: dict[str, Any]) -> RunResult:
    """Train (or finish) one run; its report row, metric lines and samples (pixel units, clipped)."""
    trainer = Trainer(config, run_dir, resume=(run_dir / CHECKPOINT_NAME).exists(), progress=progress)
    summary = trainer.fit()
    metrics = read_metrics(run_dir / METRICS_NAME)
    reference, which = reference_images(trainer.config)
    samples = _samples(trainer, summary.checkpoint, trainer.config.seed).clamp(0, 255)
    swd = sliced_wasserstein_distance(samples, reference, seed=trainer.config.seed)
    row = {
        "seed": trainer.config.seed,
        "iterations": summary.iterations,
        "seconds_per_iteration": statistics.median(entry["seconds"] for entry in metrics),
        "final_f_data": metrics[-1]["f_data"],
        "final_f_syn": metrics[-1]["f_syn"],
        "gap_rel_std": gap_relative_std(metrics),
        "spike_ratio": spike_ratio(metrics),
        "dip_ratio": dip_ratio(metrics),
        "swd_x1e3": swd.mean,
        "swd_x1e3_per_level": {str(size): value for size, value in swd.per_level.items()},
        "samples": int(samples.shape[0]),
        "reference": which,
        "reference_images": int(reference.shape[0]),
        **_likelihood(trainer, reference, ais),
    }
    return row, metrics, samples


def _mean_and_spread(values: list[float | None]) -> dict[str, float | None]:
    if any(value is None for value in values):
        return {"mean": None, "spread": None}
    return {"mean": statistics.fmean(values), "spread": statistics.stdev(values) if len(values) > 1 else 0.0}


def compare_models(
    base: TrainConfig, out_dir: str | Path, models: tuple[str, ...] = COMPARED,
    seeds: tuple[int, ...] | None = None, progress: bool = True, ais: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Train every model of ``models`` from ``base`` (see ``config_for``) once per seed and report.

    ``seeds`` defaults to ``DEFAULT_SEED_COUNT`` consecutive seeds from ``base.seed``; ``ais``
    updates ``COMPARE_AIS``, the options of the likelihood's AIS run (chains, steps, transition).
    """
    ais = {**COMPARE_AIS, **(ais or {})}
    out_dir = Path(out_dir)
    seeds = seeds or tuple(base.seed + index for index in range(DEFAULT_SEED_COUNT))
    rows: dict[str, Any] = {}
    curves: dict[str, list[list[dict[str, Any]]]] = {}
    pictures: dict[str, torch.Tensor] = {}
    for kind in models:
        runs, curves[kind] = [], []
        for seed in seeds:
            config = replace(config_for(kind, base), seed=seed)
            row, metrics, samples = _run(config, out_dir / kind / f"seed-{seed}", progress, ais)
            runs.append(row)
            curves[kind].append(metrics)
            pictures.setdefault(kind, samples)
        resolved = replace(config_for(kind, base), seed=seeds[0]).resolved()
        rows[kind] = {
            **{name: _mean_and_spread([run[name] for run in runs]) for name in SUMMARISED},
            "runs": runs,
            "config": resolved.to_dict(),
        }
    first = rows[models[0]]
    report = {
        "data": first["config"]["data"], "preset": base.preset, "image_size": first["config"]["image_size"],
        "iterations": first["runs"][0]["iterations"], "seeds": list(seeds), "reference": first["runs"][0]["reference"],
        "spread": "sample standard deviation over the seeds", "ais": ais, "models": rows,
    }  # fmt: skip
    write_text_atomic(out_dir / "compare.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(out_dir / "compare.md", markdown_table(report))
    save_compare_figure(curves, pictures, report, out_dir / "compare.png")
    return report


def markdown_table(report: dict[str, Any]) -> str:
    """The comparison as a markdown table: mean ± spread over the seeds."""
    seeds = ", ".join(str(seed) for seed in report["seeds"])
    lines = [
        f"data `{report['data']}`, preset `{report['preset']}`, {report['image_size']} px, "
        f"{report['iterations']} iterations, seeds {seeds} (mean ± std over the seeds)",
        "",
        "| model | s / iteration | std of f(data) - f(syn) / mean abs f, 2nd half | largest spike | deepest dip "
        f"| patch SWD x1e3 (vs {report['reference']} images) | held-out bits/dim (forward AIS) |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, row in report["models"].items():
        cells = [_cell(row["seconds_per_iteration"], ".3f"), _cell(row["gap_rel_std"], ".3g"),
                 _cell(row["spike_ratio"], ".2f", suffix=" x"), _cell(row["dip_ratio"], ".2f", suffix=" x"),
                 _cell(row["swd_x1e3"], ".1f"), _cell(row["bits_per_dim"], ".3f")]  # fmt: skip
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(summary: dict[str, float | None], spec: str, suffix: str = "") -> str:
    if summary["mean"] is None:
        return "n/a"
    return f"{summary['mean']:{spec}} ± {summary['spread']:{spec}}{suffix}"
