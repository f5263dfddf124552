"""Measured passes (``bench/measured_passes.py``): a profiler's kernel list matched to the cost model's
passes, on the CPU with a made-up kernel list (the timing itself needs a GPU)."""

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from bench import measured_passes
from bench.cost_model import DTYPES, conv_launches, pass_labels, record_step

REPOSITORY = Path(__file__).resolve().parent.parent


def _predicted(labels: list[tuple[str, bool]]) -> dict[str, Any]:
    names = [name for name, summing in labels if not summing]
    passes = [{"name": name, "tile": "t", "predicted_us": 10.0, "floor_us": 2.0, "roofline_pct": 20.0}
              for name in names]  # fmt: skip
    return {"passes": passes, "step": {"predicted_us": 10.0 * len(names), "floor_us": 2.0 * len(names),
                                       "roofline_pct": 20.0}}  # fmt: skip


def _kernels(labels: list[tuple[str, bool]], steps: int) -> list[dict[str, Any]]:
    """Each step: a foreign kernel, then the conv launches, the i-th taking (i + 1) µs plus 0.5 µs a step."""
    kernels = []
    for step in range(steps):
        kernels.append({"name": "triton_poi_fused_add_0", "us": 3.0})
        for index, (_, summing) in enumerate(labels):
            name = "_conv_transpose_kernel" if summing else "_conv_forward_kernel"
            kernels.append({"name": name, "us": index + 1.0 + 0.5 * step})
    return kernels


SPLIT_LABELS = [("BU1 a", False), ("BU1 a", True), ("BU2 b", False), ("TD2 c", False), ("TD2 c", True)]


