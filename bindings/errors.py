"""The exceptions genconv raises for bad input and failed runs; each message is one clear line."""


class GenconvError(Exception):
    """Base of every error genconv reports to a user (the CLI prints it as one line)."""


class ConfigError(GenconvError, ValueError):
    """An argument or option has a value genconv cannot use; the message names it."""


class DataError(GenconvError):
    """A dataset cannot be found, read or used."""


class CheckpointError(GenconvError):
    """A checkpoint is missing, corrupt, or belongs to another model."""


class ChainDivergedError(GenconvError):
    """Langevin chains became NaN or infinite."""


class BackendUnavailableError(GenconvError, RuntimeError):
    """An explicitly requested compute backend cannot run here."""
