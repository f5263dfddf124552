"""Data-parallel training under torchrun (gloo, 2 CPU processes) against a single process.

Each rank holds a share of the chains and of every data batch, every chain draws the noise of its
global index, and the gradients are summed over ranks; so two processes train what one process
trains on the same global batch, up to the order of float sums.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genconv.engine.distributed import SINGLE, ProcessGroup, share

pytestmark = pytest.mark.slow

TINY = ["--data", "texture:brick", "--image-size", "20", "--steps", "3", "--backend", "torch", "--device", "cpu",
        "--no-progress", "--image-every", "100", "--seed", "3"]  # fmt: skip
FAMILIES = {
    # 3 chains and one observed image: ranks hold 2 and 1 chains, and rank 1 no observed image
    "gcn": ["--model", "gcn", "--preset", "texture"],
    "wgcn-gradient": ["--model", "wgcn", "--preset", "texture", "--penalty", "gradient", "--chains", "4"],
    # batch norm normalises over each process's own chains, so the generator runs without it here
    "ggcn": ["--model", "ggcn", "--preset", "faces", "--data", "faces:lfw", "--image-size", "16", "--max-images", "6",
             "--chains", "5", "--latent-dim", "8", "--generator-width", "32", "--hidden-steps", "2",
             "--generator-norm", "none"],
}  # fmt: skip


def _environment() -> dict[str, str]:
    environment = dict(os.environ)
    environment.pop("TRITON_INTERPRET", None)
    environment["OMP_NUM_THREADS"] = "1"
    return environment


def train(out: Path, family: str, iterations: int, processes: int, *extra: str) -> dict:
    """Run ``genconv train`` with 1 process or under torchrun; returns the checkpoint."""
    launcher = [sys.executable, "-m", "genconv"] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
        "-m", "genconv"]  # fmt: skip
    arguments = ["train", "--out", str(out), "--iterations", str(iterations), *TINY, *FAMILIES[family], *extra]
    done = subprocess.run([*launcher, *arguments], env=_environment(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)


def test_shares_cover_every_item_once() -> None:
    for total in (1, 2, 3, 7, 64):
        for world in (1, 2, 3, 5):
            ranges = [share(total, ProcessGroup(rank, world)) for rank in range(world)]
            covered = [index for first, count in ranges for index in range(first, first + count)]
            assert covered == list(range(total))
            assert max(c for _, c in ranges) - min(c for _, c in ranges) <= 1
    assert share(5, SINGLE) == (0, 5)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_two_processes_train_what_one_process_trains(tmp_path, family: str) -> None:
    single = train(tmp_path / "one", family, 3, 1)
    double = train(tmp_path / "two", family, 3, 2)
    # Adam turns float-order noise in a gradient that is zero in exact arithmetic (the fc top's
    # bias: d/db of mean f(syn) - mean f(obs) is 1 - 1) into steps of up to lr; such weights may
    # differ by that much, and the rest agree to float rounding.
    bound = single["config"]["lr"] * 3
    differences = []
    for part in ("model", "generator"):
        for name, value in single.get(part, {}).items():
            difference = (double[part][name] - value).abs().flatten()
            assert float(difference.max()) <= bound, (part, name)
            differences.append(difference)
    assert float(torch.cat(differences).mean()) < 1e-6
    if "chains" in single:
        assert double["chains"].shape == single["chains"].shape  # every rank's chains, in global order
        torch.testing.assert_close(double["chains"], single["chains"], rtol=1e-4, atol=1e-4)
    one, two = (json_lines(tmp_path / run / "metrics.jsonl") for run in ("one", "two"))
    assert len(two) == 3  # rank 0 alone writes the log, with the figures of the whole batch
    assert two[0]["f_data"] == pytest.approx(one[0]["f_data"], rel=1e-5)
    for a, b in zip(one, two, strict=True):
        # the gap is blind to that bias
        assert b["f_data"] - b["f_syn"] == pytest.approx(a["f_data"] - a["f_syn"], rel=1e-4, abs=1e-5)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)


def json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_resume_under_torchrun_continues_exactly(tmp_path) -> None:
    straight = train(tmp_path / "straight", "gcn", 4, 2)
    train(tmp_path / "split", "gcn", 2, 2)
    resumed = train(tmp_path / "split", "gcn", 4, 2, "--resume")
    assert resumed["iteration"] == 4
    for name, value in straight["model"].items():
        assert torch.equal(resumed["model"][name], value), name
    assert torch.equal(resumed["chains"], straight["chains"])
    # the checkpoint is the same whatever the world size: one process can continue it
    single = train(tmp_path / "split", "gcn", 5, 1, "--resume")
    assert single["iteration"] == 5 and single["chains"].shape == straight["chains"].shape
