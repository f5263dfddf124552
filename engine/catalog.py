"""The bundled datasets by name: what ``--data`` accepts, importable without torch (help texts)."""

TEXTURES = ("brick", "grass", "gravel")
PHOTOS = (
    "astronaut",
    "camera",
    "cat",
    "chelsea",
    "coffee",
    "coins",
    "colorwheel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "retina",
    "rocket",
    "text",
)
FACE_SETS = ("lfw",)
PATCH_SOURCES = ("astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "retina", "rocket")
DEFAULT_PATCH_COUNT = 256
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def dataset_names() -> list[str]:
    """Every bundled dataset spec, for help texts and error messages."""
    return (
        [f"texture:{name}" for name in TEXTURES]
        + [f"image:{name}" for name in PHOTOS]
        + [f"faces:{name}" for name in FACE_SETS]
        + ["patches:photos"]
        + [f"patches:{name}" for name in PATCH_SOURCES]
    )
