"""The ``genconv`` command line: ``train``, ``sample``, ``eval`` and ``compare``.

Bad input ends the program with one line on stderr and a non-zero exit status, never a traceback.
The module imports no torch: ``genconv --help`` answers at once, and each command imports what it
runs.
"""

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from genconv import validation as check
from genconv.bindings.choices import BACKEND_NAMES
from genconv.bindings.errors import ConfigError, GenconvError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
MODELS = "gcn, wgcn or ggcn"
MAX_SEED = 2**63 - 1

_COUNT = check.integer(1, check.MAX_COUNT, "an integer >= 1")
_COUNT0 = check.integer(0, check.MAX_COUNT, "an integer >= 0")
_SIZE = check.integer(check.MIN_IMAGE_SIZE, check.MAX_IMAGE_SIZE,
                      f"a side in pixels, {check.MIN_IMAGE_SIZE} to {check.MAX_IMAGE_SIZE}")  # fmt: skip
_WIDTH = check.integer(1, 1 << 16, "an integer from 1 to 65536")
_SEED = check.integer(0, MAX_SEED, "an integer from 0 to 2**63 - 1")
_SEEDS = check.integer(1, 1000, "a number of runs from 1 to 1000")
_AIS_CHAINS = check.integer(2, check.MAX_COUNT, "an integer >= 2")
_POSITIVE = check.number(positive=True)
_NON_NEGATIVE = check.number(non_negative=True)
_FRACTION = check.number(non_negative=True, below=1.0)
_OPEN_FRACTION = check.number(positive=True, below=1.0)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Help lines with their default appended once: not where the line already names its default,
    and not for flags or options whose default is unset."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        unset = default is None or default is False or default == argparse.SUPPRESS
        if re.search(r"\bdefault\b", text) or unset or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def _add_compute_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default="auto", help=f"compute backend: {', '.join(BACKEND_NAMES)}")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by train and compare: data, network, sampler and learning settings."""
    group = parser.add_argument_group("data and network")
    group.add_argument("--preset", default="texture", help="network and defaults (see the list above)")
    group.add_argument("--data", default=None, help="dataset spec, e.g. texture:brick, faces:lfw, folder:PATH")
    group.add_argument("--image-size", type=_SIZE, default=None, help="side of the square training images, pixels")
    group.add_argument("--max-images", type=_COUNT, default=None, help="use at most this many images")
    group.add_argument(
        "--holdout", type=_COUNT0, default=0, help="images kept out of training for evaluation (the last)"
    )
    group.add_argument(
        "--pixel-range",
        default=None,
        help="model space: centred ([0, 255] minus channel mean; gcn, wgcn) or unit ([-1, 1]; ggcn)",
    )
    group.add_argument(
        "--slope", type=_FRACTION, default=None, help="leaky-ReLU slope (0 = ReLU; default: the preset's)"
    )
    group = parser.add_argument_group("sampling and learning")
    group.add_argument("--iterations", type=_COUNT, default=None, help="learning iterations (total, also on resume)")
    group.add_argument(
        "--steps",
        type=_COUNT0,
        default=None,
        help="image-space Langevin steps per iteration (ggcn: refinement steps, may be 0)",
    )
    group.add_argument(
        "--delta",
        type=_POSITIVE,
        default=None,
        help="Langevin step size = noise std, in model-space units (see --pixel-range)",
    )
    group.add_argument(
        "--sigma", type=_POSITIVE, default=None, help="std of the Gaussian reference q, model-space units"
    )
    group.add_argument(
        "--chains",
        type=_COUNT,
        default=None,
        help="chains per iteration (gcn/wgcn: persistent; default 3 per image for texture)",
    )
    group.add_argument("--chain-init", default="noise", help="gcn/wgcn chain start: noise (N(0, sigma^2)), zeros, data")
    group.add_argument(
        "--no-persistent", action="store_true", help="gcn/wgcn: restart the chains from --chain-init every iteration"
    )
    group.add_argument("--batch-size", type=_COUNT, default=None, help="observed images per iteration (all if unset)")
    group.add_argument("--lr", type=_POSITIVE, default=None, help="Adam learning rate of f")
    group.add_argument("--beta1", type=_FRACTION, default=None, help="Adam beta1")
    group.add_argument("--seed", type=_SEED, default=0, help="seed of every random stream of the run")
    group = parser.add_argument_group("wgcn and ggcn (genconv's formulation)")
    group.add_argument(
        "--lambda-w",
        type=_NON_NEGATIVE,
        default=None,
        help="weight of the Wasserstein (JKO) transport penalty; 0 = plain MLE (default 1 for wgcn, 0 for ggcn)",
    )
    group.add_argument(
        "--transport",
        default="expected",
        help="W2 bound: expected (particle m to m, averaged over the step's noise), coupling (particle m to m, "
        "the drawn noise) or assignment (exact, batches of 256)",
    )
    group.add_argument("--penalty", default="transport", help="transport (JKO) or gradient (WGAN-GP style)")
    group.add_argument("--gp-target", type=_NON_NEGATIVE, default=1.0, help="target ||df/dx|| of the gradient penalty")
    group.add_argument("--latent-dim", type=_WIDTH, default=None, help="ggcn: dimension d of z ~ N(0, I_d) (100)")
    group.add_argument(
        "--hidden-steps", type=_COUNT0, default=None, help="ggcn: hidden-space Langevin steps (0 = off, the default)"
    )
    group.add_argument("--hidden-step-size", type=_POSITIVE, default=None, help="ggcn: hidden-space step size s (0.1)")
    group.add_argument(
        "--hidden-grad-clip",
        type=_POSITIVE,
        default=None,
        help="ggcn: largest norm per chain of the hidden steps' gradient (100, in the units --hidden-gradient sets)",
    )
    group.add_argument(
        "--hidden-gradient",
        default=None,
        help="ggcn: what the hidden steps follow: relative (d f(g(z))/dz over the energy scale, i.e. d h(g(z))/dz; "
        "the default) or absolute (d f(g(z))/dz)",
    )
    group.add_argument(
        "--energy-scale",
        default=None,
        help="ggcn: inverse-variance (f = h / sigma^2, He-initialised convs, top at zero so f = 0 at the start; "
        "the default) or none (f = h, N(0, 0.01^2) weights: the spec's start)",
    )
    group.add_argument(
        "--top-init",
        default=None,
        help="ggcn: f's top at the start: zero (the default) or least-squares (fitted so that f = ||x||^2 / "
        "(2 sigma^2) on the training images)",
    )
    group.add_argument(
        "--refine-clamp",
        default=None,
        help="ggcn: pixel-range (keep every refined image within the pixel range, [-1, 1] for --pixel-range unit) "
        "or none (the default)",
    )
    group.add_argument(
        "--warmup",
        type=_COUNT0,
        default=None,
        help="iterations of linear warm-up of f's learning rate (default 50 for ggcn, 0 otherwise)",
    )
    group.add_argument("--generator-lr", type=_POSITIVE, default=None, help="ggcn: Adam learning rate of g (1e-3)")
    group.add_argument("--generator-width", type=_WIDTH, default=None, help="ggcn: channels of g at 4 x 4")
    group.add_argument(
        "--generator-norm", default=None, help="ggcn: batch normalisation in g (batch, the default) or none"
    )
    group.add_argument("--no-amortize", action="store_true", help="ggcn: do not train g (ablation)")


def _config_from(args: argparse.Namespace, model: str):
    from genconv.engine.config import TrainConfig

    return TrainConfig(
        model=model, preset=args.preset, data=args.data, image_size=args.image_size, max_images=args.max_images,
        holdout=args.holdout, iterations=args.iterations, langevin_steps=args.steps, delta=args.delta,
        sigma=args.sigma, num_chains=args.chains, chain_init=args.chain_init, persistent=not args.no_persistent,
        batch_size=args.batch_size, lr=args.lr, beta1=args.beta1, slope=args.slope, pixel_range=args.pixel_range,
        lambda_w=args.lambda_w, transport=args.transport, penalty=args.penalty, gp_target=args.gp_target,
        latent_dim=args.latent_dim, hidden_steps=args.hidden_steps, hidden_step_size=args.hidden_step_size,
        hidden_grad_clip=args.hidden_grad_clip,
        generator_lr=args.generator_lr, generator_width=args.generator_width, generator_norm=args.generator_norm,
        energy_scale=args.energy_scale, hidden_gradient=args.hidden_gradient, warmup=args.warmup,
        top_init=args.top_init, refine_clamp=args.refine_clamp,
        amortize=not args.no_amortize, seed=args.seed, backend=args.backend, device=args.device,
        image_every=getattr(args, "image_every", 50), checkpoint_every=getattr(args, "checkpoint_every", 50),
    )  # fmt: skip


def _preset_help() -> str:
    from genconv.engine.catalog import dataset_names
    from genconv.engine.presets import PRESETS

    lines = "\n".join(f"  {p.name:8s} {p.summary}; {p.paper_image_size} px, data {p.data}" for p in PRESETS.values())
    return (
        f"presets:\n{lines}\n\nbundled datasets: {', '.join(dataset_names())}; also folder:PATH, array:PATH.npy|.npz.\n"
        "Options without a default here take the preset's and the model family's."
    )


def _add_train(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train", help="learn a GCN, wGCN or GGCN from images", formatter_class=_Formatter,
        description=(
            "Train a model. Writes into --out: config.json, metrics.jsonl (one JSON line per iteration), "
            "checkpoint.pt (atomic), latest.png and images/iter_N.png (observed | synthesized), curves.png.\n\n"
            + _preset_help()
        ),
    )  # fmt: skip
    parser.add_argument("--model", default=None, help=f"model family: {MODELS} (default gcn; on resume the run's)")
    parser.add_argument("--out", required=True, help="run directory (created if missing)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    _add_training_options(parser)
    parser.add_argument("--image-every", type=_COUNT, default=50, help="write PNGs every this many iterations")
    parser.add_argument("--checkpoint-every", type=_COUNT, default=50, help="checkpoint every this many iterations")
    _add_compute_options(parser)
    parser.set_defaults(run=_run_train)


def _add_sample(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "sample", help="draw samples from a trained checkpoint", formatter_class=_Formatter,
        description="Run Langevin chains under a trained model; writes a PNG grid and the raw samples.",
    )  # fmt: skip
    parser.add_argument("--checkpoint", required=True, help="checkpoint.pt written by genconv train")
    parser.add_argument("--out", required=True, help="PNG grid to write (a directory with --shard-size)")
    parser.add_argument(
        "--raw",
        default=None,
        help="raw samples, .npy or .pt: float32 [N, C, H, W] in pixel units (default: --out with .npy)",
    )
    parser.add_argument(
        "--num",
        "--samples",
        dest="num",
        type=_COUNT,
        default=16,
        help="number of samples (under torchrun write --samples: torchrun reads --num as its --numa-binding)",
    )
    parser.add_argument(
        "--steps",
        type=_COUNT0,
        default=None,
        help="image-space Langevin steps per chain (default: the run's refinement steps for ggcn, 200 otherwise)",
    )
    parser.add_argument(
        "--seed", type=_SEED, default=0, help="seed (each chain draws the same noise whatever --batch-size)"
    )
    parser.add_argument(
        "--delta", type=_POSITIVE, default=None, help="step size, model-space units (default: the run's)"
    )
    parser.add_argument(
        "--init",
        default=None,
        help="chain start: noise (N(0, sigma^2)), zeros, chains (the run's persistent chains) or "
        "generator (ggcn: z ~ N(0, I) -> g(z)); default generator for ggcn, chains for gcn and wgcn",
    )
    parser.add_argument(
        "--hidden-steps", type=_COUNT0, default=None, help="ggcn: hidden-space Langevin steps before g (the run's)"
    )
    parser.add_argument("--batch-size", type=_COUNT, default=64, help="chains run at once")
    parser.add_argument("--model", default=None, help=f"model family the checkpoint must hold: {MODELS}")
    parser.add_argument(
        "--shard-size",
        type=_COUNT,
        default=None,
        help="write a sharded, resumable run: --out is a directory of shards of this many samples plus "
        "manifest.json; rerunning the same command finishes an interrupted run; under torchrun the shards "
        "are split across processes",
    )
    parser.add_argument("--shard-png", action="store_true", help="with --shard-size: also a PNG grid per shard")
    _add_compute_options(parser)
    parser.set_defaults(run=_run_sample)


def _add_eval(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "eval", help="sample quality: patch SWD (and FID/IS with a local Inception network)",
        formatter_class=_Formatter,
        description=(
            "Draw --num samples and compare them with the run's held-out images (its training images when it "
            "held none out, or --data): multi-scale Laplacian-pyramid patch sliced Wasserstein distance (x1e3). "
            "FID and IS only with --inception, a local TorchScript Inception network; nothing is downloaded."
        ),
    )  # fmt: skip
    parser.add_argument("--checkpoint", required=True, help="checkpoint.pt written by genconv train")
    parser.add_argument("--num", type=_COUNT, default=64, help="number of samples")
    parser.add_argument("--steps", type=_COUNT0, default=None, help="image-space Langevin steps (default: the run's)")
    parser.add_argument("--init", default=None, help="chain start, as for genconv sample")
    parser.add_argument(
        "--hidden-steps", type=_COUNT0, default=None, help="ggcn: hidden-space Langevin steps before g (the run's)"
    )
    parser.add_argument("--seed", type=_SEED, default=0, help="seed of the samples and of the SWD projections")
    parser.add_argument("--data", default=None, help="reference images (default: the run's held-out images)")
    parser.add_argument("--inception", default=None, help="TorchScript Inception network for FID and IS")
    parser.add_argument("--out", default=None, help="also write the report to this JSON file")
    group = parser.add_argument_group(
        "held-out log-likelihood (gcn, wgcn)",
        "With --log-likelihood, eval reports the mean log-likelihood of the reference images instead of the SWD: "
        "log Z by annealed importance sampling from the Gaussian reference N(0, sigma^2 I) to the model, "
        "in nats per image and bits per dimension on the 0-255 grey-level scale, each with its standard error. "
        "Forward AIS underestimates log Z on average, so the figures are upper bounds on the likelihood "
        "(lower bounds on bits/dim); --reverse-ais adds the opposite bound from the run's chains.",
    )
    group.add_argument("--log-likelihood", action="store_true", help="report the held-out log-likelihood by AIS")
    group.add_argument("--ais-chains", type=_AIS_CHAINS, default=128, help="AIS chains (importance weights)")
    group.add_argument("--ais-steps", type=_COUNT, default=200, help="AIS transitions, one per inverse temperature")
    group.add_argument(
        "--ais-transition",
        default="mala",
        help="AIS transition: mala, hmc (--ais-leapfrog steps per move), pcn (exact on each linear piece of f) "
        "or langevin (unadjusted)",
    )
    group.add_argument("--ais-leapfrog", type=_COUNT, default=8, help="leapfrog steps per hmc move")
    group.add_argument(
        "--ais-base", default="reference",
        help="forward AIS start: reference (N(0, sigma^2 I)), chains (Gaussians at the reconstructions of the "
        "run's chains) or pilot (the same at the end states of a first AIS run, which also start --reverse-ais); "
        "chains and pilot take mala or hmc",
    )  # fmt: skip
    group.add_argument(
        "--ais-pilot-steps", type=_COUNT, default=None, help="steps of the pilot run (default --ais-steps)"
    )
    group.add_argument(
        "--ais-resample", type=_FRACTION, default=0.0,
        help="sequential Monte Carlo: resample a population when its ESS falls below this fraction (0: plain AIS; "
        "hmc, or mala with --ais-base chains/pilot)",
    )  # fmt: skip
    group.add_argument(
        "--ais-populations", type=_COUNT, default=4,
        help="independent populations the chains are split into with --ais-resample (their spread gives the error)",
    )  # fmt: skip
    group.add_argument(
        "--ais-equilibrate", type=_COUNT0, default=0,
        help="hmc moves on the model applied to the run's chains (or the pilot's end states) before reverse AIS "
        "and the mixture",
    )  # fmt: skip
    group.add_argument(
        "--ais-schedule", default="sigmoid",
        help="inverse temperatures: sigmoid, geometric, linear, or adaptive (chosen by conditional ESS in a first, "
        "independent run of one population, mala or hmc; --ais-steps caps it)",
    )  # fmt: skip
    group.add_argument(
        "--ais-cess", type=_OPEN_FRACTION, default=None,
        help="conditional ESS kept per step by --ais-schedule adaptive (default 0.5; higher: more, smaller steps)",
    )  # fmt: skip
    group.add_argument(
        "--ais-delta", type=_POSITIVE, default=None,
        help="transition step size (default 0.5 sigma D^-1/6; mala adapts it)",
    )  # fmt: skip
    group.add_argument("--reverse-ais", action="store_true", help="also run reverse AIS from the run's chains")
    group.add_argument("--dequantize", action="store_true", help="add U(-1/2, 1/2) grey levels to every pixel")
    _add_compute_options(parser)
    parser.set_defaults(run=_run_eval)


def _add_compare(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "compare", help="train GCN, wGCN and GGCN on the same data and budget and report", formatter_class=_Formatter,
        description="Trains each family --seeds times (seeds --seed, --seed + 1, ...) into OUT/<model>/seed-<s> and "
        "writes OUT/compare.json, OUT/compare.md and OUT/compare.png: per model the mean and spread over the seeds "
        "of the patch SWD, the energies' stability and the largest energy spike, a grid of samples and the energy "
        "curves. Rerunning the same command finishes an interrupted comparison.\n\n" + _preset_help(),
    )  # fmt: skip
    parser.add_argument("--out", required=True, help="report directory")
    parser.add_argument("--models", default="gcn,wgcn,ggcn", help="comma-separated model families to compare")
    parser.add_argument("--seeds", type=_SEEDS, default=3, help="runs per model, at seeds --seed, --seed + 1, ...")
    parser.add_argument(
        "--ais-chains", type=_AIS_CHAINS, default=8,
        help="chains of the AIS run for the held-out likelihood (gcn, wgcn)",
    )  # fmt: skip
    parser.add_argument("--ais-steps", type=_COUNT, default=500, help="steps of that AIS run")
    _add_training_options(parser)
    _add_compute_options(parser)
    parser.set_defaults(run=_run_compare, image_every=1000000, checkpoint_every=1000000)


class _VersionAction(argparse.Action):
    """``genconv --version``: genconv's, torch's and triton's versions, the backends that run here,
    and whether the C++ CPU kernel is built."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(option_strings, dest=dest, nargs=0, default=argparse.SUPPRESS,
                         help="print versions, the backends available here and the CPU kernel's state")  # fmt: skip

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> NoReturn:
        print(version_report())
        parser.exit()


