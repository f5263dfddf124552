"""Dataset loading: bundled sets, folders, arrays, and clear errors for bad input."""

import numpy as np
import pytest
import torch
from PIL import Image

from genconv.bindings.errors import ConfigError, DataError
from genconv.engine.data import PixelScale, load_images


@pytest.mark.parametrize("spec,channels", [("texture:brick", 1), ("texture:gravel", 1), ("image:astronaut", 3)])
def test_bundled_images_are_resized_into_pixel_range(spec: str, channels: int) -> None:
    images = load_images(spec, 37)
    assert images.shape == (1, channels, 37, 37)
    assert images.dtype == torch.float32
    assert 0 <= float(images.min()) and float(images.max()) <= 255
    assert float(images.std()) > 10


def test_faces_are_the_lfw_faces_upsampled() -> None:
    faces = load_images("faces:lfw", 40)
    assert faces.shape == (100, 1, 40, 40)
    assert load_images("faces:lfw", 25, max_images=7).shape == (7, 1, 25, 25)


def test_folder_of_mixed_images_is_cropped_resized_and_made_rgb(tmp_path) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(rng.integers(0, 256, (40, 20), dtype=np.uint8)).save(tmp_path / "b.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    images = load_images(f"folder:{tmp_path}", 16)
    assert images.shape == (2, 3, 16, 16)
    assert load_images(str(tmp_path), 16).shape == (2, 3, 16, 16)


def test_grey_folder_stays_single_channel(tmp_path) -> None:
    Image.fromarray(np.full((10, 10), 7, dtype=np.uint8)).save(tmp_path / "g.png")
    images = load_images(f"folder:{tmp_path}", 8)
    assert images.shape == (1, 1, 8, 8) and float(images.max()) == 7.0


@pytest.mark.parametrize(
    "array,expected",
    [
        (np.random.default_rng(1).integers(0, 256, (3, 12, 12), dtype=np.uint8), (3, 1, 12, 12)),
        (np.random.default_rng(2).random((2, 12, 12, 3)), (2, 3, 12, 12)),
        (np.random.default_rng(3).random((2, 3, 12, 12)) * 255, (2, 3, 12, 12)),
        (np.random.default_rng(4).random((2, 1, 12, 12)), (2, 1, 12, 12)),
    ],
    ids=["NHW-uint8", "NHWC-unit", "NCHW-255", "N1HW"],
)
def test_arrays_in_every_layout(tmp_path, array: np.ndarray, expected: tuple) -> None:
    path = tmp_path / "data.npy"
    np.save(path, array)
    images = load_images(f"array:{path}", 12)
    assert images.shape == expected
    assert 0 <= float(images.min()) and float(images.max()) <= 255
    assert float(images.max()) > 200


def test_npz_takes_its_first_array(tmp_path) -> None:
    path = tmp_path / "data.npz"
    np.savez(path, images=np.zeros((4, 9, 9), dtype=np.uint8))
    assert load_images(str(path), 9).shape == (4, 1, 9, 9)


def test_pixel_scales_round_trip() -> None:
    images = load_images("image:coffee", 20)
    centred = PixelScale.for_images("centred", images)
    x = centred.to_model(images)
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-3)
    assert torch.equal(centred.to_pixels(x), images.round().to(torch.uint8))
    unit = PixelScale.for_images("unit", images)
    y = unit.to_model(images)
    assert float(y.min()) >= -1.0 and float(y.max()) <= 1.0 and float(y.max()) > 0.9
    torch.testing.assert_close(unit.to_pixel_values(y), images)
    assert PixelScale.from_dict(unit.to_dict()) == unit
    with pytest.raises(ConfigError, match="pixel range must be one of"):
        PixelScale.for_images("zero-one", images)


def test_natural_image_patches_are_fixed_crops() -> None:
    patches = load_images("patches:photos", 32, max_images=21)
    assert patches.shape == (21, 3, 32, 32)
    assert torch.equal(patches, load_images("patches:photos", 32, max_images=21))
    assert float(patches.std(dim=(1, 2, 3)).min()) > 0
    assert load_images("patches:coffee", 16).shape == (256, 3, 16, 16)
    with pytest.raises(DataError, match="unknown patch source"):
        load_images("patches:mars", 16)


@pytest.mark.parametrize(
    "make_spec,message",
    [
        (lambda tmp: "texture:marble", "unknown texture 'marble'"),
        (lambda tmp: "image:nothing", "unknown image"),
        (lambda tmp: "mnist", "unknown dataset 'mnist'"),
        (lambda tmp: f"folder:{tmp / 'missing'}", "does not exist"),
        (lambda tmp: f"folder:{tmp}", "holds no image files"),
        (lambda tmp: f"array:{tmp / 'missing.npy'}", "does not exist"),
    ],
)
def test_bad_dataset_specs(tmp_path, make_spec, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_images(make_spec(tmp_path), 16)


def test_unreadable_image_and_bad_arrays(tmp_path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="cannot read image"):
        load_images(f"folder:{tmp_path}", 16)
    np.save(tmp_path / "negative.npy", -np.ones((2, 8, 8)))
    with pytest.raises(DataError, match=r"expected \[0, 1\] or \[0, 255\]"):
        load_images(str(tmp_path / "negative.npy"), 8)
    np.save(tmp_path / "flat.npy", np.zeros((8, 8)))
    with pytest.raises(DataError, match=r"expected \[N, H, W\]"):
        load_images(str(tmp_path / "flat.npy"), 8)
    (tmp_path / "junk.npy").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"junk.npy.* is not a NumPy .npy or .npz file"):
        load_images(str(tmp_path / "junk.npy"), 8)
    with pytest.raises(ConfigError, match="image size"):
        load_images("texture:brick", 0)
