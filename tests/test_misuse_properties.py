"""Property test: command lines and API calls drawn from the whole option space, good values and bad.

Every draw either succeeds with the promised outputs, or ends with one line on stderr, a non-zero
exit and no traceback; either way no file of an earlier run changes. The API either returns finite
chains of x's shape in a new tensor, or raises one of genconv's own errors. Sizes and iteration
counts are tiny and the example counts small, so the file runs in well under two minutes.
"""

import contextlib
import io
import itertools
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import genconv
from genconv.cli import main

SIZE = 24
SETTINGS = {"deadline": None, "suppress_health_check": list(HealthCheck), "derandomize": True, "database": None}
_counter = itertools.count()

TRAIN_VALUES = {
    "--image-size": ["24", "0", "-5", "10", "100000", "2.5"],
    "--delta": ["0.3", "0.1", "0", "-1", "nan", "inf", "1e30", "abc"],
    "--sigma": ["1", "0", "-2", "inf"],
    "--steps": ["1", "2", "0", "-1"],
    "--chains": ["1", "2", "0", "-3"],
    "--seed": ["0", "7", "-1", "99999999999999999999"],
    "--device": ["cpu", "auto", "gpu0", "cuda:9", "tpu", ""],
    "--model": ["gcn", "wgcn", "vae"],
    "--preset": ["texture", "landscape"],
    "--pixel-range": ["centred", "unit", "bits"],
    "--data": ["texture:brick", "texture:marble", "cifar", "folder:/nonexistent/images", "array:/nonexistent.npy"],
    "--max-images": ["1", "0"],
    "--holdout": ["0", "1", "-1"],
    "--batch-size": ["1", "0"],
    "--lr": ["0.01", "0", "nan"],
    "--beta1": ["0.5", "1", "-0.1"],
    "--slope": ["0", "0.2", "1"],
    "--chain-init": ["noise", "zeros", "data", "uniform"],
    "--lambda-w": ["0", "1", "-1"],
    "--latent-dim": ["8"],
    "--backend": ["torch", "reference", "gpu"],
    "--checkpoint-every": ["1", "0"],
}
SAMPLE_VALUES = {
    "--num": ["1", "3", "0", "-2"],
    "--steps": ["0", "2", "-1"],
    "--delta": ["0.3", "1e30", "nan", "0"],
    "--init": ["noise", "zeros", "chains", "generator", "uniform"],
    "--batch-size": ["1", "64", "0"],
    "--device": ["cpu", "gpu0", "cuda:3"],
    "--seed": ["0", "3", "-1"],
    "--model": ["gcn", "ggcn", "vae"],
    "--hidden-steps": ["0", "2", "-1"],
}


