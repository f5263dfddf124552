"""The cost model's calibration (``bench/calibrate.py``): the fitted terms by hand, the fit recovering
constants it generated, and the inputs' JSON round trip."""

import json
import os
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from bench import calibrate, sass
from bench.calibrate import BOUNDS
from bench.cost_model import ASSUMED, Constants, PassInput, clock_hz, predict

REPOSITORY = Path(__file__).resolve().parent.parent


def hand_pass(name: str = "hand", copies: dict[int, float] | None = None, epilogue: dict[int, int] | None = None,
              scatter: bool = False, grid: int = 132, k: int = 10, warps: int = 4) -> PassInput:  # fmt: skip
    """One CTA per SM (``grid`` 132), 4 warps, 3 stages: 100 loop instructions, 40 int/ALU, 65536 MMA
    FLOPs and 8192 shared bytes a warp per K-step, 200 epilogue instructions."""
    mix = sass.LoopMix(instructions=100, mma_flops_per_warp=65536, shared_bytes_per_warp=8192,
                       epilogue_instructions=200, found=True, loop_copy_widths=copies or {16: 4},
                       epilogue_access_widths=epilogue or {16: 4})  # fmt: skip
    mix.counts.update(mma=4, int_alu=40)
    return PassInput(name, "tf32", 64, 64, 32, warps, 3, 128, 49152, grid, k, 1e6, 1e3, mix, scatter=scatter)


def test_the_calibrated_terms_by_hand() -> None:
    """4 narrow copies of 4 B and 2 of 8 B a K-step, with copy4 10 and copy8 3 cycles: L1 term 4 warps x
    (4 x 10 + 2 x 3) = 184 cycles; with issue CPI 3 the issue term is 1 x 100 x 3 = 300 (4 warps on 4
    schedulers), the bound above shared (4 x 8192 / 128 = 256). 8 narrow epilogue accesses of 2 B at 50
    cycles (a scattered pass: 400) add 1 x 8 x 50 = 400 cycles (1600) to the CTA's epilogue (1 x 200 x
    1.5 = 300). One CTA per SM, 10 K-steps, latency 600: 10 x 300 + 300 + 400 + 600 = 4300 cycles
    (5500 scattered), plus a launch of 2 µs."""
    c = replace(ASSUMED, issue_cpi=3.0, copy4_cycles=10.0, copy8_cycles=3.0, narrow_epilogue_cycles=50.0,
                scatter_epilogue_cycles=200.0, launch_us=2.0)  # fmt: skip
    p = hand_pass(copies={4: 4, 8: 2, 16: 1}, epilogue={2: 8, 16: 2})
    r = predict(p, c=c)
    assert r.step_cycles["l1"] == 184 and r.step_cycles["issue"] == 300 and r.bound == "issue"
    assert r.predicted_us == pytest.approx(4300 / clock_hz("H200") * 1e6 + 2.0)
    scattered = predict(replace(p, scatter=True), c=c)
    assert scattered.predicted_us == pytest.approx(5500 / clock_hz("H200") * 1e6 + 2.0)
    assert "l1" not in predict(p).step_cycles  # the assumed constants: no L1 term, the old predictions


def synthetic(c: Constants) -> tuple[dict, dict]:
    """Inputs of passes that exercise every term, and their 'measured' times: the model's with ``c``."""
    passes = [
        hand_pass("narrow", copies={4: 8, 16: 2}),
        hand_pass("coalesced", copies={8: 8, 16: 2}, grid=528, k=40),
        hand_pass("scatter", epilogue={1: 32, 2: 32}, scatter=True, grid=1056, k=4),
        hand_pass("dense epilogue", epilogue={1: 64, 2: 64}, grid=264, k=20, warps=8),
        hand_pass("tiny", grid=16, k=2),
        hand_pass("long", grid=2640, k=100),
        hand_pass("latency", grid=64, k=60),
    ]
    inputs, measured = {}, {}
    for i in range(0, len(passes), 2):
        workload = ("hand", i, "float32")
        inputs[workload] = passes[i : i + 2]
        measured[workload] = [(p.name, predict(p, c=c).predicted_us) for p in passes[i : i + 2]]
    return inputs, measured


# Constants that generate the synthetic passes' times (each within its bound).
TRUTH = Constants(shared_bytes_per_clock=60.0, latency=900.0, issue_cpi=2.0, epilogue_cpi=2.5, copy4_cycles=20.0,
                  copy8_cycles=0.5, narrow_epilogue_cycles=1.0, scatter_epilogue_cycles=200.0,
                  launch_us=1.5)  # fmt: skip