def version_report() -> str:
    """The lines ``genconv --version`` prints."""
    import importlib.metadata

    import torch

    import genconv
    from genconv.bindings.backends import cpu_kernel_status

    try:
        triton_version = importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        triton_version = "not installed"
    cuda = torch.cuda.is_available()
    backends = ["torch (CPU path)", "reference"]
    if triton_version != "not installed":
        found = f"on {torch.cuda.get_device_name()}" if cuda else "needs a CUDA device: none here"
        backends.insert(0, f"triton ({found})")
    return "\n".join([
        f"genconv {genconv.__version__}",
        f"torch {torch.__version__} (CUDA {'available' if cuda else 'not available'}), triton {triton_version}",
        f"backends: {', '.join(backends)}",
        f"C++ CPU kernel: {cpu_kernel_status(build=False)}",
    ])  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The full ``genconv`` argument parser."""
    parser = _Parser(
        prog="genconv",
        description="genconv: Langevin sampling and learning of Generative ConvNets (GCN, wGCN, GGCN).",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action=_VersionAction)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    _add_train(commands)
    _add_sample(commands)
    _add_eval(commands)
    _add_compare(commands)
    return parser


# Options whose command-line name is not the TrainConfig field's.
FLAG_FIELDS = {"steps": "langevin_steps", "chains": "num_chains", "no_persistent": "persistent",
               "no_amortize": "amortize"}  # fmt: skip


def _explicit_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The destinations of the options typed on ``argv`` (whatever their value), found by parsing
    again with every default suppressed."""
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    command = commands[argv[0]]
    saved = [(action, action.default) for action in command._actions]
    try:
        for action, _ in saved:
            action.default = argparse.SUPPRESS
        typed = command.parse_args(list(argv[1:]))
    finally:
        for action, default in saved:
            action.default = default
    return set(vars(typed))


