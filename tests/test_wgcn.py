"""wGCN training: lambda_W = 0 is GCN bit for bit (oracle 13), each penalty option does what it claims."""

import json
from dataclasses import replace

import pytest
import torch

from genconv.engine.checkpoint import load_checkpoint
from genconv.engine.config import TrainConfig
from genconv.engine.trainer import CHECKPOINT_NAME, CURVES_NAME, METRICS_NAME, Trainer

from kernel_support import DEVICE

TINY = TrainConfig(data="texture:grass", image_size=24, iterations=4, langevin_steps=3, image_every=2,
                   checkpoint_every=2, backend="torch")  # fmt: skip


def _run(config: TrainConfig, out) -> Trainer:
    trainer = Trainer(config, out, progress=False)
    trainer.fit()
    return trainer


def _parameters(trainer: Trainer) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in trainer.model.parameters()])


def test_lambda_zero_reproduces_gcn_bit_for_bit(tmp_path) -> None:
    _run(TINY, tmp_path / "gcn")
    _run(replace(TINY, model="wgcn", lambda_w=0.0), tmp_path / "wgcn")
    gcn, wgcn = (
        load_checkpoint(tmp_path / "gcn" / CHECKPOINT_NAME),
        load_checkpoint(tmp_path / "wgcn" / CHECKPOINT_NAME),
    )
    for name, tensor in gcn["model"].items():
        assert torch.equal(tensor, wgcn["model"][name]), name
    assert torch.equal(gcn["chains"], wgcn["chains"])
    for index, state in gcn["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(wgcn["optimizer"]["state"][index][key]))


def test_transport_penalty_changes_learning_and_is_logged(tmp_path) -> None:
    plain = _run(TINY, tmp_path / "gcn")
    wasserstein = _run(replace(TINY, model="wgcn"), tmp_path / "wgcn")
    assert wasserstein.config.lambda_w == 1.0
    assert not torch.equal(_parameters(plain), _parameters(wasserstein))
    lines = [json.loads(line) for line in (tmp_path / "wgcn" / METRICS_NAME).read_text().splitlines()]
    assert all(entry["penalty"] > 0 and entry["transport"] > 0 for entry in lines)
    gcn_lines = [json.loads(line) for line in (tmp_path / "gcn" / METRICS_NAME).read_text().splitlines()]
    assert all("penalty" not in entry and entry["transport"] > 0 for entry in gcn_lines)
    assert (tmp_path / "wgcn" / CURVES_NAME).stat().st_size > 0


def test_exact_assignment_never_costs_more_than_the_coupling(tmp_path) -> None:
    first = dict(replace(TINY, model="wgcn", iterations=1, transport="coupling").to_dict())
    coupling = Trainer(TrainConfig.from_dict(first), tmp_path / "a", progress=False).train_iteration()
    first["transport"] = "assignment"
    assignment = Trainer(TrainConfig.from_dict(first), tmp_path / "b", progress=False).train_iteration()
    assert assignment["penalty"] <= coupling["penalty"] + 1e-3
    assert assignment["f_syn"] == coupling["f_syn"]  # the same particles; only the parameter step differs


def test_penalty_weight_sets_the_share_of_the_gradient(tmp_path) -> None:
    """lambda_W is the ratio of the running norms of the penalty's and the MLE's weight gradients;
    the first iteration has no history, so there the two gradients are exactly lambda_W apart."""
    trainer = Trainer(replace(TINY, model="wgcn", lambda_w=0.5, iterations=1), tmp_path / "w", progress=False)
    learner = trainer.learner.energy
    recorded: list[tuple[float, float]] = []
    original = learner.penalty_weight

    def spy(mle_norm: float, penalty_norm: float) -> float:
        recorded.append((mle_norm, penalty_norm))
        return original(mle_norm, penalty_norm)

    learner.penalty_weight = spy
    metrics = trainer.train_iteration()
    ((mle_norm, penalty_norm),) = recorded
    assert metrics["penalty_weight"] == pytest.approx(0.5 * mle_norm / penalty_norm, rel=1e-6)
    assert learner.penalty_norms == (mle_norm, penalty_norm)
    assert learner.penalty_weight(3 * mle_norm, penalty_norm) == pytest.approx(0.5 * 1.1 * mle_norm / penalty_norm)


def test_gradient_penalty_option(tmp_path) -> None:
    plain = _run(TINY, tmp_path / "gcn")
    penalised = _run(replace(TINY, model="wgcn", penalty="gradient", gp_target=0.0), tmp_path / "gp")
    metrics = [json.loads(line) for line in (tmp_path / "gp" / METRICS_NAME).read_text().splitlines()]
    assert all(entry["penalty"] > 0 for entry in metrics)
    assert not torch.equal(_parameters(plain), _parameters(penalised))


@pytest.mark.parametrize("option,value", [("lambda_w", 1.0), ("hidden_steps", 3), ("latent_dim", 8)])
def test_options_of_other_families_are_refused(tmp_path, option: str, value) -> None:
    with pytest.raises(ValueError, match="applies to"):
        Trainer(replace(TINY, **{option: value}), tmp_path / "run", progress=False)


def test_kernels_and_reference_train_the_same_wgcn(tmp_path) -> None:
    config = replace(TINY, model="wgcn", preset="faces", data="faces:lfw", image_size=16, max_images=4,
                     num_chains=3, iterations=2, device=str(DEVICE))  # fmt: skip
    reference_run = Trainer(config, tmp_path / "torch", progress=False)
    fused_run = Trainer(replace(config, backend="triton"), tmp_path / "triton", progress=False)
    for _ in range(2):
        expected, fused = reference_run.train_iteration(), fused_run.train_iteration()
        for key in ("f_data", "f_syn", "penalty", "transport", "penalty_weight"):
            assert fused[key] == pytest.approx(expected[key], rel=2e-3), key
    fused, expected = _parameters(fused_run), _parameters(reference_run)
    # Adam divides each gradient element by its own running size, so an element whose gradient is
    # near zero turns the backends' float32 rounding into a step difference of up to lr: nearly all
    # parameters agree to float32 tolerance, none by more than lr per iteration.
    within = torch.isclose(fused, expected, rtol=1e-5, atol=1e-6 * float(expected.abs().max()))
    assert float(within.float().mean()) > 0.999
    assert float((fused - expected).abs().max()) <= reference_run.config.lr * 2