def test_the_fit_recovers_what_generated_the_times() -> None:
    """Times the model made with known constants are fitted to within 10 % per pass and a loss a
    hundredth of the assumed constants' (the search is not exact: the loss is a sum of maxima, flat
    in a constant whose term binds nowhere; and the constants need not be identifiable, several may
    give the same times)."""
    assert all(lo <= getattr(TRUTH, name) <= hi for name, (lo, hi) in BOUNDS.items())
    inputs, measured = synthetic(TRUTH)
    fitted = calibrate.fit(inputs, measured)
    rows = calibrate.pairs(inputs, measured, fitted, "H200")
    assert max(abs(m / p - 1) for _, _, m, p in rows) < 0.10
    assumed = calibrate.pairs(inputs, measured, ASSUMED, "H200")
    assert calibrate.loss(rows) < calibrate.loss(assumed) / 100


def test_inputs_survive_json() -> None:
    """A launch's input as ``bench.cost_model`` writes it (width keys become strings) reads back equal."""
    p = hand_pass(copies={4: 2.5, 16: 1}, epilogue={1: 3}, scatter=True)
    assert calibrate.pass_input(json.loads(json.dumps(asdict(p)))) == p


def test_mismatched_passes_are_refused() -> None:
    """Measured passes that are not the inputs' (another kernel revision) stop the fit with one message."""
    inputs, measured = synthetic(ASSUMED)
    workload = next(iter(measured))
    measured[workload] = [("renamed", us) for _, us in measured[workload]]
    with pytest.raises(ValueError, match="not the passes the inputs describe"):
        calibrate.pairs(inputs, measured, ASSUMED, "H200")


def test_the_committed_calibration_matches_the_model() -> None:
    """The committed H200 calibration, re-predicted from its committed inputs with today's model, gives
    the times it recorded (a change to the model's form makes it stale: re-fit with ``bench.calibrate``),
    and its held-out error per pass is well under the assumed constants' error."""
    from bench.cost_model import load_constants

    results = REPOSITORY / "bench" / "results"
    path = results / "calibration-nvidia-h200-2026-12-04.json"
    report = json.loads(path.read_text())
    inputs = calibrate.load_inputs(results.parent.parent / report["inputs"])
    measured = calibrate.load_measured(results.parent.parent / report["measured"])
    rows = calibrate.pairs(
        inputs, measured, load_constants(results / "calibration-nvidia-h200-2026-12-04.json"), "H200"
    )
    assert [p for _, _, _, p in rows] == pytest.approx([r["fitted_us"] for r in report["passes"]], rel=1e-9)
    errors = report["errors"]
    assert errors["assumed"]["median_factor"] > 2 * errors["held_out_workload"]["median_factor"]


@pytest.mark.compile
def test_the_tile_search_prices_every_candidate(tmp_path: Path) -> None:
    """Texture at 64 px, 16 chains, float32 (compiled in a process without the interpreter): every
    pass prices the heuristic's tile among its candidates, split-K passes with their sum launch (as
    recorded from the launchers), and the best is the cheapest of them; candidates run with their own
    split-K, which differs from the heuristic tile's for some."""
    out = tmp_path / "tiles.json"
    environment = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    command = [sys.executable, "-m", "bench.tile_search", "--workloads", "texture@64:16", "--dtypes", "float32",
               "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=600)
    assert out.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    (result,) = json.loads(out.read_text())["results"]
    assert len(result["passes"]) == 6
    for p in result["passes"]:
        assert p["candidates"][p["heuristic"]] == pytest.approx(p["heuristic_us"], rel=1e-12)
        assert p["best_us"] == min(p["candidates"].values()) <= p["heuristic_us"] * (1 + 1e-12)
    assert sum(len(p["candidates"]) for p in result["passes"]) > 6  # some pass had an alternative
    assert any(p["splits"][p["heuristic"]] > 1 for p in result["passes"])  # the 5x5 layer's swapped tile
    assert any(len(set(p["splits"].values())) > 1 for p in result["passes"])


def test_bootstrap_refits_bound_a_comparison() -> None:
    """Refits on resampled workloads: a revision compared with itself is 1 under every refit; one whose
    passes each run twice the K-steps is slower under every refit (its whole interval above 1)."""
    from bench import calibration_spread

    inputs, measured = synthetic(TRUTH)
    fits = calibration_spread.refits(inputs, measured, 3)
    full = calibrate.fit(inputs, measured)
    same = calibration_spread.compare(inputs, inputs, full, fits)
    assert all(r["q10"] == r["q90"] == r["ratio"] == 1.0 for r in same)
    longer = {w: [replace(p, k_steps=2 * p.k_steps) for p in passes] for w, passes in inputs.items()}
    slower = calibration_spread.compare(inputs, longer, full, fits)
    assert all(r["q10"] > 1.0 and r["after_us"] > r["before_us"] for r in slower)