def _explicit_fields(args: argparse.Namespace) -> set[str]:
    """The TrainConfig fields the user set on the command line."""
    return {FLAG_FIELDS.get(name, name) for name in getattr(args, "explicit", set())}


def _checkpoint_exists(out: str) -> bool:
    from genconv.engine.trainer import CHECKPOINT_NAME

    return (Path(out) / CHECKPOINT_NAME).is_file()


# What each command may find in a folder it writes: its own earlier files (and a lock).
RUN_FILES = ("config.json", "metrics.jsonl", "checkpoint.pt", "latest.png", "curves.png", "images")
SHARD_FILES = ("manifest.json", "shard-*.pt", "shard-*.png")
COMPARE_FILES = ("gcn", "wgcn", "ggcn", "compare.json", "compare.md", "compare.png")


def _check_folder_holds_only(folder: str, patterns: tuple[str, ...], what: str) -> None:
    """ConfigError if ``folder`` holds files that are not ``what``'s own (matching ``patterns``)."""
    import fnmatch

    path = Path(folder)
    if not path.is_dir():
        return
    foreign = sorted(
        entry.name
        for entry in path.iterdir()
        if not entry.name.startswith(".") and not any(fnmatch.fnmatch(entry.name, p) for p in patterns)
    )
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise ConfigError(f"--out {folder!r} holds files that are not {what}'s ({shown}); choose a new or empty folder")


