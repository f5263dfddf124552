"""Smoke test of the benchmark script (``python bench/run.py --quick --check``) and of its check.

The script runs in its own process, as a user runs it, on tiny shapes (32 px, batch 2, 2 steps)
with the numerical check; ``compiled`` is left out because torch.compile's first CPU compile takes
tens of seconds (``python -m bench --quick --check --providers compiled,genconv-torch`` checks it).
"""

import copy
import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPOSITORY = Path(__file__).resolve().parent.parent
PROVIDERS = ["eager", "torchebm", "ebmkit", "genconv-torch", "genconv-triton", "genconv-dropin", "genconv-torchebm",
             "genconv-ebmkit", "genconv-sample"]  # fmt: skip
PCD_PROVIDERS = {"eager", "torchebm", "ebmkit", "genconv-dropin", "genconv-torchebm", "genconv-ebmkit"}
META_KEYS = {"device", "device_type", "python", "torch", "triton", "date", "git_sha", "command"}
RESULT_KEYS = {"timing", "image_steps_per_s", "image_steps_per_s_q10", "image_steps_per_s_q90", "setup_s",
               "peak_memory_bytes", "cost", "floor", "time_over_floor", "fraction_of_matrix_rate",
               "ratio_to_best_baseline"}  # fmt: skip


