"""Training images from bundled data, image folders and arrays; no downloads.

A dataset spec is ``kind:name``:
- ``texture:brick|grass|gravel`` — scikit-image's bundled textures (resized whole);
- ``image:astronaut|coffee|chelsea|...`` — scikit-image's bundled photographs (centre-cropped);
- ``faces:lfw`` — the 100 faces of scikit-image's LFW subset (25 x 25 grey, resized);
- ``patches:photos`` (or ``patches:NAME``) — natural image patches: square crops at the photos'
  native resolution, at fixed random positions (``max_images`` of them, 256 by default);
- ``folder:PATH`` — every image file in a folder (centre-cropped, resized, RGB unless all grey);
- ``array:PATH`` — a .npy or .npz array of shape [N, H, W], [N, H, W, C] or [N, C, H, W].
A bare directory path or a path ending in .npy/.npz is also accepted. Images come back as float32
[N, C, H, W] in [0, 255]; ``PixelScale`` maps them to the space a model works in.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from genconv.bindings.choices import MAX_IMAGE_SIZE
from genconv.bindings.errors import ConfigError, DataError
from genconv.engine.catalog import (
    DEFAULT_PATCH_COUNT,
    FACE_SETS,
    IMAGE_SUFFIXES,
    PATCH_SOURCES,
    PHOTOS,
    TEXTURES,
    dataset_names,
)

_LFW_FACE_COUNT = 100


def _resize(array: np.ndarray, size: int, crop: bool) -> np.ndarray:
    """Resize an [H, W] or [H, W, C] uint8 array to size x size (centre-crop to square first if asked)."""
    image = Image.fromarray(array)
    if crop:
        side = min(image.width, image.height)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(image)


def _to_chw(arrays: list[np.ndarray]) -> torch.Tensor:
    """Stack [H, W] or [H, W, C] uint8 images into float32 [N, C, H, W]."""
    stacked = np.stack([a if a.ndim == 3 else a[:, :, None] for a in arrays])
    return torch.from_numpy(stacked.astype(np.float32)).permute(0, 3, 1, 2).contiguous()


def _skimage_data(name: str) -> np.ndarray:
    import skimage.data

    return getattr(skimage.data, name)()


def _load_texture(name: str, size: int) -> torch.Tensor:
    if name not in TEXTURES:
        raise DataError(f"unknown texture {name!r}; bundled textures: {', '.join(TEXTURES)}")
    return _to_chw([_resize(_skimage_data(name), size, crop=False)])


def _load_photo(name: str, size: int) -> torch.Tensor:
    if name not in PHOTOS:
        raise DataError(f"unknown image {name!r}; bundled images: {', '.join(PHOTOS)}")
    return _to_chw([_resize(_skimage_data(name), size, crop=True)])


def _load_faces(name: str, size: int) -> torch.Tensor:
    if name not in FACE_SETS:
        raise DataError(f"unknown face set {name!r}; bundled: {', '.join(FACE_SETS)}")
    faces = _skimage_data("lfw_subset")[:_LFW_FACE_COUNT]
    as_uint8 = [np.clip(np.rint(face * 255.0), 0, 255).astype(np.uint8) for face in faces]
    return _to_chw([_resize(face, size, crop=False) for face in as_uint8])


def _load_patches(name: str, size: int, count: int | None) -> torch.Tensor:
    sources = PATCH_SOURCES if name == "photos" else (name,)
    if not set(sources) <= set(PATCH_SOURCES):
        raise DataError(f"unknown patch source {name!r}; use photos or one of {', '.join(PATCH_SOURCES)}")
    photos = [_skimage_data(source) for source in sources]
    smallest = min(min(photo.shape[:2]) for photo in photos)
    if size > smallest:
        raise DataError(f"patches of {size} px do not fit in the {smallest} px photos; use a smaller image size")
    generator = np.random.default_rng(0)
    crops = []
    for index in range(count or DEFAULT_PATCH_COUNT):
        photo = photos[index % len(photos)]
        top = int(generator.integers(0, photo.shape[0] - size + 1))
        left = int(generator.integers(0, photo.shape[1] - size + 1))
        crops.append(photo[top : top + size, left : left + size])
    return _to_chw(crops)


def _load_folder(path: str, size: int) -> torch.Tensor:
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"image folder {path!r} does not exist or is not a directory")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"image folder {path!r} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    arrays = []
    for file in files:
        try:
            with Image.open(file) as opened:
                arrays.append(_image_to_uint8(opened, file))
        except (UnidentifiedImageError, OSError, SyntaxError) as error:
            raise DataError(f"cannot read image {str(file)!r}: {' '.join(str(error).split())}") from None
    if any(array.ndim == 3 for array in arrays):  # any colour image: all RGB, grey ones repeated
        arrays = [array if array.ndim == 3 else np.repeat(array[:, :, None], 3, axis=2) for array in arrays]
    return _to_chw([_resize(array, size, crop=True) for array in arrays])


_GREY_MODES = ("1", "L", "LA", "La")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def _image_to_uint8(image: Image.Image, file: Path) -> np.ndarray:
    """An opened image as uint8 [H, W] (grey) or [H, W, 3]: 16-bit and 32-bit images are scaled from
    their full range to [0, 255] (not clipped), grey images stay grey, alpha is dropped."""
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode == "I":
        values = np.asarray(image, dtype=np.float64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise DataError(f"image {str(file)!r} has 32-bit values outside [0, 65535]; save it as 8 or 16 bits")
        return np.rint(values / 257.0).astype(np.uint8)  # 65535 -> 255, as 16-bit PNG viewers show it
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all() or (values.size and (values.min() < 0 or values.max() > 255)):
            raise DataError(f"image {str(file)!r} has float values outside [0, 1] or [0, 255]")
        scale = 255.0 if values.size and values.max() <= 1.0 else 1.0
        return np.rint(values * scale).astype(np.uint8)
    if mode in _GREY_MODES:
        return np.asarray(image.convert("L"))
    if mode in ("P", "PA"):
        colours = np.asarray(image.convert("RGB"))
        grey = bool((colours[:, :, 0] == colours[:, :, 1]).all() and (colours[:, :, 1] == colours[:, :, 2]).all())
        return colours[:, :, 0].copy() if grey else colours
    return np.asarray(image.convert("RGB"))


def _array_to_uint8(array: np.ndarray, path: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.complexfloating):
        raise DataError(f"array {path!r} holds complex numbers; genconv reads real pixel values (uint8 or floats)")
    if not np.issubdtype(array.dtype, np.number):
        raise DataError(f"array {path!r} has dtype {array.dtype}; expected uint8 or floats")
    values = array.astype(np.float64)
    if not np.isfinite(values).all():
        raise DataError(f"array {path!r} holds NaN or infinite values")
    low, high = values.min(), values.max()
    if low < 0 or high > 255:
        raise DataError(f"array {path!r} has values in [{low:g}, {high:g}]; expected [0, 1] or [0, 255]")
    scale = 255.0 if high <= 1.0 else 1.0
    return np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)


def _load_array(path: str, size: int) -> torch.Tensor:
    file = Path(path)
    if not file.is_file():
        raise DataError(f"array file {path!r} does not exist")
    with open(file, "rb") as handle:
        magic = handle.read(6)
    if magic != b"\x93NUMPY" and not magic.startswith(b"PK"):
        raise DataError(f"array file {path!r} is not a NumPy .npy or .npz file (numpy.save writes one)")
    try:
        loaded = np.load(file, allow_pickle=False)
    except (OSError, EOFError, ValueError) as error:
        if "allow_pickle" in str(error):
            raise DataError(f"array file {path!r} holds Python objects; genconv reads arrays of numbers") from None
        raise DataError(f"array file {path!r} is damaged (cut short or corrupt)") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            if not loaded.files:
                raise DataError(f"array file {path!r} is empty")
            array = loaded[loaded.files[0]]
    else:
        array = loaded
    if array.ndim == 4 and array.shape[1] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array.transpose(0, 2, 3, 1)
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if not (array.ndim == 3 or (array.ndim == 4 and array.shape[-1] == 3)) or array.shape[0] == 0:
        raise DataError(
            f"array {path!r} has shape {list(array.shape)}; expected [N, H, W], [N, H, W, C] or [N, C, H, W] "
            "with C = 1 or 3 and N >= 1"
        )
    images = _array_to_uint8(array, path)
    return _to_chw([_resize(image, size, crop=True) for image in images])


_LOADERS: dict[str, Callable[..., torch.Tensor]] = {
    "texture": _load_texture,
    "image": _load_photo,
    "faces": _load_faces,
    "folder": _load_folder,
    "array": _load_array,
    "patches": _load_patches,
}


def parse_dataset_spec(spec: str) -> tuple[str, str]:
    """Split a dataset spec into (kind, name); bare folders and .npy/.npz paths are recognised."""
    kind, sep, name = spec.partition(":")
    if sep and kind in _LOADERS and name:
        return kind, name
    if spec.lower().endswith((".npy", ".npz")):
        return "array", spec
    if Path(spec).is_dir():
        return "folder", spec
    raise DataError(f"unknown dataset {spec!r}; use one of {', '.join(dataset_names())}, folder:PATH or array:PATH.npy")


def load_images(spec: str, image_size: int, max_images: int | None = None) -> torch.Tensor:
    """Load, crop and resize a dataset into float32 [N, C, image_size, image_size] in [0, 255].

    Args:
        spec: a dataset spec (see the module docstring).
        image_size: side of the square images, in pixels.
        max_images: keep at most this many (the first ones), None for all.
    Raises:
        DataError: unknown, unreadable or empty dataset; ConfigError: bad size arguments.

    Example:
        >>> load_images("texture:brick", 32).shape
        torch.Size([1, 1, 32, 32])
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 1 <= image_size <= MAX_IMAGE_SIZE:
        raise ConfigError(f"image size must be a whole number of pixels from 1 to {MAX_IMAGE_SIZE}, got {image_size!r}")
    if max_images is not None and max_images < 1:
        raise ConfigError(f"the number of images must be >= 1, got {max_images}")
    kind, name = parse_dataset_spec(spec)
    if kind == "patches":
        return _load_patches(name, image_size, max_images)
    images = _LOADERS[kind](name, image_size)
    return images if max_images is None else images[:max_images]