@pytest.mark.parametrize("split", [False, True])  # split-K passes: two launches (runs, then their sum) each
def test_kernels_are_matched_to_the_passes_in_launch_order(split: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    workload = ("texture", 64, 64, "float32")
    labels = pass_labels(conv_launches(record_step("texture", 64, 64, DTYPES["float32"])))
    if split:
        labels = SPLIT_LABELS
        monkeypatch.setattr(measured_passes, "pass_labels", lambda launches: SPLIT_LABELS)
    steps = 5
    monkeypatch.setattr(measured_passes, "chain_for", lambda workload, device: (None, None))
    monkeypatch.setattr(measured_passes, "kernel_times", lambda model, x, count: _kernels(labels, steps))
    row = measured_passes.measure(workload, _predicted(labels), steps)
    assert row["names_match"]
    expected: list[float] = []  # per pass, at the median step (2): its launches' times added
    for index, (_, summing) in enumerate(labels):
        time = index + 1.0 + 0.5 * 2
        if summing:
            expected[-1] += time
        else:
            expected.append(time)
    assert len(row["passes"]) == len(expected) == (3 if split else 6)
    assert [p["median_us"] for p in row["passes"]] == pytest.approx(expected)
    assert row["step"]["median_us"] == pytest.approx(sum(expected))
    assert row["step"]["all_kernels_us"] == pytest.approx(sum(expected) + 3.0)
    assert row["passes"][0]["measured_roofline_pct"] == pytest.approx(100.0 * 2.0 / expected[0])


def test_a_kernel_count_that_does_not_fit_the_step_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    labels = pass_labels(conv_launches(record_step("texture", 64, 64, DTYPES["float32"])))
    monkeypatch.setattr(measured_passes, "chain_for", lambda workload, device: (None, None))
    monkeypatch.setattr(measured_passes, "kernel_times", lambda model, x, count: _kernels(labels, 4)[:-1])
    row = measured_passes.measure(("texture", 64, 64, "float32"), _predicted(labels), 4)
    assert "passes" not in row and f"expected {len(labels)} per step" in row["error"]


def test_the_gpu_check_measures_against_a_committed_table_of_these_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU check's default table predicts the kernels as they launch today: for every workload,
    batch and dtype, the same passes, each on the heuristic's tile with its split-K (a table left
    behind by a change of tiles would compare the measurements with other kernels). Recorded as on a
    GPU: the launchers' tiles, not the interpreter's."""
    from bench.tile_search import tile_label

    monkeypatch.setenv("TRITON_INTERPRET", "0")
    script = (REPOSITORY / "bench" / "gpu_check.sh").read_text()
    match = re.search(r"PREDICTED=\$\{PREDICTED:-([^}]+)\}", script)
    assert match is not None, "gpu_check.sh names no default PREDICTED table"
    table = json.loads((REPOSITORY / match.group(1)).read_text())["results"]
    assert {(r["workload"], r["batch"]) for r in table} >= {("texture@64", 1), ("texture@64", 64), ("object@100", 16)}
    for row in table:
        preset, size = row["workload"].split("@")
        launches = conv_launches(record_step(preset, int(size), row["batch"], DTYPES[row["dtype"]]))
        labels = pass_labels(launches)
        primary = [(name, launch) for launch, (name, merged) in zip(launches, labels, strict=True) if not merged]
        assert [p["name"] for p in row["passes"]] == [name for name, _ in primary], row["workload"]
        for p, (_, launch) in zip(row["passes"], primary, strict=True):
            split = launch.kwargs.get("SPLIT", 1)
            tile = tile_label(launch.heuristic) + (f" split {split}" if split > 1 else "")
            assert p["tile"] == tile, (row["workload"], row["batch"], row["dtype"], p["name"])


def test_ab_switches_time_every_pass_again_with_their_variable_set(monkeypatch: pytest.MonkeyPatch) -> None:
    labels = pass_labels(conv_launches(record_step("texture", 64, 64, DTYPES["float32"])))
    seen: list[tuple[str | None, str | None]] = []

    def kernels(model: Any, x: Any, count: int) -> list[dict[str, Any]]:
        layout = (os.environ.get("GENCONV_K_MAJOR"), os.environ.get("GENCONV_PHASE_MAJOR"))
        seen.append(layout)
        slower = {(None, None): 1.0, ("0", None): 3.0, (None, "0"): 2.0}[layout]
        return [{**k, "us": k["us"] * slower} for k in _kernels(labels, count)]

    for name in ("GENCONV_K_MAJOR", "GENCONV_PHASE_MAJOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(measured_passes, "chain_for", lambda workload, device: (None, None))
    monkeypatch.setattr(measured_passes, "kernel_times", kernels)
    switches = ("GENCONV_K_MAJOR=0", "GENCONV_PHASE_MAJOR=0")
    row = measured_passes.measure(("texture", 64, 64, "float32"), _predicted(labels), 3, switches)
    assert seen == [(None, None), ("0", None), (None, "0")]
    assert "GENCONV_K_MAJOR" not in os.environ and "GENCONV_PHASE_MAJOR" not in os.environ
    for entry in [row["step"], *row["passes"]]:
        assert entry["ab_median_us"]["GENCONV_K_MAJOR=0"] == pytest.approx(3.0 * entry["median_us"])
        assert entry["ab_median_us"]["GENCONV_PHASE_MAJOR=0"] == pytest.approx(2.0 * entry["median_us"])
    assert "| µs with GENCONV_K_MAJOR=0 | µs with GENCONV_PHASE_MAJOR=0 |" in measured_passes.table([row])


def test_a_switch_that_changes_the_launches_is_matched_to_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """GENCONV_PATCH_FOLD=0 drops the fold launch (the image layer's pass is one kernel again): the switched
    step is matched to the switched launches, so its passes still line up with the unswitched ones."""
    monkeypatch.delenv("GENCONV_PATCH_FOLD", raising=False)
    workload = ("texture", 64, 64, "float32")

    def kernels(model: Any, x: Any, count: int) -> list[dict[str, Any]]:
        return _kernels(pass_labels(conv_launches(record_step("texture", 64, 64, DTYPES["float32"]))), count)

    labels = pass_labels(conv_launches(record_step(*workload[:3], DTYPES["float32"])))
    assert sum(summing for _, summing in labels) == 1  # the fold, merged into the image layer's pass
    monkeypatch.setattr(measured_passes, "chain_for", lambda workload, device: (None, None))
    monkeypatch.setattr(measured_passes, "kernel_times", kernels)
    row = measured_passes.measure(workload, _predicted(labels), 3, ("GENCONV_PATCH_FOLD=0",))
    assert "ab_errors" not in row
    switched = [entry["ab_median_us"]["GENCONV_PATCH_FOLD=0"] for entry in row["passes"]]
    assert switched[:-1] == pytest.approx([p["median_us"] for p in row["passes"][:-1]])
    assert switched[-1] == pytest.approx(6.0 + 0.5)  # one launch, the sixth, at the median step
    assert row["passes"][-1]["median_us"] == pytest.approx(6.0 + 7.0 + 2 * 0.5)  # GEMM and fold added


def test_switched_runs_can_follow_every_workload(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU check measures every workload first and times the switches after (``time_switches``): the same
    columns as timing them together, none on a workload whose kernels did not fit."""
    labels = pass_labels(conv_launches(record_step("texture", 64, 64, DTYPES["float32"])))

    def kernels(model: Any, x: Any, count: int) -> list[dict[str, Any]]:
        slower = 2.0 if os.environ.get("GENCONV_K_MAJOR") == "0" else 1.0
        return [{**k, "us": k["us"] * slower} for k in _kernels(labels, count)]

    monkeypatch.delenv("GENCONV_K_MAJOR", raising=False)
    monkeypatch.setattr(measured_passes, "chain_for", lambda workload, device: (None, None))
    monkeypatch.setattr(measured_passes, "kernel_times", kernels)
    workload, switches = ("texture", 64, 64, "float32"), ("GENCONV_K_MAJOR=0",)
    together = measured_passes.measure(workload, _predicted(labels), 3, switches)
    after = measured_passes.measure(workload, _predicted(labels), 3)
    assert "ab_median_us" not in after["step"]
    measured_passes.time_switches(after, workload, 3, switches)
    assert after == together
    failed = {"workload": "texture@64", "error": "no kernels"}
    measured_passes.time_switches(failed, workload, 3, switches)
    assert failed == {"workload": "texture@64", "error": "no kernels"}
