"""The command line end to end on tiny runs, and its one-line errors for bad input."""

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from genconv.cli import main
from genconv.engine.checkpoint import load_checkpoint, save_checkpoint
from genconv.engine.generate import model_from_checkpoint

SIZE = 24
TRAIN = [
    "train",
    "--data",
    "texture:brick",
    "--image-size",
    str(SIZE),
    "--steps",
    "3",
    "--image-every",
    "2",
    "--checkpoint-every",
    "2",
    "--backend",
    "torch",
    "--no-progress",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 4-iteration run shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main([*TRAIN, "--iterations", "4", "--out", str(out)]) == 0
    return out


def test_train_writes_every_artifact(trained) -> None:
    assert {p.name for p in trained.iterdir()} >= {
        "config.json",
        "metrics.jsonl",
        "checkpoint.pt",
        "latest.png",
        "images",
    }
    assert sorted(p.name for p in (trained / "images").iterdir()) == ["iter_000002.png", "iter_000004.png"]
    metrics = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [m["iteration"] for m in metrics] == [1, 2, 3, 4]
    assert {"f_data", "f_syn", "grad_norm", "layer_grad_norms", "seconds"} <= set(metrics[0])
    config = json.loads((trained / "config.json").read_text())
    assert config["image_size"] == SIZE and config["delta"] == 0.3 and config["langevin_steps"] == 3
    # observed: one 24 px image; synthesized: 3 chains in a 2 x 2 grid with 2 px gaps; 6 px separator
    with Image.open(trained / "latest.png") as image:
        assert image.size == (SIZE + 6 + 2 * SIZE + 2, 2 * SIZE + 2)


def test_checkpoint_reloads_into_the_same_model(trained) -> None:
    model, record = model_from_checkpoint(trained / "checkpoint.pt", expected_model="gcn")
    assert record["iteration"] == 4 and record["chains"].shape == (3, 1, SIZE, SIZE)
    chains = record["chains"]
    assert torch.isfinite(model.f(chains)).all()
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, record["model"][name])


def test_sample_is_reproducible_and_independent_of_batching(trained, tmp_path) -> None:
    common = [
        "sample",
        "--checkpoint",
        str(trained / "checkpoint.pt"),
        "--num",
        "5",
        "--steps",
        "4",
        "--backend",
        "torch",
        "--no-progress",
    ]
    assert main([*common, "--seed", "3", "--out", str(tmp_path / "a.png")]) == 0
    assert main([*common, "--seed", "3", "--out", str(tmp_path / "again.png")]) == 0
    assert (
        main(
            [
                *common,
                "--seed",
                "3",
                "--out",
                str(tmp_path / "b.png"),
                "--raw",
                str(tmp_path / "b.pt"),
                "--batch-size",
                "2",
            ]
        )
        == 0
    )
    assert main([*common, "--seed", "4", "--out", str(tmp_path / "c.png")]) == 0
    first = np.load(tmp_path / "a.npy")
    assert first.shape == (5, 1, SIZE, SIZE) and first.dtype == np.float32
    assert np.array_equal(first, np.load(tmp_path / "again.npy"))
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "again.png").read_bytes()
    # Batches draw the same noise; only the convolutions' rounding may differ with the batch size.
    np.testing.assert_allclose(torch.load(tmp_path / "b.pt").numpy(), first, rtol=1e-5, atol=1e-3)
    assert np.abs(first - np.load(tmp_path / "c.npy")).max() > 0.1
    with Image.open(tmp_path / "a.png") as image:
        assert image.size == (3 * SIZE + 4, 2 * SIZE + 2)


