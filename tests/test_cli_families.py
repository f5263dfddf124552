"""The command line for wGCN and GGCN: train, resume, sample, eval, compare, and their bad input."""

import json
import math

import numpy as np
import pytest

from genconv.cli import main

GGCN = ["train", "--model", "ggcn", "--preset", "faces", "--image-size", "16", "--max-images", "12", "--holdout",
        "4", "--chains", "4", "--steps", "2", "--hidden-steps", "2", "--latent-dim", "8", "--generator-width", "32",
        "--backend", "torch", "--no-progress", "--image-every", "2", "--checkpoint-every", "2"]  # fmt: skip


@pytest.fixture(scope="module")
def ggcn_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ggcn") / "run"
    assert main([*GGCN, "--iterations", "2", "--out", str(out)]) == 0
    return out


def test_ggcn_run_writes_its_artifacts(ggcn_run) -> None:
    assert {"checkpoint.pt", "metrics.jsonl", "latest.png", "curves.png", "config.json"} <= {
        p.name for p in ggcn_run.iterdir()
    }
    config = json.loads((ggcn_run / "config.json").read_text())
    assert config["model"] == "ggcn" and config["holdout"] == 4 and config["pixel_range"] == "unit"


def test_resume_finds_the_model_family_itself(ggcn_run, tmp_path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(ggcn_run, copy)
    assert main(["train", "--out", str(copy), "--resume", "--iterations", "3", "--no-progress"]) == 0
    lines = (copy / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["iteration"] for line in lines] == [1, 2, 3]


def test_sample_from_the_generator_with_hidden_steps(ggcn_run, tmp_path) -> None:
    common = ["sample", "--checkpoint", str(ggcn_run / "checkpoint.pt"), "--num", "5", "--steps", "1",
              "--hidden-steps", "2", "--seed", "7", "--backend", "torch", "--no-progress"]  # fmt: skip
    assert main([*common, "--out", str(tmp_path / "a.png")]) == 0
    assert main([*common, "--out", str(tmp_path / "b.png"), "--batch-size", "2"]) == 0
    first, second = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert first.shape == (5, 1, 16, 16)
    np.testing.assert_allclose(first, second, rtol=1e-4, atol=1e-2)
    assert 0 <= first.min() and first.max() <= 255  # g emits pixels within [0, 255]; one small step stays near


def test_ggcn_samples_as_it_trained_unless_told(ggcn_run, tmp_path) -> None:
    """Without --steps and --hidden-steps a GGCN checkpoint samples with its run's hidden and refinement steps."""
    common = ["sample", "--checkpoint", str(ggcn_run / "checkpoint.pt"), "--num", "4", "--seed", "3", "--backend",
              "torch", "--no-progress"]  # fmt: skip
    assert main([*common, "--out", str(tmp_path / "default.png")]) == 0
    assert main([*common, "--steps", "2", "--hidden-steps", "2", "--out", str(tmp_path / "run.png")]) == 0
    assert main([*common, "--steps", "0", "--hidden-steps", "0", "--out", str(tmp_path / "none.png")]) == 0
    default, run, bare = (np.load(tmp_path / f"{name}.npy") for name in ("default", "run", "none"))
    np.testing.assert_array_equal(default, run)
    assert np.abs(default - bare).max() > 0


def test_eval_reports_swd_against_held_out_images(ggcn_run, tmp_path, capsys) -> None:
    report_path = tmp_path / "report.json"
    args = ["eval", "--checkpoint", str(ggcn_run / "checkpoint.pt"), "--num", "6", "--steps", "0", "--backend",
            "torch", "--out", str(report_path)]  # fmt: skip
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(report_path.read_text())
    assert printed["reference"] == "held-out" and printed["reference_images"] == 4
    assert printed["swd_x1e3"] > 0 and set(printed["swd_x1e3_per_level"]) == {"16"}
    assert "fid" not in printed


def test_compare_writes_a_report_over_seeds(tmp_path, capsys) -> None:
    out = tmp_path / "compare"
    args = ["compare", "--out", str(out), "--preset", "faces", "--image-size", "16", "--max-images", "10",
            "--holdout", "3", "--iterations", "2", "--chains", "4", "--steps", "1", "--hidden-steps", "1",
            "--latent-dim", "8", "--generator-width", "32", "--backend", "torch", "--no-progress", "--seed", "4",
            "--seeds", "2", "--ais-chains", "4", "--ais-steps", "5"]  # fmt: skip
    assert main(args) == 0
    table = capsys.readouterr().out
    report = json.loads((out / "compare.json").read_text())
    assert set(report["models"]) == {"gcn", "wgcn", "ggcn"} and report["seeds"] == [4, 5]
    assert report["data"] == "faces:lfw" and report["image_size"] == 16
    for kind, row in report["models"].items():
        assert [run["seed"] for run in row["runs"]] == [4, 5], kind
        for run in row["runs"]:
            assert run["iterations"] == 2 and run["swd_x1e3"] > 0 and run["seconds_per_iteration"] > 0, kind
            assert (out / kind / f"seed-{run['seed']}" / "checkpoint.pt").exists()
        swd = [run["swd_x1e3"] for run in row["runs"]]
        assert row["swd_x1e3"]["mean"] == pytest.approx(sum(swd) / 2)
        assert row["swd_x1e3"]["spread"] == pytest.approx(abs(swd[0] - swd[1]) / 2**0.5)
        assert f"| {kind} |" in table
        for run in row["runs"]:
            assert run["dip_ratio"] >= 1.0, kind
            if kind == "ggcn":
                assert run["bits_per_dim"] is None and row["bits_per_dim"]["mean"] is None
            else:
                assert math.isfinite(run["bits_per_dim"]) and run["bits_per_dim_se"] >= 0 and run["ais_seconds"] > 0
    assert "held-out bits/dim" in table and "| n/a |" in table
    assert (out / "compare.md").read_text() == table
    assert (out / "compare.png").stat().st_size > 0
    mtime = (out / "gcn" / "seed-4" / "checkpoint.pt").stat().st_mtime_ns
    assert main(args) == 0  # a finished comparison is read back, not retrained
    assert (out / "gcn" / "seed-4" / "checkpoint.pt").stat().st_mtime_ns == mtime

    def untimed(runs: list[dict]) -> list[dict]:
        return [{key: value for key, value in run.items() if key != "ais_seconds"} for run in runs]

    again = json.loads((out / "compare.json").read_text())["models"]["gcn"]["runs"]
    assert untimed(again) == untimed(report["models"]["gcn"]["runs"])
    assert report["ais"] == {"chains": 4, "steps": 5, "transition": "mala"}


def test_stability_measures_of_compare() -> None:
    from genconv.engine.compare import gap_relative_std, spike_ratio

    steady = [{"f_data": 100.0 + 2 * (i % 2), "f_syn": 100.0} for i in range(100)]
    assert gap_relative_std(steady) == pytest.approx(1.0 / 100.5, rel=1e-9)
    spiky = [{"f_data": 1.0, "f_syn": 1.0} for _ in range(100)]
    spiky[30]["f_syn"] = -25.0
    assert spike_ratio(spiky) == pytest.approx(25.0)
    spiky[30]["f_syn"] = 1.0
    assert spike_ratio(spiky) == pytest.approx(1.0)


def test_dip_ratio_catches_downward_collapses_that_spike_ratio_misses() -> None:
    from genconv.engine.compare import dip_ratio, spike_ratio

    # f(syn) grows from 0 to its working scale, then halves for 25 iterations and recovers.
    curve = [{"f_data": 1.2e5 * min(1.0, i / 40), "f_syn": 1.2e5 * min(1.0, i / 40)} for i in range(300)]
    assert dip_ratio(curve) == pytest.approx(1.0)  # growth is no dip
    for i in range(200, 225):
        curve[i]["f_syn"] = 6.0e4 + 1e3 * (i - 200)
    assert spike_ratio(curve) == pytest.approx(1.0)
    assert dip_ratio(curve) == pytest.approx(2.0)
    curve[260]["f_data"] = 1.2e4  # a one-iteration collapse of f(data) by 10x
    assert dip_ratio(curve) == pytest.approx(10.0)
    assert dip_ratio(curve[:20]) == 1.0


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "--lambda-w", "1", "--out", "X"], "--lambda-w applies to wgcn and ggcn"),
        (["train", "--hidden-steps", "3", "--out", "X"], "--hidden-steps applies to --model ggcn only"),
        (["train", "--model", "vae", "--out", "X"], "model must be one of gcn, wgcn, ggcn"),
        (["train", "--model", "wgcn", "--transport", "sinkhorn", "--out", "X"], "transport must be one of"),
        (["train", "--model", "ggcn", "--generator-norm", "layer", "--out", "X"], "--generator-norm must be one of"),
        (["train", "--pixel-range", "01", "--out", "X"], "--pixel-range must be one of"),
        (["train", "--model", "ggcn", "--energy-scale", "sigma", "--out", "X"], "--energy-scale must be one of"),
        (["train", "--energy-scale", "none", "--out", "X"], "--energy-scale applies to --model ggcn only"),
        (["train", "--model", "ggcn", "--top-init", "data", "--out", "X"], "--top-init must be one of"),
        (["train", "--model", "ggcn", "--refine-clamp", "yes", "--out", "X"], "--refine-clamp must be one of"),
        (["train", "--model", "ggcn", "--hidden-gradient", "scaled", "--out", "X"], "--hidden-gradient must be one"),
        (["train", "--model", "ggcn", "--warmup", "-1", "--out", "X"], "argument --warmup: expected an integer >= 0"),
        (["compare", "--models", "gcn,vae", "--out", "X"], "--models must list"),
        (["compare", "--seeds", "0", "--out", "X"], "argument --seeds: expected a number of runs from 1 to 1000"),
        (["compare", "--ais-steps", "0", "--out", "X"], "argument --ais-steps: expected an integer >= 1"),
        (["compare", "--ais-chains", "1", "--out", "X"], "argument --ais-chains: expected an integer >= 2"),
    ],
)
def test_bad_family_options(argv, message: str, tmp_path, capsys) -> None:
    argv = [str(tmp_path / "out") if arg == "X" else arg for arg in argv]
    try:
        status = main(argv)
    except SystemExit as exit_:  # a malformed option: argparse's usage error, status 2
        status = exit_.code
    assert status in (1, 2)
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1


def test_persistent_chains_exist_only_for_chain_models(ggcn_run, tmp_path, capsys) -> None:
    status = main(["sample", "--checkpoint", str(ggcn_run / "checkpoint.pt"), "--init", "chains", "--out",
                   str(tmp_path / "x.png"), "--no-progress"])  # fmt: skip
    assert status == 1 and "needs a checkpoint with persistent chains" in capsys.readouterr().err
