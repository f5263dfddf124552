"""Bad input and misuse: each gives one clear line (or a correct result), and no earlier run's file changes."""

import errno
import json
import os
import socket
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import genconv
from genconv.cli import main
from genconv.engine import checkpoint as checkpoint_module
from genconv.engine.checkpoint import HASH_KEY, load_checkpoint, save_checkpoint
from genconv.engine.data import load_images
from genconv.engine.outputs import FOLDER_LOCK_NAME, output_lock

SIZE = 24
TRAIN = ["train", "--data", "texture:brick", "--image-size", str(SIZE), "--steps", "2", "--backend", "torch",
         "--no-progress"]  # fmt: skip


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_line_error(status: int, err: str, *needles: str) -> None:
    assert status not in (0, None), err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


def snapshot(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 2-iteration run at seed 1 that the tests read (and must leave unchanged)."""
    out = tmp_path_factory.mktemp("misuse") / "run"
    assert main([*TRAIN, "--iterations", "2", "--seed", "1", "--checkpoint-every", "1", "--out", str(out)]) == 0
    return out


# --- values checked before any work, naming the flag ---


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--image-size", "0"], "argument --image-size"),
        (["--image-size", "100000"], "argument --image-size"),
        (["--delta", "nan"], "argument --delta"),
        (["--delta", "inf"], "argument --delta"),
        (["--lr", "-1"], "argument --lr"),
        (["--seed", "-3"], "argument --seed"),
        (["--chains", "0"], "argument --chains"),
        (["--beta1", "1"], "argument --beta1"),
        (["--device", "gpu0"], "--device must be auto, cpu, cuda or cuda:N, got 'gpu0'"),
        (["--device", "cuda:7"], "--device 'cuda:7'"),
    ],
)
def test_bad_values_are_refused_before_any_work(extra, needle, tmp_path, capsys) -> None:
    out = tmp_path / "new"
    status, _, err = run_cli([*TRAIN, "--iterations", "1", "--out", str(out), *extra], capsys)
    one_line_error(status, err, needle)
    assert not out.exists()  # nothing created, no data loaded


def test_output_paths_of_the_wrong_kind_are_refused_first(run, tmp_path, capsys) -> None:
    before = snapshot(run)
    checkpoint = str(run / "checkpoint.pt")
    cases = [
        ([*TRAIN, "--out", str(run / "config.json")], "--out"),
        (["sample", "--checkpoint", checkpoint, "--out", str(run)], "--out"),
        (["sample", "--checkpoint", checkpoint, "--out", str(tmp_path / "a.png"), "--raw", str(run)], "--raw"),
        (["eval", "--checkpoint", checkpoint, "--num", "2", "--out", str(run)], "--out"),
        (["compare", "--out", str(run / "metrics.jsonl"), "--iterations", "1"], "--out"),
    ]
    for argv, flag in cases:
        status, _, err = run_cli(argv, capsys)
        one_line_error(status, err, flag)
    assert snapshot(run) == before


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write into read-only folders")
def test_a_read_only_folder_is_refused_before_work(tmp_path, capsys) -> None:
    locked = tmp_path / "read-only"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        status, _, err = run_cli([*TRAIN, "--iterations", "1", "--out", str(locked / "run")], capsys)
        one_line_error(status, err, "--out", "permission denied")
        status, _, err = run_cli(["sample", "--checkpoint", "x.pt", "--out", str(locked / "s.png")], capsys)
        one_line_error(status, err, "--out", "permission denied")
    finally:
        locked.chmod(0o755)


def test_a_folder_holding_another_commands_files_is_refused(run, tmp_path, capsys) -> None:
    before = snapshot(run)
    checkpoint = str(run / "checkpoint.pt")
    argv = ["sample", "--checkpoint", checkpoint, "--out", str(run), "--shard-size", "2", "--num", "2"]
    status, _, err = run_cli(argv, capsys)
    one_line_error(status, err, "holds files that are not a sharded sampling run's")
    status, _, err = run_cli(["compare", "--out", str(run), "--iterations", "1"], capsys)
    one_line_error(status, err, "holds files that are not a comparison's")
    assert snapshot(run) == before
    shards = tmp_path / "shards"
    assert main([*argv[:4], str(shards), *argv[5:], "--steps", "1", "--no-progress"]) == 0
    status, _, err = run_cli([*TRAIN, "--iterations", "1", "--out", str(shards)], capsys)
    one_line_error(status, err, "holds files that are not a training run's (manifest.json")


def test_running_out_of_memory_is_one_line(tmp_path, capsys) -> None:
    status, _, err = run_cli([*TRAIN, "--iterations", "1", "--chains", "1000000000", "--out", str(tmp_path / "m")],
                             capsys)  # fmt: skip
    one_line_error(status, err, "out of memory; try a smaller --chains")


def test_an_os_error_at_the_boundary_is_one_line_naming_the_path(tmp_path, capsys, monkeypatch) -> None:
    def disk_full(payload, handle):
        handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", disk_full)
    out = tmp_path / "full"
    status, _, err = run_cli([*TRAIN, "--iterations", "1", "--out", str(out)], capsys)
    one_line_error(status, err, "checkpoint.pt", "No space left on device")
    assert not any(p.name.startswith(".checkpoint.pt.tmp") for p in out.iterdir())


# --- locks ---


def test_a_live_holder_keeps_its_folder_and_a_stale_lock_is_taken_over(tmp_path, capsys) -> None:
    out = tmp_path / "locked"
    out.mkdir()
    holder = {"pid": os.getppid(), "host": socket.gethostname(), "command": "genconv train --out locked"}
    (out / FOLDER_LOCK_NAME).write_text(json.dumps(holder))
    status, _, err = run_cli([*TRAIN, "--iterations", "1", "--out", str(out)], capsys)
    one_line_error(status, err, f"pid {os.getppid()}", "genconv train --out locked")
    assert sorted(p.name for p in out.iterdir()) == [FOLDER_LOCK_NAME]  # nothing written
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (out / FOLDER_LOCK_NAME).write_text(json.dumps({**holder, "pid": gone.pid}))
    status, _, err = run_cli([*TRAIN, "--iterations", "1", "--out", str(out)], capsys)
    assert status == 0, err
    assert not (out / FOLDER_LOCK_NAME).exists() and (out / "checkpoint.pt").is_file()


def test_a_lock_is_released_when_its_block_fails(tmp_path) -> None:
    with pytest.raises(RuntimeError), output_lock(tmp_path / "out", folder=True):
        raise RuntimeError("failed")
    assert not (tmp_path / "out").exists()  # created for the command, empty: removed
    with output_lock(tmp_path / "s.png", folder=False) as path:
        assert path.name == ".s.png.genconv.lock" and json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.exists()


# --- checkpoints ---


def test_flipped_bytes_or_an_edited_tensor_are_refused(run, tmp_path, capsys) -> None:
    whole = bytearray((run / "checkpoint.pt").read_bytes())
    with zipfile.ZipFile(run / "checkpoint.pt") as archive:
        entry = max(archive.infolist(), key=lambda info: info.file_size)  # a weight tensor's storage
        start = entry.header_offset + 30 + len(entry.filename.encode()) + len(entry.extra)
    whole[start + entry.file_size // 2] ^= 0xFF
    flipped = tmp_path / "flipped.pt"
    flipped.write_bytes(bytes(whole))
    status, _, err = run_cli(["sample", "--checkpoint", str(flipped), "--out", str(tmp_path / "s.png")], capsys)
    one_line_error(status, err, "is damaged")
    assert not (tmp_path / "s.png").exists()

    record = torch.load(run / "checkpoint.pt", weights_only=True)
    assert len(record[HASH_KEY]) == 64
    record["model"][next(iter(record["model"]))] += 1.0  # edited, hash kept
    edited = tmp_path / "edited.pt"
    torch.save(record, edited)
    with pytest.raises(genconv.CheckpointError, match="does not match its SHA-256"):
        load_checkpoint(edited)
    del record[HASH_KEY]  # a checkpoint from before the hash: loads
    torch.save(record, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt")["iteration"] == 2


def test_a_hand_made_checkpoint_missing_keys_is_one_line(tmp_path, capsys) -> None:
    path = tmp_path / "hand.pt"
    save_checkpoint(path, "gcn", {"config": {}, "model": {}})
    status, _, err = run_cli(["sample", "--checkpoint", str(path), "--out", str(tmp_path / "s.png")], capsys)
    one_line_error(status, err, "is incomplete: it lacks network, sigma")
    bad = tmp_path / "bad-weights.pt"
    good = load_checkpoint(tmp_path / "hand.pt")
    good.update(network={"nonsense": 1}, sigma=1.0, iteration=1, pixels={}, optimizer={},
                chains=torch.zeros(1, 1, 4, 4), rng={})  # fmt: skip
    save_checkpoint(bad, "gcn", {k: v for k, v in good.items() if k not in ("format", "format_version", HASH_KEY)})
    status, _, err = run_cli(["sample", "--checkpoint", str(bad), "--out", str(tmp_path / "s.png")], capsys)
    one_line_error(status, err, "is inconsistent")


# --- sampling that diverges ---


def test_sampling_with_a_huge_step_size_fails_instead_of_writing_nan(run, tmp_path, capsys) -> None:
    argv = ["sample", "--checkpoint", str(run / "checkpoint.pt"), "--out", str(tmp_path / "s.png"), "--steps", "3",
            "--delta", "1e30", "--no-progress"]  # fmt: skip
    status, _, err = run_cli(argv, capsys)
    one_line_error(status, err, "samples became NaN/Inf at step 1 of 3", "try a smaller --delta")
    assert not (tmp_path / "s.png").exists() and not (tmp_path / "s.npy").exists()


# --- resume ---


def test_resume_honours_every_flag_typed_and_names_it(run, capsys) -> None:
    before = snapshot(run)
    for extra, needle in [
        (["--seed", "0"], "--seed 0 differs from the resumed run's 1"),  # 0 is the default, still typed
        (["--steps", "7"], "--steps 7 differs from the resumed run's 2"),
        (["--chains", "5"], "--chains 5 differs from the resumed run's 3"),
        (["--no-persistent"], "--no-persistent differs"),
    ]:
        status, _, err = run_cli([*TRAIN, "--out", str(run), "--resume", *extra], capsys)
        one_line_error(status, err, needle)
    status, out, err = run_cli([*TRAIN, "--out", str(run), "--resume", "--chains", "3", "--seed", "1"], capsys)
    assert status == 0 and "nothing to train" in out, err
    status, out, err = run_cli(["train", "--out", str(run), "--resume", "--iterations", "1"], capsys)
    assert status == 0 and "nothing to train: the run already has 2 iterations" in out
    assert snapshot(run) == before  # config.json, metrics, checkpoint: untouched


def test_divergence_and_interrupts_say_whether_a_checkpoint_exists(tmp_path, capsys, monkeypatch) -> None:
    status, _, err = run_cli([*TRAIN, "--iterations", "2", "--delta", "1e30", "--out", str(tmp_path / "d")], capsys)
    one_line_error(status, err, "iteration 1", "no checkpoint was written before it")

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    from genconv.engine.trainer import Trainer

    monkeypatch.setattr(Trainer, "fit", interrupted)
    status, _, err = run_cli([*TRAIN, "--iterations", "2", "--out", str(tmp_path / "i")], capsys)
    assert status == 130 and "before the first checkpoint" in err and "is kept" not in err


# --- the Python API ---


def _model():
    return genconv.GenerativeConvNet(genconv.network_for("texture", 1, SIZE), sigma=1.0)


@pytest.mark.parametrize(
    "x,error,needle",
    [
        (torch.zeros(2, 1, SIZE, SIZE, dtype=torch.int64), genconv.InputTypeError, "torch.int64"),
        (torch.zeros(2, 1, SIZE, SIZE, dtype=torch.complex64), genconv.InputTypeError, "torch.complex64"),
        (np.zeros((2, 1, SIZE, SIZE), dtype=np.float32), genconv.InputTypeError, "torch.from_numpy"),
    ],
)
def test_langevin_refuses_what_it_cannot_step(x, error, needle) -> None:
    with pytest.raises(error, match=needle) as raised:
        genconv.langevin(_model(), x, steps=2, delta=0.3, seed=0)
    assert isinstance(raised.value, TypeError) and isinstance(raised.value, genconv.GenconvError)
    with pytest.raises(error):
        genconv.sample_langevin(lambda s: s.pow(2).flatten(1).sum(1), x, steps=2, update=genconv.SGLDStep(0.1, 0.1))


def test_langevin_refuses_a_reversed_clamp_and_copies_at_zero_steps() -> None:
    x = torch.zeros(2, 1, SIZE, SIZE)
    with pytest.raises(genconv.ConfigError, match="clamp must be"):
        genconv.langevin(_model(), x, steps=2, delta=0.3, seed=0, clamp=(1.0, -1.0))
    same = genconv.langevin(_model(), x, steps=0, delta=0.3, seed=0).x
    assert torch.equal(same, x) and same.data_ptr() != x.data_ptr()
    energy = lambda s: s.pow(2).flatten(1).sum(1)  # noqa: E731
    copied = genconv.sample_langevin(energy, x, steps=0, update=genconv.SGLDStep(0.1, 0.1), seed=0).x
    assert torch.equal(copied, x) and copied.data_ptr() != x.data_ptr()


def test_chains_that_turn_nan_raise_naming_the_step_unless_allowed() -> None:
    def energy(s: torch.Tensor) -> torch.Tensor:
        return s.pow(2).flatten(1).sum(1)

    def gradient(s: torch.Tensor) -> torch.Tensor:  # NaN from the third call on
        gradient.calls += 1
        return 2 * s if gradient.calls < 3 else torch.full_like(s, float("nan"))

    gradient.calls = 0
    x = torch.zeros(3, 4)
    with pytest.raises(genconv.ChainDivergedError, match="at step 3 of 5") as raised:
        genconv.sample_langevin(energy, x, steps=5, update=genconv.SGLDStep(0.1, 0.1), seed=0, gradient=gradient)
    assert raised.value.step == 3
    gradient.calls = 0
    out = genconv.sample_langevin(energy, x, steps=5, update=genconv.SGLDStep(0.1, 0.1), seed=0, gradient=gradient,
                                  check_finite=False)  # fmt: skip
    assert torch.isnan(out.x).all()
    with pytest.raises(genconv.ChainDivergedError, match="at step 1 of 2"):
        genconv.langevin(_model(), torch.zeros(2, 1, SIZE, SIZE), steps=2, delta=1e30, seed=0)


def test_replay_buffer_refuses_bad_slots_and_arguments() -> None:
    buffer = genconv.ReplayBuffer(4, (2,), seed=0)
    states, slots = buffer.sample(3)
    for bad_slots, error in [
        ([0, 1, 2], genconv.InputTypeError),
        (slots.float(), genconv.InputTypeError),
        (torch.tensor([0, 1, 9]), genconv.ConfigError),
        (torch.tensor([-1, 0, 1]), genconv.ConfigError),
    ]:
        with pytest.raises(error):
            buffer.update(bad_slots, states)
    with pytest.raises(genconv.InputTypeError):
        buffer.update(slots, states.numpy())
    for kwargs in [{"shape": 5}, {"shape": (2,), "reinit_prob": "half"}, {"shape": (2,), "dtype": torch.int32},
                   {"shape": (2,), "device": "gpu0"}]:  # fmt: skip
        with pytest.raises(genconv.ConfigError):
            genconv.ReplayBuffer(4, **kwargs)


# --- images ---


def test_sixteen_bit_images_are_scaled_and_grey_stays_grey(tmp_path) -> None:
    ramp = (np.arange(32 * 32).reshape(32, 32) * 64).astype(np.uint16)  # 0 .. 65472
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    Image.fromarray(np.full((32, 32), 100, np.uint8)).convert("LA").save(tmp_path / "alpha.png")
    images = load_images(f"folder:{tmp_path}", 32)
    assert images.shape == (2, 1, 32, 32)  # both grey: one channel
    deep = images[1, 0].numpy()
    np.testing.assert_allclose(deep, np.rint(ramp / 257.0), atol=1.0)  # scaled, not clipped
    assert (deep >= 255).mean() < 0.01
    assert float(images[0].max()) == 100.0


def test_complex_arrays_are_refused(tmp_path) -> None:
    np.save(tmp_path / "c.npy", np.ones((2, 8, 8), dtype=np.complex64))
    with pytest.raises(genconv.DataError, match="complex"):
        load_images(str(tmp_path / "c.npy"), 8)