PIXEL_RANGES: tuple[str, ...] = ("centred", "unit")


@dataclass(frozen=True)
class PixelScale:
    """The map between pixels in [0, 255] and model space: x = (pixels - mean) / scale.

    "centred" (the GCN paper): the per-channel mean of the training images subtracted, scale 1.
    "unit" (CoopNets and GGCN): [0, 255] mapped onto [-1, 1].
    """

    mean: tuple[float, ...]
    scale: float

    @classmethod
    def for_images(cls, kind: str, images: torch.Tensor) -> "PixelScale":
        """The scale of ``kind`` ("centred" or "unit") for [N, C, H, W] training images."""
        if kind == "centred":
            return cls(tuple(float(v) for v in images.mean(dim=(0, 2, 3))), 1.0)
        if kind == "unit":
            return cls((127.5,) * images.shape[1], 127.5)
        raise ConfigError(f"pixel range must be one of {', '.join(PIXEL_RANGES)}; got {kind!r}")

    def _mean(self, like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(self.mean, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)

    def to_model(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 255] -> model space."""
        return (images - self._mean(images)) / self.scale

    def to_pixel_values(self, x: torch.Tensor) -> torch.Tensor:
        """Model space -> float pixel values (not clipped), on the CPU."""
        x = x.detach().float().cpu()
        return x * self.scale + self._mean(x)

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Model space -> uint8 images in [0, 255] (clipped, rounded)."""
        return self.to_pixel_values(x).clamp(0, 255).round().to(torch.uint8)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "scale": self.scale}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PixelScale":
        return cls(tuple(float(v) for v in data["mean"]), float(data["scale"]))
