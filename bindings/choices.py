"""Names a user chooses among, importable without torch (the command line's help reads them)."""

BACKEND_NAMES: tuple[str, ...] = ("torch", "triton", "auto", "reference")

# The largest side of a training image genconv accepts, in pixels (a larger one is a typo, and would
# be loaded and resized before anything else could refuse it).
MAX_IMAGE_SIZE = 4096
