"""Checkpoints: one torch.save file, written atomically and checked on load.

Each checkpoint carries ``content_sha256``: a SHA-256 over every tensor's name, dtype, shape and
bytes and every other value, in a fixed order (see ``content_hash``). Loading checks the archive's
own CRC-32 of every entry and then the hash, so flipped bytes anywhere are refused. Checkpoints
written before the hash existed load with the CRC check alone; resuming such a run writes a
checkpoint that has one.
"""

import hashlib
import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from genconv.bindings.errors import CheckpointError

CHECKPOINT_FORMAT = "genconv-checkpoint"
FORMAT_VERSION = 1
HASH_KEY = "content_sha256"
# What a training run's checkpoint must hold, beyond the format fields, per model family.
RUN_KEYS = ("model_kind", "config", "network", "sigma", "model", "iteration", "pixels", "optimizer")
FAMILY_KEYS = {"gcn": ("chains", "rng"), "wgcn": ("chains", "rng"),
               "ggcn": ("generator", "generator_spec", "generator_optimizer")}  # fmt: skip


def _feed(digest: "hashlib._Hash", name: str, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{list(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        for key in sorted(value, key=lambda k: (type(k).__name__, str(k))):
            _feed(digest, f"{name}/{key}", value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"{name}:{type(value).__name__}:{len(value)}".encode())
        for index, item in enumerate(value):
            _feed(digest, f"{name}[{index}]", item)
    else:
        digest.update(f"{name}={json.dumps(value, sort_keys=True, default=repr)}".encode())


def content_hash(record: dict[str, Any]) -> str:
    """SHA-256 (hex) of a checkpoint's content: every entry but the hash, in sorted key order; a tensor
    counts its name, dtype, shape and raw bytes."""
    digest = hashlib.sha256()
    _feed(digest, "", {key: value for key, value in record.items() if key != HASH_KEY})
    return digest.hexdigest()


def atomic_torch_save(payload: Any, path: str | Path) -> Path:
    """torch.save to a temporary file beside ``path``, fsync, then rename over ``path``.

    A crash at any moment leaves either the old file or the new one, never a torn file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:  # name the checkpoint, not the temporary file (disk full, ...)
        raise OSError(error.errno, error.strerror or str(error), str(path)) from error
    except RuntimeError as error:  # torch reports a failed write of its archive as a RuntimeError
        raise OSError(None, f"writing the checkpoint failed ({' '.join(str(error).split())[:200]})",
                      str(path)) from error  # fmt: skip
    finally:
        if temporary.exists():
            temporary.unlink()
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return path


def save_checkpoint(path: str | Path, model_kind: str, payload: dict[str, Any]) -> Path:
    """Write a checkpoint for ``model_kind`` ("gcn", ...) holding ``payload``'s entries."""
    record = {"format": CHECKPOINT_FORMAT, "format_version": FORMAT_VERSION, "model_kind": model_kind}
    record.update(payload)
    record[HASH_KEY] = content_hash(record)
    return atomic_torch_save(record, path)


def load_checkpoint(
    path: str | Path, expected_model: str | None = None, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read and validate a genconv checkpoint.

    Args:
        path: the checkpoint file.
        expected_model: if given, the model kind the checkpoint must hold.
        map_location: where to put its tensors.
    Raises:
        CheckpointError: missing, unreadable, corrupt, not genconv's, or of another model.
    """
    path = Path(path)
    if path.is_dir():
        inside = " (it holds checkpoint.pt: pass that file)" if (path / "checkpoint.pt").is_file() else ""
        raise CheckpointError(f"checkpoint {str(path)!r} is a directory, not a checkpoint file{inside}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        with open(path, "rb") as handle:
            torn = handle.read(4) == b"PK\x03\x04"  # a zip's first entry, its directory lost: cut short
        if torn:
            raise CheckpointError(f"checkpoint {str(path)!r} is damaged (cut short); use another copy")
        raise CheckpointError(f"{str(path)!r} is not a genconv checkpoint (not a file written by genconv train)")
    try:
        record = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{str(path)!r} is not a genconv checkpoint: it holds Python objects beyond tensors and plain data, "
            "which genconv does not load"
        ) from None
    except Exception:  # a damaged archive, whatever torch reports for it
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged (corrupt); use another copy") from None
    if _archive_damaged(path):
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged (an entry fails its CRC check); use another copy")
    if not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a genconv checkpoint")
    if record.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {record.get('format_version')}; "
            f"this genconv reads version {FORMAT_VERSION}"
        )
    if HASH_KEY in record and record[HASH_KEY] != content_hash(record):
        raise CheckpointError(
            f"checkpoint {str(path)!r} is damaged: its content does not match its SHA-256; use another copy"
        )
    if expected_model is not None and record.get("model_kind") != expected_model:
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds a {record.get('model_kind')} model, not {expected_model}"
        )
    return record


def _archive_damaged(path: Path) -> bool:
    """Whether an entry of the zip archive fails its CRC-32 (torch.load does not check them)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is not None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
        return True


def check_run_record(record: dict[str, Any], path: str | Path) -> None:
    """CheckpointError unless ``record`` holds everything a training run's checkpoint holds."""
    kind = record.get("model_kind")
    missing = [key for key in (*RUN_KEYS, *FAMILY_KEYS.get(kind, ())) if key not in record]
    if missing:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is incomplete: it lacks {', '.join(missing)} (not written by genconv train?)"
        )
    shapes = {"config": dict, "network": dict, "model": dict, "pixels": dict, "iteration": int}
    wrong = [key for key, kind_ in shapes.items() if not isinstance(record[key], kind_)]
    if "chains" in record and not (isinstance(record["chains"], torch.Tensor) and record["chains"].dim() == 4):
        wrong.append("chains")
    if wrong:
        raise CheckpointError(f"checkpoint {str(path)!r} is inconsistent: unexpected {', '.join(wrong)}")
