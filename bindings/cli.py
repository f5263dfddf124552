"""The ``genconv`` command line: ``genconv train`` and ``genconv sample``.

Bad input ends the program with one line on stderr and a non-zero exit status, never a traceback.
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from genconv.bindings.backends import BACKEND_NAMES
from genconv.bindings.errors import ConfigError, GenconvError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _add_train(commands: argparse._SubParsersAction) -> None:
    from genconv.engine.data import dataset_names
    from genconv.engine.presets import PRESETS

    preset_lines = "\n".join(
        f"  {p.name:8s} {p.summary}; paper size {p.paper_image_size} px; delta {p.delta}, sigma {p.sigma}, "
        f"{p.langevin_steps} steps/iter, lr {p.lr}, {p.iterations} iterations, data {p.data}"
        for p in PRESETS.values()
    )
    parser = commands.add_parser(
        "train",
        help="learn a model from images by maximum likelihood with persistent Langevin chains",
        formatter_class=_Formatter,
        description=(
            "Train a Generative ConvNet. Writes into --out: config.json, metrics.jsonl (one JSON line per "
            "iteration), checkpoint.pt (atomic), latest.png and images/iter_N.png (observed | synthesized).\n\n"
            f"presets:\n{preset_lines}\n\nbundled datasets: {', '.join(dataset_names())}; also folder:PATH, "
            "array:PATH.npy|.npz.\nOptions shown with default None take the preset's value."
        ),
    )
    parser.add_argument("--model", default="gcn", help="model family (gcn)")
    parser.add_argument("--preset", default="texture", help="network and defaults: texture or object")
    parser.add_argument("--data", default=None, help="dataset spec, e.g. texture:brick, faces:lfw, folder:PATH")
    parser.add_argument("--out", required=True, help="run directory (created if missing)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--image-size", type=int, default=None, help="side of the square training images, pixels")
    parser.add_argument("--max-images", type=int, default=None, help="use at most this many images")
    parser.add_argument("--iterations", type=int, default=None, help="learning iterations (total, also on resume)")
    parser.add_argument("--steps", type=int, default=None, help="Langevin steps per iteration")
    parser.add_argument(
        "--delta",
        type=float,
        default=None,
        help="Langevin step size = noise std, in pixel units (intensities 0-255 minus mean)",
    )
    parser.add_argument("--sigma", type=float, default=None, help="std of the Gaussian reference q, pixel units")
    parser.add_argument(
        "--chains",
        type=int,
        default=None,
        help="number of persistent chains (default: 3 per image for texture, 16 for object)",
    )
    parser.add_argument("--chain-init", default="noise", help="chain start: noise (N(0, sigma^2)), zeros or data")
    parser.add_argument(
        "--no-persistent",
        action="store_true",
        help="restart the chains from --chain-init every iteration instead of keeping them",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="observed images per iteration (all if unset)")
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate")
    parser.add_argument("--beta1", type=float, default=None, help="Adam beta1")
    parser.add_argument("--slope", type=float, default=0.0, help="leaky-ReLU slope (0 = ReLU)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random stream of the run")
    parser.add_argument("--backend", default="auto", help=f"compute backend: {', '.join(BACKEND_NAMES)}")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--image-every", type=int, default=50, help="write a PNG grid every this many iterations")
    parser.add_argument("--checkpoint-every", type=int, default=50, help="checkpoint every this many iterations")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(run=_run_train)


def _add_sample(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "sample",
        help="draw samples from a trained checkpoint with Langevin dynamics",
        formatter_class=_Formatter,
        description="Run Langevin chains under a trained model; writes a PNG grid and the raw samples.",
    )
    parser.add_argument("--checkpoint", required=True, help="checkpoint.pt written by genconv train")
    parser.add_argument("--out", required=True, help="PNG grid to write")
    parser.add_argument(
        "--raw",
        default=None,
        help="raw samples, .npy or .pt: float32 [N, C, H, W] in pixel units (default: --out with .npy)",
    )
    parser.add_argument("--num", type=int, default=16, help="number of samples")
    parser.add_argument("--steps", type=int, default=200, help="Langevin steps per chain")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed (each chain draws the same noise whatever --batch-size)"
    )
    parser.add_argument("--delta", type=float, default=None, help="step size, pixel units (default: the run's)")
    parser.add_argument(
        "--init",
        default="noise",
        help="chain start: noise (N(0, sigma^2)), zeros, or chains (the run's persistent chains)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="chains run at once")
    parser.add_argument("--model", default=None, help="model family the checkpoint must hold (default: any)")
    parser.add_argument("--backend", default="auto", help=f"compute backend: {', '.join(BACKEND_NAMES)}")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(run=_run_sample)


def build_parser() -> argparse.ArgumentParser:
    """The full ``genconv`` argument parser."""
    parser = _Parser(
        prog="genconv",
        description="genconv: Langevin sampling and maximum-likelihood learning of Generative ConvNets.",
        formatter_class=_Formatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    _add_train(commands)
    _add_sample(commands)
    return parser


def _run_train(args: argparse.Namespace) -> int:
    from genconv.engine.config import TrainConfig
    from genconv.engine.trainer import Trainer

    config = TrainConfig(
        model=args.model,
        preset=args.preset,
        data=args.data,
        image_size=args.image_size,
        max_images=args.max_images,
        iterations=args.iterations,
        langevin_steps=args.steps,
        delta=args.delta,
        sigma=args.sigma,
        num_chains=args.chains,
        chain_init=args.chain_init,
        persistent=not args.no_persistent,
        batch_size=args.batch_size,
        lr=args.lr,
        beta1=args.beta1,
        slope=args.slope,
        seed=args.seed,
        backend=args.backend,
        device=args.device,
        image_every=args.image_every,
        checkpoint_every=args.checkpoint_every,
    )
    trainer = Trainer(config, args.out, resume=args.resume, progress=not args.no_progress)
    summary = trainer.fit()
    print(
        f"trained {summary.iterations} iterations; checkpoint {summary.checkpoint}; "
        f"images {Path(args.out) / 'latest.png'}"
    )
    return 0


def _run_sample(args: argparse.Namespace) -> int:
    from genconv.engine.config import resolve_device
    from genconv.engine.generate import check_raw_path, sample_checkpoint, save_raw
    from genconv.engine.images import grid_array, save_png

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out must be a .png file, got {args.out!r}")
    raw = check_raw_path(args.raw if args.raw else out.with_suffix(".npy"))
    samples = sample_checkpoint(
        args.checkpoint,
        num=args.num,
        steps=args.steps,
        seed=args.seed,
        delta=args.delta,
        init=args.init,
        batch_size=args.batch_size,
        backend=args.backend,
        device=resolve_device(args.device),
        expected_model=args.model,
        progress=not args.no_progress,
    )
    save_png(grid_array(samples.pixels()), out)
    save_raw(samples.image_space(), raw)
    print(f"wrote {args.num} samples: {out} and {raw}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``genconv`` and ``python -m genconv``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except GenconvError as error:
        print(f"genconv {args.command}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"genconv {args.command}: interrupted; the last checkpoint is kept", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
