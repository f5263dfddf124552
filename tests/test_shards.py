"""Sharded, resumable sampling runs: the same shards from 1 or 2 processes, and a killed run finished."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from genconv.cli import main
from genconv.engine.config import TrainConfig
from genconv.engine.generate import sample_checkpoint
from genconv.engine.shards import MANIFEST_NAME, file_sha256, load_shards
from genconv.engine.trainer import Trainer

pytestmark = pytest.mark.slow
NUM, SHARD = 11, 3  # four shards, the last one shorter


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = TrainConfig(data="texture:brick", image_size=20, iterations=2, langevin_steps=2, backend="torch",
                         device="cpu", image_every=100)  # fmt: skip
    out = tmp_path_factory.mktemp("run")
    return Trainer(config, out, progress=False).fit().checkpoint


def _environment() -> dict[str, str]:
    environment = dict(os.environ)
    environment.pop("TRITON_INTERPRET", None)
    environment["OMP_NUM_THREADS"] = "1"
    return environment


def _run_cli(arguments: list[str]) -> None:
    """``genconv ARGUMENTS`` in a process of its own (one thread, as the killed run had)."""
    done = subprocess.run([sys.executable, "-m", "genconv", *arguments], env=_environment(), capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


def _sample_arguments(checkpoint: Path, out: Path, num: int = NUM, steps: int = 4, seed: int = 5) -> list[str]:
    return ["sample", "--checkpoint", str(checkpoint), "--out", str(out), "--samples", str(num), "--shard-size",
            str(SHARD), "--steps", str(steps), "--seed", str(seed), "--batch-size", "2", "--backend", "torch",
            "--device", "cpu", "--no-progress"]  # fmt: skip


def _shard_samples(out: Path) -> dict[str, torch.Tensor]:
    return {path.name: torch.load(path, weights_only=True)["samples"] for path in sorted(out.glob("shard-*.pt"))}


def test_shards_hold_the_run_and_match_unsharded_sampling(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "shards"
    assert main([*_sample_arguments(checkpoint, out), "--shard-png"]) == 0
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["complete"] and manifest["num_shards"] == 4
    assert [(s["first"], s["count"]) for s in manifest["shards"]] == [(0, 3), (3, 3), (6, 3), (9, 2)]
    assert manifest["settings"]["checkpoint_sha256"] == file_sha256(checkpoint)
    for shard in manifest["shards"]:
        assert file_sha256(out / shard["file"]) == shard["sha256"]
        assert (out / shard["file"]).with_suffix(".png").is_file()
    samples = load_shards(out)
    assert samples.shape == (NUM, 1, 20, 20)
    # each chain's noise is fixed by its global index: the same chains as one unsharded run
    whole = sample_checkpoint(checkpoint, num=NUM, steps=4, seed=5, batch_size=NUM, backend="torch").image_space()
    torch.testing.assert_close(samples, whole, rtol=1e-5, atol=1e-4)


def test_two_processes_write_the_same_shards(checkpoint: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(_sample_arguments(checkpoint, one)) == 0
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "genconv",
               *_sample_arguments(checkpoint, two)]  # fmt: skip
    done = subprocess.run(command, env=_environment(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = _shard_samples(one), _shard_samples(two)
    assert list(first) == list(second) and len(first) == 4
    for name, values in first.items():
        assert torch.equal(values, second[name]), name
    assert json.loads((two / MANIFEST_NAME).read_text())["complete"]


def test_a_killed_run_is_finished_by_a_rerun(checkpoint: Path, tmp_path: Path) -> None:
    out, reference = tmp_path / "killed", tmp_path / "reference"
    num = 24  # eight shards of slow chains, so the kill lands midway
    arguments = _sample_arguments(checkpoint, out, num=num, steps=150)
    process = subprocess.Popen([sys.executable, "-m", "genconv", *arguments], env=_environment(),
                               start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 240
    while not list(out.glob("shard-*.pt")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before = len(list(out.glob("shard-*.pt")))
    assert 1 <= done_before < 8, "the kill should land after the first shard and before the last"
    assert not json.loads((out / MANIFEST_NAME).read_text())["complete"]
    _run_cli(arguments)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["complete"]
    firsts = [shard["first"] for shard in manifest["shards"]]
    assert firsts == sorted(set(firsts)) and sum(shard["count"] for shard in manifest["shards"]) == num
    _run_cli(_sample_arguments(checkpoint, reference, num=num, steps=150))
    assert torch.equal(load_shards(out), load_shards(reference))


def test_a_rerun_with_other_settings_is_refused(checkpoint: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(_sample_arguments(checkpoint, out)) == 0
    before = _shard_samples(out)
    capsys.readouterr()
    assert main(_sample_arguments(checkpoint, out, seed=6)) == 1
    error = capsys.readouterr().err
    assert "other settings" in error and "seed 5 -> 6" in error and len(error.strip().splitlines()) == 1
    after = _shard_samples(out)
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert main(_sample_arguments(checkpoint, out)) == 0  # the same settings: nothing left to do
    assert "found 4 finished" in capsys.readouterr().out


@pytest.mark.parametrize(
    "change,message",
    [
        (["--shard-size", "0"], "argument --shard-size: expected an integer >= 1"),
        (["--num", "0"], "argument --num/--samples: expected an integer >= 1"),
        (["--samples", "-2"], "argument --num/--samples: expected an integer >= 1"),
        (["--raw", "x.npy"], "--raw does not apply with --shard-size"),
    ],
)
def test_bad_sharded_options(checkpoint: Path, tmp_path: Path, capsys, change: list[str], message: str) -> None:
    try:
        status = main([*_sample_arguments(checkpoint, tmp_path / "run"), *change])
    except SystemExit as exit_:  # a malformed option: argparse's usage error, status 2
        status = exit_.code
    assert status in (1, 2)
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1
