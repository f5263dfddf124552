"""Names a user chooses among, importable without torch (the command line's help reads them)."""

BACKEND_NAMES: tuple[str, ...] = ("torch", "triton", "auto", "reference")