def snapshot(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An earlier run (which nothing may change), a text file and a scratch folder."""
    root = tmp_path_factory.mktemp("properties")
    run = root / "run"
    argv = ["train", "--data", "texture:brick", "--image-size", str(SIZE), "--steps", "2", "--iterations", "2",
            "--backend", "torch", "--no-progress", "--out", str(run)]  # fmt: skip
    assert main(argv) == 0
    (root / "notes.txt").write_text("a text file\n")
    return {"root": root, "run": run, "checkpoint": run / "checkpoint.pt", "before": snapshot(run)}


def invoke(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exit_:
            status = exit_.code if isinstance(exit_.code, int) else 1
    return status, out.getvalue(), err.getvalue()


def check_failure(status: int, err: str, argv: list[str]) -> None:
    assert status != 0, argv
    assert "Traceback" not in err, (argv, err)
    assert len(err.strip().splitlines()) == 1, (argv, err)


# The leading values of each option that are good on their own (the rest may be good or bad).
GOOD_COUNT = {"--image-size": 1, "--delta": 2, "--sigma": 1, "--steps": 2, "--chains": 2, "--seed": 2, "--device": 2,
              "--model": 2, "--preset": 1, "--pixel-range": 2, "--data": 1, "--max-images": 1, "--holdout": 1,
              "--batch-size": 1, "--lr": 1, "--beta1": 1, "--slope": 2, "--chain-init": 3, "--lambda-w": 1,
              "--latent-dim": 0, "--backend": 2, "--checkpoint-every": 1, "--num": 2, "--init": 3,
              "--hidden-steps": 1}  # fmt: skip


def options(values: dict[str, list[str]], most: int):
    """Up to ``most`` options with values: half the draws from good values only, half from all."""

    def pick(good_only: bool):
        pool = {name: vals[: GOOD_COUNT.get(name, 1)] if good_only else vals for name, vals in values.items()}
        pool = {name: vals for name, vals in pool.items() if vals}
        return st.lists(st.sampled_from(sorted(pool)), max_size=most, unique=True).flatmap(
            lambda names: st.tuples(*[st.tuples(st.just(name), st.sampled_from(pool[name])) for name in names])
        )

    return st.booleans().flatmap(pick).map(lambda chosen: [item for pair in chosen for item in pair])


@settings(max_examples=14, **SETTINGS)
@given(extra=options(TRAIN_VALUES, 3), where=st.sampled_from(["new", "file", "earlier", "earlier-resume"]))
def test_train_command_lines(world, extra: list[str], where: str) -> None:
    out = {
        "new": world["root"] / f"train-{next(_counter)}",
        "file": world["root"] / "notes.txt",
        "earlier": world["run"],
        "earlier-resume": world["run"],
    }[where]
    base = ["train", "--iterations", "1", "--steps", "1", "--image-size", str(SIZE), "--backend", "torch",
            "--no-progress"]  # fmt: skip
    argv = [*base, *extra, "--out", str(out)] + (["--resume"] if where == "earlier-resume" else [])
    status, stdout, err = invoke(argv)
    if status == 0:
        assert where in ("new", "earlier-resume"), (argv, stdout)
        assert {"checkpoint.pt", "config.json", "metrics.jsonl"} <= {p.name for p in out.iterdir()}
        assert "checkpoint" in stdout
    else:
        check_failure(status, err, argv)
    assert snapshot(world["run"]) == world["before"], argv


@settings(max_examples=16, **SETTINGS)
@given(
    extra=options(SAMPLE_VALUES, 3),
    checkpoint=st.sampled_from(["good", "missing", "folder", "text"]),
    out=st.sampled_from(["png", "folder", "txt"]),
    raw=st.sampled_from([None, ".npy", ".pt", ".txt", "folder"]),
)
def test_sample_command_lines(world, extra: list[str], checkpoint: str, out: str, raw: str | None) -> None:
    root = world["root"]
    name = f"sample-{next(_counter)}"
    path = {"good": world["checkpoint"], "missing": root / "none.pt", "folder": world["run"],
            "text": root / "notes.txt"}[checkpoint]  # fmt: skip
    target = {"png": root / f"{name}.png", "folder": world["run"], "txt": root / f"{name}.txt"}[out]
    argv = ["sample", "--checkpoint", str(path), "--out", str(target), "--no-progress", "--steps", "1", *extra]
    raw_path = None
    if raw is not None:
        raw_path = world["run"] if raw == "folder" else root / f"{name}-raw{raw}"
        argv += ["--raw", str(raw_path)]
    status, _, err = invoke(argv)
    if status == 0:
        assert target.is_file()
        written = raw_path or target.with_suffix(".npy")
        values = np.load(written) if written.suffix == ".npy" else torch.load(written).numpy()
        assert np.isfinite(values).all() and values.shape[1:] == (1, SIZE, SIZE)
    else:
        check_failure(status, err, argv)
        assert not target.with_suffix(".png").exists() or target.suffix != ".png"
    assert snapshot(world["run"]) == world["before"], argv


@settings(max_examples=6, **SETTINGS)
@given(
    num=st.sampled_from(["2", "0"]),
    steps=st.sampled_from(["1", "-1"]),
    out=st.sampled_from([None, "json", "folder"]),
    data=st.sampled_from([None, "texture:brick", "cifar"]),
)
def test_eval_command_lines(world, num: str, steps: str, out: str | None, data: str | None) -> None:
    argv = ["eval", "--checkpoint", str(world["checkpoint"]), "--num", num, "--steps", steps]
    target = None
    if out is not None:
        target = world["run"] if out == "folder" else world["root"] / f"eval-{next(_counter)}.json"
        argv += ["--out", str(target)]
    if data is not None:
        argv += ["--data", data]
    status, stdout, err = invoke(argv)
    if status == 0:
        report = json.loads(stdout)
        assert math.isfinite(report["swd_x1e3"])
        if target is not None:
            assert json.loads(target.read_text()) == report
    else:
        check_failure(status, err, argv)
    assert snapshot(world["run"]) == world["before"], argv


XS = {
    "float32": lambda: torch.zeros(2, 1, SIZE, SIZE),
    "float64": lambda: torch.zeros(2, 1, SIZE, SIZE, dtype=torch.float64),
    "int64": lambda: torch.zeros(2, 1, SIZE, SIZE, dtype=torch.int64),
    "complex": lambda: torch.zeros(2, 1, SIZE, SIZE, dtype=torch.complex64),
    "bool": lambda: torch.zeros(2, 1, SIZE, SIZE, dtype=torch.bool),
    "numpy": lambda: np.zeros((2, 1, SIZE, SIZE), dtype=np.float32),
    "list": lambda: [[0.0]],
    "nan": lambda: torch.full((2, 1, SIZE, SIZE), float("nan")),
    "flat": lambda: torch.zeros(2, SIZE),
}
MODEL = None


@settings(max_examples=40, **SETTINGS)
@given(
    x=st.sampled_from(sorted(XS)),
    steps=st.sampled_from([0, 1, 2, -1, 2.5, None]),
    delta=st.sampled_from([0.3, 0.0, -1.0, math.nan, math.inf, 1e30, "0.3"]),
    clamp=st.sampled_from([None, (-50.0, 50.0), (1.0, -1.0), (0.0, 0.0), (-math.inf, 1.0), "tight"]),
    check_finite=st.booleans(),
    generic=st.booleans(),
)
def test_api_calls(x: str, steps, delta, clamp, check_finite: bool, generic: bool) -> None:
    global MODEL
    if MODEL is None:
        MODEL = genconv.GenerativeConvNet(genconv.network_for("texture", 1, SIZE), sigma=1.0)
    start = XS[x]()
    try:
        if generic:
            update = genconv.SGLDStep(step_size=delta, noise_std=0.1)
            result = genconv.sample_langevin(lambda s: s.pow(2).flatten(1).sum(1), start, steps=steps, update=update,
                                             clamp=clamp, seed=0, check_finite=check_finite)  # fmt: skip
        else:
            result = genconv.langevin(MODEL, start, steps=steps, delta=delta, clamp=clamp, seed=0,
                                      check_finite=check_finite)  # fmt: skip
    except genconv.GenconvError as error:
        assert isinstance(error, (ValueError, TypeError, genconv.ChainDivergedError)), repr(error)
        assert str(error) and "\n" not in str(error)
        return
    assert isinstance(start, torch.Tensor) and start.is_floating_point()
    assert result.x.shape == start.shape and result.x.dtype == start.dtype
    assert result.x.data_ptr() != start.data_ptr()
    if check_finite:
        assert torch.isfinite(result.x).all()