def _run_train(args: argparse.Namespace) -> int:
    from genconv.engine import distributed
    from genconv.engine.checkpoint import load_checkpoint
    from genconv.engine.config import resolve_device
    from genconv.engine.outputs import output_lock
    from genconv.engine.trainer import CHECKPOINT_NAME, Trainer

    check.output_folder("--out", args.out)
    _check_folder_holds_only(args.out, RUN_FILES, "a training run")
    if args.resume and not _checkpoint_exists(args.out):
        load_checkpoint(Path(args.out) / CHECKPOINT_NAME)  # says what is wrong with it
    args.device = check.device("--device", distributed.local_device(args.device))
    group = distributed.init_from_environment(resolve_device(args.device))
    try:
        with output_lock(args.out, folder=True) if group.is_main else _nothing():
            model = args.model
            if model is None:
                model = load_checkpoint(Path(args.out) / CHECKPOINT_NAME)["model_kind"] if args.resume else "gcn"
            trainer = Trainer(_config_from(args, model), args.out, resume=args.resume,
                              progress=not args.no_progress, group=group,
                              explicit=_explicit_fields(args))  # fmt: skip
            summary = trainer.fit()
    except BaseException:
        distributed.shutdown(finished=False)
        raise
    distributed.shutdown()
    if group.is_main:
        processes = f" on {group.world_size} processes" if group.distributed else ""
        done = summary.iterations - summary.first_iteration
        if summary.first_iteration:
            what = f"trained {done} iterations ({summary.first_iteration + 1}-{summary.iterations}, resumed)"
            if not done:
                what = (f"nothing to train: the run already has {summary.first_iteration} iterations (--iterations "
                        f"{trainer.config.iterations}); nothing was changed")  # fmt: skip
                print(f"{what}; checkpoint {summary.checkpoint}")
                return 0
        else:
            what = f"trained {done} iterations"
        print(f"{what}{processes}; checkpoint {summary.checkpoint}; images {Path(args.out) / 'latest.png'}")
    return 0


