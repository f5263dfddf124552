"""PNG grids of images (Pillow), written atomically."""

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genconv.engine.outputs import write_atomic

_GAP = 2
_SEPARATOR = 6


def grid_array(images: torch.Tensor, columns: int | None = None, background: int = 255) -> np.ndarray:
    """Tile uint8 [N, C, H, W] images (C = 1 or 3) into one [rows*H, cols*W, C] array."""
    count, channels, height, width = images.shape
    columns = columns or max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / columns))
    canvas = np.full(
        (rows * height + (rows - 1) * _GAP, columns * width + (columns - 1) * _GAP, channels),
        background,
        dtype=np.uint8,
    )
    tiles = images.permute(0, 2, 3, 1).numpy()
    for index in range(count):
        row, column = divmod(index, columns)
        top, left = row * (height + _GAP), column * (width + _GAP)
        canvas[top : top + height, left : left + width] = tiles[index]
    return canvas


def side_by_side(left: np.ndarray, right: np.ndarray, background: int = 255) -> np.ndarray:
    """Two grids next to each other with a separator, top-aligned."""
    channels = max(left.shape[2], right.shape[2])
    left = np.repeat(left, channels // left.shape[2], axis=2)
    right = np.repeat(right, channels // right.shape[2], axis=2)
    height = max(left.shape[0], right.shape[0])
    canvas = np.full((height, left.shape[1] + _SEPARATOR + right.shape[1], channels), background, np.uint8)
    canvas[: left.shape[0], : left.shape[1]] = left
    canvas[: right.shape[0], left.shape[1] + _SEPARATOR :] = right
    return canvas


def save_png(array: np.ndarray, path: str | Path) -> Path:
    """Write an [H, W, C] uint8 array as PNG through a temporary file, so no torn file is left."""
    image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    return write_atomic(path, lambda handle: image.save(handle, format="PNG"))
