"""The headroom ladder (``bench/headroom.py``): the cost model's hand-checked pass priced with its costs
taken away one at a time, each rung checked by hand."""

from dataclasses import asdict

import pytest

from bench import sass
from bench.cost_model import PassInput, clock_hz, predict
from bench.headroom import RUNGS, ladder_us, main, step_ladder


def hand_pass() -> PassInput:
    """``test_cost_model``'s TF32 pass (64x64x32, 4 warps, 3 stages, 4 CTAs an SM, 10 K-steps; per CTA
    and K-step issue 100, ALU 80, tensor 128, shared 256 cycles, 200 epilogue instructions) on a grid of
    1000 (the busiest SM still runs 8 CTAs, 2 rounds of 4), with 10 MB compulsory and 40 MB scratch."""
    mix = sass.LoopMix(instructions=100, mma_flops_per_warp=65536, shared_bytes_per_warp=8192,
                       epilogue_instructions=200, found=True)  # fmt: skip
    mix.counts.update(mma=4, int_alu=40, async_copy=6, uniform=30, wait=6, other=14)
    mix.loop_copy_widths = {16: 6}
    return PassInput("hand", "tf32", 64, 64, 32, 4, 3, 128, 49152, 1000, 10, 1.0e9, 10e6, mix, extra_bytes=40e6)


def test_every_rung_by_hand() -> None:
    """Cycles at 1.83 GHz; memory 50 MB (with scratch) = 10.417 µs, 10 MB = 2.083 µs at 4.8 TB/s.
    1. 4 CTAs: issue 400, ALU 320, tensor 512, shared 1024 -> 2 rounds x (10 x 1024 + 4 x 200 x 1.5 + 600)
       = 24080 cycles;
    2. no loop instructions: still shared-bound, 24080;
    3. no epilogue: 2 x (10240 + 600) = 21680;
    4. no latency: 2 x 10240 = 20480;
    5. free shared memory: 2 x 10 x 512 = 10240 cycles = 5.597 µs, below the 10.417 µs of memory;
    6. whole waves: executed 1000 x 10 x 4 x 65536 = 2.621e9 FLOPs / (2048 x 132) = 9697 cycles = 5.30 µs,
       memory 10.417 µs;
    7. no scratch traffic: max(5.30, 2.083) = 5.30 µs."""
    hz = clock_hz("H200")
    rungs = ladder_us(hand_pass())
    assert list(rungs) == list(RUNGS)
    assert rungs["predicted"] == pytest.approx(predict(hand_pass()).predicted_us) == pytest.approx(24080 / hz * 1e6)
    assert rungs["no loop instructions"] == pytest.approx(24080 / hz * 1e6)
    assert rungs["no epilogue"] == pytest.approx(21680 / hz * 1e6)
    assert rungs["no latency"] == pytest.approx(20480 / hz * 1e6)
    assert rungs["free shared memory"] == pytest.approx(50e6 / 4.8e12 * 1e6)
    executed_cycles = 1000 * 10 * 4 * 65536 / (2048 * 132)
    assert rungs["whole waves"] == pytest.approx(50e6 / 4.8e12 * 1e6)
    assert rungs["no scratch traffic"] == pytest.approx(executed_cycles / hz * 1e6)


def test_an_integer_bound_loop_loses_its_instructions_first() -> None:
    """With 400 integer instructions a K-step is ALU-bound (4 CTAs x 2 x 400 = 3200 cycles); without its loop
    instructions it falls to the shared-memory bound: 2 x (10 x 1024 + 1200 + 600) = 24080 cycles."""
    p = hand_pass()
    p.mix.counts["int_alu"] = 400
    rungs = ladder_us(p)
    assert rungs["predicted"] == pytest.approx(2 * (10 * 3200 + 1800) / clock_hz("H200") * 1e6)
    assert rungs["no loop instructions"] == pytest.approx(24080 / clock_hz("H200") * 1e6)


def test_a_step_ladder_telescopes_to_its_floor() -> None:
    """The µs each rung removes and the padding add up to predicted - floor, and % roofline only grows."""
    p = hand_pass()
    floor = predict(p).floor_us
    row = {"workload": "hand@1", "batch": 1, "dtype": "float32", "gpu": "H200",
           "step": {"floor_us": 2 * floor}, "launches": [asdict(p), asdict(p)]}  # fmt: skip
    ladder = step_ladder(row)
    assert ladder["us"]["predicted"] == pytest.approx(2 * predict(p).predicted_us)
    assert sum(ladder["removed_us"].values()) == pytest.approx(ladder["us"]["predicted"] - 2 * floor)
    percent = [ladder["roofline_pct"][rung] for rung in RUNGS]
    assert percent == sorted(percent)


def test_a_table_without_launch_inputs_gets_one_line(tmp_path, capsys) -> None:
    table = tmp_path / "old.json"
    table.write_text('{"results": [{"workload": "texture@64", "launches": []}]}')
    with pytest.raises(SystemExit):
        main([str(table), "--out", str(tmp_path / "h.json")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "table:" in err and "no launch inputs" in err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing.json")])
    assert "expected a JSON file" in capsys.readouterr().err