def _positive(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench")
    environment = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    command = [sys.executable, "bench/run.py", "--quick", "--check", "--providers", ",".join(PROVIDERS),
               "--out", str(out), "--name", "smoke"]  # fmt: skip
    done = subprocess.run(command, cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads((out / "smoke.json").read_text())
    return {"data": data, "stdout": done.stdout, "out": out}


def test_json_has_the_run_and_every_provider(quick_run: dict) -> None:
    data = quick_run["data"]
    assert data["schema"] == "genconv-bench/1" and len(data["runs"]) == 1
    run = data["runs"][0]
    assert META_KEYS <= set(run["meta"])
    assert run["meta"]["torch"] == torch.__version__
    ceilings = run["ceilings"]["float32"]
    assert _positive(ceilings["matrix_flops_per_s"]) and _positive(ceilings["bandwidth_bytes_per_s"])
    labels = {result["label"] for result in run["results"]}
    assert len(labels) == 6  # chain and train, texture and object; the energy workloads pcd and conv
    for label in labels:
        assert sorted(r["provider"] for r in run["results"] if r["label"] == label) == sorted(PROVIDERS)
    pcd = [r for r in run["results"] if r["workload"]["kind"] == "pcd"]
    assert {r["provider"] for r in pcd if r["status"] == "ok"} == PCD_PROVIDERS
    assert all(r["status"] == "skipped" for r in pcd if r["provider"] not in PCD_PROVIDERS)
    assert any("GCN workloads only" in r["note"] for r in pcd if r["provider"] == "genconv-torch")
    conv = [r for r in run["results"] if r["workload"]["kind"] == "conv"]
    assert {r["provider"] for r in conv if r["status"] == "ok"} == PCD_PROVIDERS
    gcn = [r for r in run["results"] if r["workload"]["kind"] in ("chain", "train")]
    assert all(r["status"] == "skipped" for r in gcn if r["provider"] in ("ebmkit", "genconv-ebmkit"))


def test_figures_are_positive_and_finite(quick_run: dict) -> None:
    results = quick_run["data"]["runs"][0]["results"]
    ran = [r for r in results if r["status"] == "ok"]
    assert {r["provider"] for r in ran} >= {"eager", "genconv-torch"}
    for result in ran:
        assert RESULT_KEYS <= set(result), result["provider"]
        for key in ("image_steps_per_s", "time_over_floor", "fraction_of_matrix_rate", "ratio_to_best_baseline"):
            assert _positive(result[key]), (key, result)
        assert _positive(result["timing"]["median_s"]) and _positive(result["floor"]["floor_s"])
        assert result["image_steps_per_s_q10"] <= result["image_steps_per_s"] <= result["image_steps_per_s_q90"]
        assert _positive(result["cost"]["flops"]) and _positive(result["cost"]["bytes"])
    for result in results:
        if result["status"] != "ok":
            assert result["status"] == "skipped" and result["note"]
    if not torch.cuda.is_available():
        assert all(r["status"] == "skipped" for r in results if r["provider"] == "genconv-triton")


def test_providers_agree_with_genconv_torch(quick_run: dict) -> None:
    checks = quick_run["data"]["runs"][0]["checks"]
    assert {c["provider"] for c in checks} >= {"eager"}
    assert {c["workload"]["preset"] for c in checks} == {"texture", "object", "mlp-gmm"}
    assert {c["provider"] for c in checks if c["workload"]["kind"] == "pcd"} == PCD_PROVIDERS - {"eager"}
    for check in checks:
        assert check["passed"], check
        assert check["drift_rel_error"] <= check["tolerance"]
        assert check["given_noise_rel_error"] <= check["given_noise_tolerance"]


def test_table_and_plot(quick_run: dict) -> None:
    assert "img-steps/s" in quick_run["stdout"] and "time/floor" in quick_run["stdout"]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in quick_run["stdout"]
    else:
        assert (quick_run["out"] / "smoke.png").stat().st_size > 0


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("fault", ["no network gradient", "double noise"])
def test_check_catches_a_wrong_chain(monkeypatch: pytest.MonkeyPatch, fault: str, dtype: str) -> None:
    """A provider that drops df/dx, or draws noise of the wrong scale, fails the check; a correct one
    (eager PyTorch) passes it, in bfloat16 too, where its errors are measured against the float32
    reference and allowed twice the bfloat16 reference's own."""
    monkeypatch.syspath_prepend(str(REPOSITORY))
    from bench import check, providers

    eager = providers.PROVIDERS["eager"]

    def build(setup):
        if fault == "no network gradient":
            model = copy.deepcopy(setup.model)
            for parameter in model.parameters():
                parameter.data.zero_()
            return eager.build(dataclasses.replace(setup, model=model))
        sampler = eager.build(setup)
        chain_with_noise = sampler.chain_with_noise
        sampler.chain = lambda x: chain_with_noise(x, 2.0 * torch.randn((setup.steps, *x.shape), dtype=x.dtype))
        return sampler

    monkeypatch.setitem(providers.PROVIDERS, "wrong", providers.Provider("wrong", fault, build))
    setup = check.check_setup("texture", 24, 1, dtype, torch.device("cpu"), steps=3)
    correct, result = check.check_providers(["eager", "wrong"], setup)
    assert correct.passed and not result.passed
    assert result.against == ("float32 reference" if dtype == "bfloat16" else "reference")
    if fault == "no network gradient":
        assert result.drift_error > 0.1
    else:
        assert result.noise_scale_ratio > 1.5


def test_tf32_chains_are_checked_against_an_ieee_float32_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where float32 multiplies in TF32 (CUDA), the reference runs again in IEEE float32 (cuDNN's, cuBLAS's
    and genconv's switches off for it, restored after) and the errors are measured against that; a
    dropped gradient still fails. On the CPU both references are the same run, so the tolerance stays."""
    monkeypatch.syspath_prepend(str(REPOSITORY))
    from bench import check, providers

    seen: list[tuple[bool, bool, str | None]] = []
    runs = check._runs

    def recording(name, setup, noise):
        seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32,
                     os.environ.get("GENCONV_TF32")))  # fmt: skip
        return runs(name, setup, noise)

    eager = providers.PROVIDERS["eager"]

    def wrong(setup):
        model = copy.deepcopy(setup.model)
        for parameter in model.parameters():
            parameter.data.zero_()
        return eager.build(dataclasses.replace(setup, model=model))

    monkeypatch.setitem(providers.PROVIDERS, "wrong", providers.Provider("wrong", "no network gradient", wrong))
    monkeypatch.setattr(check, "tf32_in_use", lambda device: True)
    monkeypatch.setattr(check, "_runs", recording)
    monkeypatch.setenv("GENCONV_TF32", "1")
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    setup = check.check_setup("texture", 24, 1, "float32", torch.device("cpu"), steps=3)
    correct, result = check.check_providers(["eager", "wrong"], setup)
    assert seen[1] == (False, False, "0") and seen[0][0] and seen[0][2] == "1"  # the reference, then its IEEE twin
    assert torch.backends.cudnn.allow_tf32 and os.environ["GENCONV_TF32"] == "1"
    assert correct.against == result.against == "IEEE float32 reference"
    assert correct.tolerance == check.TOLERANCES[("cpu", "float32")]
    assert correct.passed and not result.passed and result.drift_error > 0.1


def test_kernel_timing_script_runs_its_checks_in_the_interpreter(tmp_path: Path) -> None:
    """bench/kernels_vs_cudnn.py --smoke: every pass of a texture step on tiny shapes, each fused
    kernel's result against PyTorch's (the timing itself needs a GPU)."""
    environment = {**os.environ, "TRITON_INTERPRET": "1"}
    command = [sys.executable, "bench/kernels_vs_cudnn.py", "--smoke", "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (path,) = tmp_path.glob("kernels-*.json")
    rows = json.loads(path.read_text())["rows"]
    assert len(rows) == 8
    checked = [row for row in rows if "max_relative_deviation" in row]
    assert len(checked) == 5 and all(row["max_relative_deviation"] < 1e-4 for row in checked)


def test_conv_workload_without_ebmkit_is_skipped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without ebmkit the conv workload's cells are skipped with the reason; the run goes on."""
    monkeypatch.syspath_prepend(str(REPOSITORY))
    monkeypatch.setitem(sys.modules, "ebm", None)
    monkeypatch.setitem(sys.modules, "ebm.nets", None)
    from bench import run

    code = run.main(["--quick", "--kinds", "conv", "--providers", "eager,genconv-dropin", "--out", str(tmp_path),
                     "--name", "no-ebmkit", "--no-plot"])  # fmt: skip
    assert code == 0
    results = json.loads((tmp_path / "no-ebmkit.json").read_text())["runs"][0]["results"]
    assert [r["status"] for r in results] == ["skipped", "skipped"]
    assert all("ebmkit is not importable" in r["note"] for r in results)


def test_revision_ab_runs_both_versions_of_the_cpu_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """bench.cpu_revision_ab against the checked-out revision: the same code gives the same chain."""
    monkeypatch.syspath_prepend(str(REPOSITORY))
    from bench import cpu_revision_ab

    out = tmp_path / "ab.json"
    assert cpu_revision_ab.main(["--revision", "HEAD", "--cases", "object@20:2", "--steps", "2", "--rounds", "2",
                                 "--threads", "1", "--out", str(out)]) == 0  # fmt: skip
    (result,) = json.loads(out.read_text())["results"]
    assert (result["preset"], result["size"], result["batch"]) == ("object", 20, 2)
    assert result["max_relative_difference"] == 0.0 and _positive(result["speedup"])
    assert all(len(result["seconds"][name]) == 2 for name in ("then", "now"))


def test_topdown_forms_agree_on_every_listed_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    """bench.cpu_topdown_forms: the sub-pixel and the transposed form give the same pass on each layer."""
    monkeypatch.syspath_prepend(str(REPOSITORY))
    from bench import cpu_topdown_forms

    for layer in cpu_topdown_forms.LAYERS:
        sub_pixel, transposed = cpu_topdown_forms.forms(2, layer)
        out = sub_pixel()
        assert out.shape[-1] == layer[-1] and out.shape[1] == layer[2]
        torch.testing.assert_close(out, transposed(), rtol=1e-4, atol=1e-4)
