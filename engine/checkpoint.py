"""Checkpoints: one torch.save file, written atomically and checked on load."""

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from genconv.bindings.errors import CheckpointError

CHECKPOINT_FORMAT = "genconv-checkpoint"
FORMAT_VERSION = 1


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
    if not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a genconv checkpoint")
    if record.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {record.get('format_version')}; "
            f"this genconv reads version {FORMAT_VERSION}"
        )
    if expected_model is not None and record.get("model_kind") != expected_model:
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds a {record.get('model_kind')} model, not {expected_model}"
        )
    return record
