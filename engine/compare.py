"""`genconv compare`: GCN vs wGCN vs GGCN on the same data, seed and iteration budget.

Each family trains with its own defaults into OUT/<model>; the report holds, per model, the
energy curves (mean f on data and on synthesized images), the transport cost, the median wall
time per iteration and the patch SWD of its samples against held-out images. It is written as
OUT/compare.json, OUT/compare.md and OUT/compare.png.
"""

import json
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

from genconv.engine.config import GGCN_ONLY, TrainConfig
from genconv.engine.evaluate import reference_images
from genconv.engine.generate import sample_checkpoint
from genconv.engine.metrics import sliced_wasserstein_distance
from genconv.engine.trainer import METRICS_NAME, Trainer, read_metrics

COMPARED = ("gcn", "wgcn", "ggcn")


def _samples(trainer: Trainer, checkpoint: Path, seed: int) -> Any:
    """The model's own samples after training: the persistent chains, or GGCN's generator + refinement."""
    if trainer.config.model == "ggcn":
        count = trainer.config.num_chains
        steps = trainer.config.langevin_steps
        return sample_checkpoint(checkpoint, num=count, steps=steps, seed=seed, device=trainer.device,
                                 backend=trainer.config.backend).image_space()  # fmt: skip
    return trainer.scale.to_pixel_values(trainer.chains)


def config_for(kind: str, base: TrainConfig) -> TrainConfig:
    """``base`` for model family ``kind``: options of other families are dropped, not refused."""
    dropped: dict[str, Any] = {} if kind == "ggcn" else dict.fromkeys(GGCN_ONLY)
    if kind == "gcn":
        dropped["lambda_w"] = None
    return replace(base, model=kind, **dropped)


def compare_models(base: TrainConfig, out_dir: str | Path, models: tuple[str, ...] = COMPARED,
                   progress: bool = True) -> dict[str, Any]:  # fmt: skip
    """Train every model of ``models`` from ``base`` (see ``config_for``) and report."""
    out_dir = Path(out_dir)
    rows: dict[str, Any] = {}
    curves: dict[str, list[dict[str, Any]]] = {}
    for kind in models:
        trainer = Trainer(config_for(kind, base), out_dir / kind, progress=progress)
        summary = trainer.fit()
        metrics = read_metrics(out_dir / kind / METRICS_NAME)
        reference, which = reference_images(trainer.config)
        samples = _samples(trainer, summary.checkpoint, base.seed).clamp(0, 255)
        swd = sliced_wasserstein_distance(samples, reference, seed=base.seed)
        last = metrics[-1]
        rows[kind] = {
            "iterations": summary.iterations,
            "seconds_per_iteration": statistics.median(entry["seconds"] for entry in metrics),
            "final_f_data": last["f_data"],
            "final_f_syn": last["f_syn"],
            "f_gap_std_last_half": statistics.pstdev(
                entry["f_data"] - entry["f_syn"] for entry in metrics[len(metrics) // 2 :]
            ),
            "swd_x1e3": swd.mean,
            "swd_x1e3_per_level": {str(size): value for size, value in swd.per_level.items()},
            "samples": int(samples.shape[0]),
            "reference": which,
            "reference_images": int(reference.shape[0]),
            "config": trainer.config.to_dict(),
        }
        curves[kind] = metrics
    first = rows[models[0]]
    report = {"data": first["config"]["data"], "preset": base.preset, "image_size": first["config"]["image_size"],
              "iterations": first["iterations"], "seed": base.seed, "models": rows}  # fmt: skip
    (out_dir / "compare.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "compare.md").write_text(markdown_table(report))
    _plot(curves, report, out_dir / "compare.png")
    return report


def markdown_table(report: dict[str, Any]) -> str:
    """The comparison as a markdown table."""
    lines = [
        f"data `{report['data']}`, preset `{report['preset']}`, {report['image_size']} px, "
        f"{report['iterations']} iterations, seed {report['seed']}",
        "",
        "| model | s / iteration | final mean f(data) | final mean f(syn) | std of f(data) - f(syn), last half "
        "| patch SWD x1e3 (vs " + next(iter(report["models"].values()))["reference"] + " images) |",
        "|---|---|---|---|---|---|",
    ]
    for kind, row in report["models"].items():
        lines.append(
            f"| {kind} | {row['seconds_per_iteration']:.3f} | {row['final_f_data']:.4g} | {row['final_f_syn']:.4g} "
            f"| {row['f_gap_std_last_half']:.3g} | {row['swd_x1e3']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def _plot(curves: dict[str, list[dict[str, Any]]], report: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        return
    figure, axes = pyplot.subplots(1, len(curves) + 1, figsize=(4 * (len(curves) + 1), 3.2))
    for axis, (kind, metrics) in zip(axes, curves.items(), strict=False):
        iterations = [entry["iteration"] for entry in metrics]
        axis.plot(iterations, [entry["f_data"] for entry in metrics], label="mean f(data)")
        axis.plot(iterations, [entry["f_syn"] for entry in metrics], label="mean f(syn)")
        axis.set_title(f"{kind}: energy")
        axis.set_xlabel("iteration")
        axis.legend(fontsize=7)
    kinds = list(report["models"])
    axes[-1].bar(kinds, [report["models"][kind]["swd_x1e3"] for kind in kinds], color="tab:purple")
    axes[-1].set_title("patch SWD x1e3 (lower is better)")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    pyplot.close(figure)
