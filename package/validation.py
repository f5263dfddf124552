"""Checks of command-line values made before a command does any work; each error names the flag.

Numbers are parsed by argparse types that refuse NaN, infinities and out-of-range values; paths,
devices and image sizes are checked here against the machine (does the folder exist, can it be
written, is the device present), so a bad value costs nothing and no earlier work is lost.
The module imports torch only to check a device.
"""

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path

from genconv.bindings.choices import MAX_IMAGE_SIZE
from genconv.bindings.errors import ConfigError

MIN_IMAGE_SIZE = 1  # the network's own check names the smallest size it can read
MAX_COUNT = 10**9  # chains, samples, images, iterations: more is a typo, not a plan


def integer(low: int | None = None, high: int | None = None, what: str = "an integer") -> Callable[[str], int]:
    """An argparse type: an integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value

    parse.__name__ = "int"
    return parse


def number(positive: bool = False, non_negative: bool = False, below: float | None = None) -> Callable[[str], float]:
    """An argparse type: a finite float, > 0 or >= 0 if asked, < ``below`` if given."""
    if positive:
        what = "a finite number > 0"
    elif non_negative:
        what = "a finite number >= 0"
    else:
        what = "a finite number"
    if below is not None:
        what += f" and < {below:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
        bad = not math.isfinite(value) or (positive and value <= 0) or (non_negative and value < 0)
        if bad or (below is not None and value >= below):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = "float"
    return parse


def _creatable_folder(flag: str, folder: Path) -> None:
    """ConfigError unless ``folder`` is a writable directory or can be created."""
    probe = folder
    while not probe.exists():
        if probe.is_symlink():
            raise ConfigError(f"{flag} {str(folder)!r}: {str(probe)!r} is a broken link")
        parent = probe.parent
        if parent == probe:
            break
        probe = parent
    if not probe.is_dir():
        raise ConfigError(f"{flag} {str(folder)!r}: {str(probe)!r} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {str(folder)!r}: cannot write in {str(probe)!r} (permission denied)")


def _not_empty(flag: str, path: str | Path) -> Path:
    if not str(path).strip():
        raise ConfigError(f"{flag} is empty; give a path")
    return Path(path)


def output_folder(flag: str, path: str | Path) -> Path:
    """An output folder: a writable directory, or one that can be created."""
    path = _not_empty(flag, path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {str(path)!r} is a file; {flag} names a folder")
    _creatable_folder(flag, path)
    return path


def output_file(flag: str, path: str | Path, suffixes: tuple[str, ...] = ()) -> Path:
    """An output file: not a folder, with one of ``suffixes`` (if given), in a writable or creatable folder."""
    path = _not_empty(flag, path)
    if path.is_dir():
        raise ConfigError(f"{flag} {str(path)!r} is a folder; {flag} names a file")
    if suffixes and path.suffix.lower() not in suffixes:
        raise ConfigError(f"{flag} must be a {' or '.join(suffixes)} file, got {str(path)!r}")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{flag} {str(path)!r}: cannot overwrite it (permission denied)")
    _creatable_folder(flag, path.parent)
    return path


def input_file(flag: str, path: str | Path) -> Path:
    """An input file that exists and can be read."""
    path = _not_empty(flag, path)
    if path.is_dir():
        return path  # the reader names what the folder holds
    if path.exists() and not os.access(path, os.R_OK):
        raise ConfigError(f"{flag} {str(path)!r}: cannot read it (permission denied)")
    return path


def device(flag: str, name: str) -> str:
    """'auto' or a device torch knows and this machine has: cpu, cuda, cuda:N (N below the device count)."""
    if name == "auto":
        return name
    import torch

    try:
        parsed = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{flag} must be auto, cpu, cuda or cuda:N, got {name!r}") from None
    if parsed.type == "cpu":
        return name
    if parsed.type != "cuda":
        raise ConfigError(f"{flag} must be auto, cpu, cuda or cuda:N, got {name!r} (genconv runs on cpu and cuda)")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ConfigError(f"{flag} {name!r}: no CUDA device is available here; use --device cpu or auto")
    if parsed.index is not None and parsed.index >= count:
        raise ConfigError(f"{flag} {name!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return name


def image_size(flag: str, value: int | None) -> int | None:
    """None (the preset's) or a side in [MIN_IMAGE_SIZE, MAX_IMAGE_SIZE] pixels."""
    if value is not None and not MIN_IMAGE_SIZE <= value <= MAX_IMAGE_SIZE:
        raise ConfigError(f"{flag} must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} pixels, got {value}")
    return value
