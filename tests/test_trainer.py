"""Training runs: exact resume, atomic checkpoints, divergence handling, configuration errors."""

import json
from dataclasses import replace

import pytest
import torch

from genconv.bindings.errors import ChainDivergedError, CheckpointError, ConfigError
from genconv.engine import checkpoint as checkpoint_module
from genconv.engine.checkpoint import load_checkpoint, save_checkpoint
from genconv.engine.config import TrainConfig
from genconv.engine.trainer import CHECKPOINT_NAME, METRICS_NAME, Trainer

TINY = TrainConfig(
    data="texture:grass",
    image_size=24,
    iterations=6,
    langevin_steps=3,
    image_every=100,
    checkpoint_every=3,
    backend="torch",
)


def _metrics(run_dir) -> list[dict]:
    lines = (run_dir / METRICS_NAME).read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in ("seconds", "elapsed")} for line in lines]


def _assert_same_state(first: dict, second: dict) -> None:
    for key in ("model",):
        for name, tensor in first[key].items():
            assert torch.equal(tensor, second[key][name]), name
    assert torch.equal(first["chains"], second["chains"])
    assert first["rng"] == second["rng"] and first["iteration"] == second["iteration"]
    for index, state in first["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(second["optimizer"]["state"][index][name]))


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path) -> None:
    Trainer(TINY, tmp_path / "whole", progress=False).fit()
    Trainer(replace(TINY, iterations=3), tmp_path / "split", progress=False).fit()
    Trainer(TINY, tmp_path / "split", resume=True, progress=False).fit()
    whole = load_checkpoint(tmp_path / "whole" / CHECKPOINT_NAME)
    split = load_checkpoint(tmp_path / "split" / CHECKPOINT_NAME)
    _assert_same_state(whole, split)
    assert _metrics(tmp_path / "whole") == _metrics(tmp_path / "split")


def test_metrics_past_the_checkpoint_are_dropped_on_resume(tmp_path) -> None:
    run = tmp_path / "run"
    Trainer(replace(TINY, iterations=3), run, progress=False).fit()
    with open(run / METRICS_NAME, "a") as log:  # an iteration logged just before a crash
        log.write(json.dumps({"iteration": 4, "f_data": 0.0}) + "\n")
    Trainer(TINY, run, resume=True, progress=False).fit()
    assert [m["iteration"] for m in _metrics(run)] == [1, 2, 3, 4, 5, 6]


def test_divergence_stops_with_the_iteration_and_keeps_the_last_good_checkpoint(tmp_path) -> None:
    run = tmp_path / "run"
    trainer = Trainer(replace(TINY, iterations=3), run, progress=False)
    trainer.fit()
    trainer.config = trainer.learner.config = replace(trainer.config, delta=1e30, iterations=6)
    with pytest.raises(ChainDivergedError, match=r"iteration 4; try a smaller --delta"):
        trainer.fit()
    assert load_checkpoint(run / CHECKPOINT_NAME)["iteration"] == 3


def test_an_existing_run_is_not_overwritten(tmp_path) -> None:
    Trainer(replace(TINY, iterations=1), tmp_path, progress=False).fit()
    with pytest.raises(ConfigError, match="already holds a run"):
        Trainer(TINY, tmp_path, progress=False)


def test_resume_keeps_settings_except_the_budget(tmp_path) -> None:
    Trainer(replace(TINY, iterations=1), tmp_path, progress=False).fit()
    with pytest.raises(ConfigError, match="--delta 0.1 differs"):
        Trainer(replace(TINY, delta=0.1), tmp_path, resume=True, progress=False)
    resumed = Trainer(replace(TINY, iterations=2), tmp_path, resume=True, progress=False)
    assert resumed.iteration == 1 and resumed.config.iterations == 2


def test_resume_without_a_checkpoint_fails_clearly(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        Trainer(TINY, tmp_path / "empty", resume=True, progress=False)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch) -> None:
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, "gcn", {"value": torch.tensor([1.0])})

    def torn_save(payload, handle):
        handle.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", torn_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, "gcn", {"value": torch.tensor([2.0])})
    monkeypatch.undo()
    assert float(load_checkpoint(path)["value"]) == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_checkpoint_validation(tmp_path) -> None:
    save_checkpoint(tmp_path / "gcn.pt", "gcn", {})
    with pytest.raises(CheckpointError, match="holds a gcn model, not wgcn"):
        load_checkpoint(tmp_path / "gcn.pt", expected_model="wgcn")
    (tmp_path / "junk.pt").write_bytes(b"\x00\x01 not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a genconv checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a genconv checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    whole = (tmp_path / "gcn.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CheckpointError, match=r"is damaged \(cut short\)"):
        load_checkpoint(tmp_path / "cut.pt")


@pytest.mark.parametrize(
    "change,message",
    [
        ({"delta": 0.0}, "delta must be a positive number"),
        ({"sigma": -1.0}, "sigma must be a positive number"),
        ({"iterations": 0}, "iterations must be a positive integer"),
        ({"image_size": 12}, "too small for this network"),
        ({"preset": "landscape"}, "unknown preset 'landscape'"),
        ({"model": "vae"}, "model must be one of"),
        ({"chain_init": "uniform"}, "--chain-init must be one of"),
        ({"beta1": 1.0}, r"beta1 must be in \[0, 1\)"),
        ({"device": "tpu:0"}, "device must be"),
    ],
)
def test_bad_configuration_is_named(tmp_path, change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Trainer(replace(TINY, **change), tmp_path / "run", progress=False)