def test_sample_can_continue_the_persistent_chains(trained, tmp_path) -> None:
    out = tmp_path / "chains.png"
    assert (
        main(
            [
                "sample",
                "--checkpoint",
                str(trained / "checkpoint.pt"),
                "--num",
                "3",
                "--steps",
                "0",
                "--init",
                "chains",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    record = load_checkpoint(trained / "checkpoint.pt")
    expected = record["chains"] + torch.tensor(record["pixels"]["mean"]).view(1, -1, 1, 1)
    assert np.allclose(np.load(tmp_path / "chains.npy"), expected.numpy())


def test_resume_equals_an_uninterrupted_run(trained, tmp_path, capsys) -> None:
    split = tmp_path / "split"
    assert main([*TRAIN, "--iterations", "2", "--out", str(split)]) == 0
    assert capsys.readouterr().out.startswith("trained 2 iterations;")
    assert main([*TRAIN, "--iterations", "4", "--out", str(split), "--resume"]) == 0
    assert capsys.readouterr().out.startswith("trained 2 iterations (3-4, resumed);")  # what this run did
    whole, resumed = load_checkpoint(trained / "checkpoint.pt"), load_checkpoint(split / "checkpoint.pt")
    assert torch.equal(whole["chains"], resumed["chains"])
    for name, tensor in whole["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name


def _bad_inputs(tmp_path, trained) -> dict[str, tuple[list[str], str]]:
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.png").write_bytes(b"not a png")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes((trained / "checkpoint.pt").read_bytes()[:1000])
    other_model = tmp_path / "other.pt"
    save_checkpoint(other_model, "wgcn", {})
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint\n")
    pickled = tmp_path / "pickled.pt"
    pickled.write_bytes(pickle.dumps({"model": [1, 2, 3]}))
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": torch.nn.Linear(2, 2)}, foreign)  # a whole module: more than weights
    numbers = tmp_path / "numbers.npy"
    numbers.write_text("1 2 3\n")
    out = str(tmp_path / "out")
    sample = ["sample", "--out", str(tmp_path / "s.png"), "--no-progress"]
    return {
        "unknown-dataset": (["train", "--data", "texture:marble", "--out", out], "unknown texture 'marble'"),
        "unknown-spec": (["train", "--data", "cifar", "--out", out], "unknown dataset 'cifar'"),
        "empty-folder": (["train", "--data", f"folder:{empty}", "--out", out], "holds no image files"),
        "unreadable-image": (["train", "--data", f"folder:{broken}", "--out", out], "cannot read image"),
        "too-small": (["train", "--image-size", "10", "--out", out], "too small for this network"),
        "zero-delta": (["train", "--delta", "0", "--out", out], "argument --delta: expected a finite number > 0"),
        "negative-sigma": (["train", "--sigma", "-2", "--out", out], "argument --sigma: expected a finite number > 0"),
        "not-a-number": (["train", "--delta", "abc", "--out", out], "invalid float value: 'abc'"),
        "other-model": ([*sample, "--checkpoint", str(other_model), "--model", "gcn"], "holds a wgcn model, not gcn"),
        "wrong-model": (
            [*sample, "--checkpoint", str(trained / "checkpoint.pt"), "--model", "ggcn"],
            "holds a gcn model, not ggcn",
        ),
        "truncated-checkpoint": ([*sample, "--checkpoint", str(corrupt)], "is damaged (cut short)"),
        "text-checkpoint": ([*sample, "--checkpoint", str(text)], "is not a genconv checkpoint"),
        "pickle-checkpoint": ([*sample, "--checkpoint", str(pickled)], "is not a genconv checkpoint"),
        "module-checkpoint": ([*sample, "--checkpoint", str(foreign)], "holds Python objects beyond tensors"),
        "directory-checkpoint": (
            [*sample, "--checkpoint", str(trained)],
            "is a directory, not a checkpoint file (it holds checkpoint.pt: pass that file)",
        ),
        "text-array": (["train", "--data", f"array:{numbers}", "--out", out], "is not a NumPy .npy or .npz file"),
        "missing-checkpoint": ([*sample, "--checkpoint", str(tmp_path / "none.pt")], "does not exist"),
        "bad-sample-delta": ([*sample, "--checkpoint", str(trained / "checkpoint.pt"), "--delta", "-1"], "delta"),
        "resume-nothing": (["train", "--out", out, "--resume"], "does not exist"),
        "bad-backend": (["train", "--backend", "gpu", "--out", out], "backend must be one of"),
    }


BAD_INPUT_IDS = [
    "unknown-dataset",
    "unknown-spec",
    "empty-folder",
    "unreadable-image",
    "too-small",
    "zero-delta",
    "negative-sigma",
    "not-a-number",
    "other-model",
    "wrong-model",
    "truncated-checkpoint",
    "text-checkpoint",
    "pickle-checkpoint",
    "module-checkpoint",
    "directory-checkpoint",
    "text-array",
    "missing-checkpoint",
    "bad-sample-delta",
    "resume-nothing",
    "bad-backend",
]


@pytest.mark.parametrize("case", BAD_INPUT_IDS)
def test_bad_input_gives_one_line_and_a_nonzero_exit(case: str, trained, tmp_path, capsys) -> None:
    argv, message = _bad_inputs(tmp_path, trained)[case]
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    error = capsys.readouterr().err
    assert status != 0
    assert message in error
    assert len(error.strip().splitlines()) == 1
    assert "Traceback" not in error
    assert "weights_only" not in error and "allow_pickle" not in error  # no advice a user cannot act on


def test_diverging_chains_stop_the_run_naming_the_iteration(tmp_path, capsys) -> None:
    status = main([*TRAIN, "--iterations", "3", "--delta", "1e30", "--out", str(tmp_path / "run")])
    error = capsys.readouterr().err
    assert status == 1
    assert "iteration 1; try a smaller --delta" in error


def test_python_dash_m_and_help_document_the_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "genconv", "train", "--help"], capture_output=True, text=True, check=True
    )
    for option in ("--delta", "--sigma", "--image-size", "--resume", "--steps", "--backend"):
        assert option in result.stdout
    assert "model-space units" in result.stdout and "(default: 0)" in result.stdout
    failing = subprocess.run(
        [sys.executable, "-m", "genconv", "sample", "--checkpoint", "/nonexistent.pt", "--out", "x.png"],
        capture_output=True,
        text=True,
    )
    assert failing.returncode == 1
    assert failing.stderr.strip() == "genconv sample: error: checkpoint '/nonexistent.pt' does not exist"


def test_help_and_version_import_no_torch_and_show_each_default_once() -> None:
    """The command line answers --help without importing torch (it answers at once), and each
    option's default appears once in its help line."""
    probe = (
        "import re, sys\n"
        "from genconv.cli import build_parser\n"
        "parser = build_parser()\n"
        "commands = parser._subparsers._group_actions[0].choices.values()\n"
        "texts = [parser.format_help()] + [command.format_help() for command in commands]\n"
        "print('torch' in sys.modules)\n"
        "print(max(len(re.findall(r'\\bdefault\\b', option)) for text in texts "
        "for option in text.replace('\\n', ' ').split('  --')))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    imported_torch, most_defaults = done.stdout.split()
    assert imported_torch == "False"
    assert int(most_defaults) == 1
    version = subprocess.run([sys.executable, "-m", "genconv", "--version"], capture_output=True, text=True, check=True)
    lines = version.stdout.splitlines()
    assert lines[0].startswith("genconv ") and lines[1].startswith("torch ") and "triton" in lines[1]
    assert lines[2].startswith("backends: ") and lines[3].startswith("C++ CPU kernel: ")


def test_progress_in_a_log_is_a_line_every_few_percent(tmp_path) -> None:
    """With stderr redirected (no terminal) progress is plain lines, not a bar redrawn with carriage returns."""
    command = [sys.executable, "-m", "genconv", *TRAIN[:-1], "--iterations", "20", "--out", str(tmp_path / "run")]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "\r" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("iterations ")]
    assert len(lines) == 10 and lines[-1].startswith("iterations 20/20 (100%)")