class _nothing:
    """A context that does nothing (the lock is rank 0's)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


def _run_sample(args: argparse.Namespace) -> int:
    from genconv.engine.config import resolve_device
    from genconv.engine.generate import sample_checkpoint, save_raw
    from genconv.engine.images import grid_array, save_png
    from genconv.engine.outputs import output_locks

    check.input_file("--checkpoint", args.checkpoint)
    if args.shard_size is not None:
        return _run_sharded_sample(args)
    out = check.output_file("--out", args.out, (".png",))
    raw = check.output_file("--raw", args.raw if args.raw else out.with_suffix(".npy"), (".npy", ".pt"))
    if raw.resolve() == out.resolve():
        raise ConfigError(f"--raw {str(raw)!r} is the PNG grid's own path; choose another file")
    device = resolve_device(check.device("--device", args.device))
    with output_locks([(out, False), (raw, False)]):
        samples = sample_checkpoint(
            args.checkpoint, num=args.num, steps=args.steps, seed=args.seed, delta=args.delta, init=args.init,
            hidden_steps=args.hidden_steps, batch_size=args.batch_size, backend=args.backend,
            device=device, expected_model=args.model, progress=not args.no_progress,
        )  # fmt: skip
        save_png(grid_array(samples.pixels()), out)
        save_raw(samples.image_space(), raw)
    print(f"wrote {args.num} samples: {out} and {raw}")
    return 0


def _run_sharded_sample(args: argparse.Namespace) -> int:
    from genconv.engine import distributed
    from genconv.engine.config import resolve_device
    from genconv.engine.outputs import output_lock
    from genconv.engine.shards import sample_shards

    if args.raw:
        raise ConfigError("--raw does not apply with --shard-size: the shards hold the raw samples")
    check.output_folder("--out", args.out)
    _check_folder_holds_only(args.out, SHARD_FILES, "a sharded sampling run")
    device = resolve_device(check.device("--device", distributed.local_device(args.device)))
    group = distributed.init_from_environment(device)
    try:
        with output_lock(args.out, folder=True) if group.is_main else _nothing():
            report = sample_shards(
                args.checkpoint, args.out, num=args.num, shard_size=args.shard_size, steps=args.steps,
                seed=args.seed, delta=args.delta, init=args.init, hidden_steps=args.hidden_steps,
                batch_size=args.batch_size, backend=args.backend, device=device, expected_model=args.model,
                png=args.shard_png, progress=not args.no_progress, group=group,
            )  # fmt: skip
    except BaseException:
        distributed.shutdown(finished=False)
        raise
    distributed.shutdown()
    if group.is_main:
        shards = report["manifest"]["num_shards"]
        print(f"{args.num} samples in {shards} shards in {args.out} (made {report['made']}, found "
              f"{report['skipped']} finished, {report['seconds']:.1f} s)")  # fmt: skip
    return 0


def _check_ais_flags(args: argparse.Namespace) -> None:
    """One line naming the first unusable --ais-* flag (the numbers are checked as they parse)."""
    if args.ais_transition not in ("mala", "pcn", "langevin", "hmc"):
        raise ConfigError(f"--ais-transition must be mala, hmc, pcn or langevin, got {args.ais_transition!r}")
    if args.ais_schedule not in ("sigmoid", "geometric", "linear", "adaptive"):
        raise ConfigError(f"--ais-schedule must be sigmoid, geometric, linear or adaptive, got {args.ais_schedule!r}")
    if args.ais_cess is not None and args.ais_schedule != "adaptive":
        raise ConfigError("--ais-cess applies with --ais-schedule adaptive only")
    if args.ais_schedule == "adaptive" and args.ais_transition not in ("mala", "hmc"):
        raise ConfigError(f"--ais-schedule adaptive takes --ais-transition mala or hmc, got {args.ais_transition!r}")
    if args.ais_base not in ("reference", "chains", "pilot"):
        raise ConfigError(f"--ais-base must be reference, chains or pilot, got {args.ais_base!r}")
    if args.ais_base != "reference" and args.ais_transition not in ("mala", "hmc"):
        raise ConfigError(f"--ais-base {args.ais_base} takes --ais-transition mala or hmc, got {args.ais_transition!r}")
    if args.ais_resample > 0:
        if args.ais_transition != "hmc" and not (args.ais_transition == "mala" and args.ais_base != "reference"):
            raise ConfigError("--ais-resample takes --ais-transition hmc, or mala with --ais-base chains or pilot")
        if args.ais_populations < 2 or args.ais_chains % args.ais_populations:
            raise ConfigError(f"--ais-populations must be >= 2 and divide --ais-chains ({args.ais_chains}), "
                              f"got {args.ais_populations}")  # fmt: skip


def _run_eval(args: argparse.Namespace) -> int:
    from genconv.engine.config import resolve_device
    from genconv.engine.evaluate import evaluate_checkpoint, likelihood_of_checkpoint
    from genconv.engine.outputs import output_lock, write_text_atomic

    check.input_file("--checkpoint", args.checkpoint)
    if args.inception:
        check.input_file("--inception", args.inception)
    if args.log_likelihood:
        _check_ais_flags(args)
    elif args.reverse_ais or args.dequantize:
        raise ConfigError("--reverse-ais and --dequantize apply with --log-likelihood only")
    elif (args.ais_base != "reference" or args.ais_equilibrate or args.ais_pilot_steps is not None
          or args.ais_resample or args.ais_cess is not None):  # fmt: skip
        raise ConfigError("--ais-base, --ais-pilot-steps, --ais-equilibrate, --ais-resample and --ais-cess apply "
                          "with --log-likelihood only")  # fmt: skip
    out = check.output_file("--out", args.out) if args.out else None
    device = resolve_device(check.device("--device", args.device))
    with output_lock(out, folder=False) if out else _nothing():
        if args.log_likelihood:
            report = likelihood_of_checkpoint(
                args.checkpoint, data=args.data, chains=args.ais_chains, steps=args.ais_steps,
                transition=args.ais_transition, schedule=args.ais_schedule, cess=args.ais_cess or 0.5,
                delta=args.ais_delta,
                reverse=args.reverse_ais, base=args.ais_base, leapfrog=args.ais_leapfrog,
                equilibrate_moves=args.ais_equilibrate, pilot_steps=args.ais_pilot_steps,
                resample=args.ais_resample, populations=args.ais_populations,
                dequantize=args.dequantize, seed=args.seed, backend=args.backend, device=device,
            )  # fmt: skip
        else:
            report = evaluate_checkpoint(
                args.checkpoint, num=args.num, steps=args.steps, init=args.init, hidden_steps=args.hidden_steps,
                seed=args.seed, data=args.data, inception=args.inception, backend=args.backend, device=device,
            )  # fmt: skip
        text = json.dumps(report, indent=2)
        if out:
            write_text_atomic(out, text + "\n")
    print(text)
    return 0


def _run_compare(args: argparse.Namespace) -> int:
    from genconv.engine.compare import compare_models
    from genconv.engine.outputs import output_lock

    models = tuple(name.strip() for name in args.models.split(",") if name.strip())
    if not models or any(name not in ("gcn", "wgcn", "ggcn") for name in models):
        raise ConfigError(f"--models must list {MODELS}, comma-separated; got {args.models!r}")
    if len(set(models)) != len(models):
        raise ConfigError(f"--models lists a model twice: {args.models!r}")
    check.output_folder("--out", args.out)
    _check_folder_holds_only(args.out, COMPARE_FILES, "a comparison")
    args.device = check.device("--device", args.device)
    base = _config_from(args, models[0])
    seeds = tuple(base.seed + index for index in range(args.seeds))
    if seeds[-1] > MAX_SEED:
        raise ConfigError(f"--seed {base.seed} with --seeds {args.seeds} runs past the largest seed, 2**63 - 1")
    ais = {"chains": args.ais_chains, "steps": args.ais_steps}
    with output_lock(args.out, folder=True):
        report = compare_models(base, args.out, models, seeds, progress=not args.no_progress, ais=ais)
    from genconv.engine.compare import markdown_table

    print(markdown_table(report), end="")
    return 0


def _os_error_line(error: OSError) -> str:
    """One line for a failed file operation, naming the path."""
    reason = error.strerror or str(error)
    path = error.filename
    if path is None:
        return f"file operation failed: {reason}"
    second = f" -> {str(error.filename2)!r}" if error.filename2 else ""
    return f"cannot write or read {str(path)!r}{second}: {reason}"


def _interrupted_line(args: argparse.Namespace) -> str:
    if args.command == "train":
        if _checkpoint_exists(args.out):
            return f"interrupted; the last checkpoint is kept in {str(args.out)!r} (--resume continues it)"
        return "interrupted before the first checkpoint: nothing to resume"
    if args.command == "compare":
        return "interrupted; rerunning the same command finishes the comparison from the runs' checkpoints"
    if args.command == "sample" and args.shard_size is not None:
        return "interrupted; rerunning the same command finishes the unfinished shards"
    return "interrupted; nothing was written"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``genconv`` and ``python -m genconv``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.explicit = _explicit_options(parser, argv)
    try:
        return args.run(args)
    except GenconvError as error:
        print(f"genconv {args.command}: error: {_one_line(str(error))}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as error:
        print(f"genconv {args.command}: error: {_one_line(_os_error_line(error))}", file=sys.stderr)
        return EXIT_ERROR
    except MemoryError:
        print(f"genconv {args.command}: error: {_OUT_OF_MEMORY}", file=sys.stderr)
        return EXIT_ERROR
    except RuntimeError as error:  # torch reports a failed allocation (CPU or CUDA) as a RuntimeError
        if not any(sign in str(error) for sign in ("out of memory", "can't allocate memory", "Cannot allocate")):
            raise
        print(f"genconv {args.command}: error: {_OUT_OF_MEMORY}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"genconv {args.command}: {_interrupted_line(args)}", file=sys.stderr)
        return EXIT_INTERRUPTED


_OUT_OF_MEMORY = "out of memory; try a smaller --chains, --batch-size, --num or --image-size"


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
