"""Sharded, resumable sampling runs: ``genconv sample --num N --shard-size S --out DIR``.

A run of N chains is cut into shards of S consecutive chains (the last may be shorter). Shard i
holds chains i*S .. i*S + S - 1, and every chain draws its noise at counters fixed by its global
index, so a shard's samples do not depend on how many processes produced the run nor in which
order. Each shard is written atomically (a temporary file, then a rename) as ``shard-IIIIII.pt``
holding the samples and a header (first chain, count, the run's settings); a shard whose file
loads with the right header is finished and skipped on a rerun, anything else is redone. So a run
killed at any moment and started again ends with exactly N samples, none twice.
``manifest.json`` records the settings (seed, steps, init, the checkpoint's SHA-256) and, once
every shard exists, the shard list with each file's SHA-256. Under torchrun, shard i is made by
rank i mod world size.
"""

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from genconv.bindings.errors import ConfigError
from genconv.engine.distributed import SINGLE, ProcessGroup, barrier
from genconv.engine.generate import default_init, load_run, sample_range, sampling_steps
from genconv.engine.images import grid_array, save_png
from genconv.engine.outputs import write_atomic
from genconv.engine.progress import progress_reporter

MANIFEST_NAME = "manifest.json"
SHARD_PATTERN = "shard-{index:06d}.pt"


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ShardPlan:
    """The settings that fix every sample of a sharded run; a rerun must match them."""

    checkpoint_sha256: str
    num: int
    shard_size: int
    steps: int
    seed: int
    delta: float | None
    init: str
    hidden_steps: int

    def __post_init__(self) -> None:
        if self.num < 1:
            raise ConfigError(f"--num must be a positive integer, got {self.num}")
        if self.shard_size < 1:
            raise ConfigError(f"--shard-size must be a positive integer, got {self.shard_size}")

    @property
    def num_shards(self) -> int:
        return -(-self.num // self.shard_size)

    def shard(self, index: int) -> tuple[int, int]:
        """(first chain, count) of shard ``index``."""
        first = index * self.shard_size
        return first, min(self.shard_size, self.num - first)

    def settings(self) -> dict[str, Any]:
        return asdict(self)


def _write_atomic(path: Path, write: Any) -> None:
    write_atomic(path, write)


def shard_is_finished(path: Path, plan: ShardPlan, index: int) -> bool:
    """True when ``path`` holds shard ``index`` of ``plan``, complete."""
    if not path.is_file():
        return False
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a torn or foreign file: the shard is redone
        return False
    first, count = plan.shard(index)
    samples = record.get("samples") if isinstance(record, dict) else None
    return (
        record.get("settings") == plan.settings()
        and record.get("first") == first
        and isinstance(samples, torch.Tensor)
        and samples.shape[0] == count
    )


def _check_manifest(out_dir: Path, plan: ShardPlan) -> None:
    path = out_dir / MANIFEST_NAME
    if not path.exists():
        return
    try:
        stored = json.loads(path.read_text())["settings"]
    except (ValueError, KeyError) as error:
        raise ConfigError(f"{str(path)!r} is not a genconv sampling manifest ({error}); use another --out") from None
    if stored != plan.settings():
        changed = ", ".join(f"{key} {stored.get(key)!r} -> {value!r}" for key, value in plan.settings().items()
                            if stored.get(key) != value)  # fmt: skip
        raise ConfigError(f"--out {str(out_dir)!r} holds a sampling run with other settings ({changed}); "
                          "rerun with its settings to resume it, or choose another --out")  # fmt: skip


def _write_manifest(out_dir: Path, plan: ShardPlan, checkpoint: str, shards: list[dict[str, Any]]) -> None:
    manifest = {"settings": plan.settings(), "checkpoint": checkpoint, "num_shards": plan.num_shards,
                "complete": len(shards) == plan.num_shards, "shards": shards}  # fmt: skip
    text = (json.dumps(manifest, indent=2) + "\n").encode()
    _write_atomic(out_dir / MANIFEST_NAME, lambda handle: handle.write(text))


def sample_shards(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    num: int,
    shard_size: int,
    steps: int | None = None,
    seed: int = 0,
    delta: float | None = None,
    init: str | None = None,
    hidden_steps: int | None = None,
    batch_size: int = 64,
    backend: str = "auto",
    device: torch.device | str = "cpu",
    expected_model: str | None = None,
    png: bool = False,
    progress: bool = False,
    group: ProcessGroup = SINGLE,
) -> dict[str, Any]:
    """Run (or finish) a sharded sampling run into ``out_dir``; returns what it did.

    Args:
        checkpoint: checkpoint written by ``genconv train``.
        out_dir: the run's directory: shards, optional PNG grids and ``manifest.json``.
        num, shard_size: samples in all and per shard; steps, seed, delta, init, hidden_steps as
            in ``sample_checkpoint``; batch_size: chains run at once inside a shard.
        png: also write ``shard-IIIIII.png``, a grid of the shard's samples.
        group: under torchrun, this rank makes shards rank, rank + W, ...
    Returns:
        {"made": shards written by this process, "skipped": finished shards it found,
         "seconds": wall time, "manifest": the manifest (rank 0, at the end)}.
    """
    started = time.perf_counter()
    run = load_run(checkpoint, expected_model, device)
    init = init or default_init(run)
    steps, hidden_steps = sampling_steps(run, init, steps, hidden_steps)
    plan = ShardPlan(file_sha256(checkpoint), num, shard_size, steps, seed, delta, init, hidden_steps)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} must be a directory for a sharded run (--shard-size)")
    _check_manifest(out, plan)
    barrier(group)
    if group.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if not (out / MANIFEST_NAME).exists():
            _write_manifest(out, plan, str(checkpoint), [])
    barrier(group)
    mine = range(group.rank, plan.num_shards, group.world_size)
    made, skipped = 0, 0
    with progress_reporter(sum(plan.shard(i)[1] for i in mine), enabled=progress and group.is_main, unit="sample",
                           description=f"rank {group.rank}" if group.distributed else None) as bar:  # fmt: skip
        for index in mine:
            path = out / SHARD_PATTERN.format(index=index)
            first, count = plan.shard(index)
            if shard_is_finished(path, plan, index):
                skipped += 1
                bar.update(count)
                continue
            x = sample_range(run, first, count, num, steps=steps, seed=seed, delta=delta, init=plan.init,
                             hidden_steps=hidden_steps, batch_size=batch_size, backend=backend, device=device,
                             on_batch=bar.update)  # fmt: skip
            values = run.scale.to_pixel_values(x)
            record = {"samples": values, "first": first, "count": count, "settings": plan.settings()}
            _write_atomic(path, lambda handle, record=record: torch.save(record, handle))
            if png:
                save_png(grid_array(run.scale.to_pixels(x)), path.with_suffix(".png"))
            made += 1
    barrier(group)
    report: dict[str, Any] = {"made": made, "skipped": skipped, "seconds": time.perf_counter() - started}
    if group.is_main:
        shards = []
        for index in range(plan.num_shards):
            path = out / SHARD_PATTERN.format(index=index)
            first, count = plan.shard(index)
            shards.append({"file": path.name, "first": first, "count": count, "sha256": file_sha256(path)})
        _write_manifest(out, plan, str(checkpoint), shards)
        report["manifest"] = json.loads((out / MANIFEST_NAME).read_text())
    return report


def load_shards(out_dir: str | Path) -> torch.Tensor:
    """Every sample of a finished sharded run, in chain order: float32 [N, C, H, W] in pixel units."""
    out = Path(out_dir)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    if not manifest.get("complete"):
        raise ConfigError(f"the sampling run in {str(out)!r} is not complete; rerun the same command to finish it")
    return torch.cat([torch.load(out / shard["file"], weights_only=True)["samples"] for shard in manifest["shards"]])
