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
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        record = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt or not a torch file ({first_line})") from None
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
