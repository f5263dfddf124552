"""The exceptions genconv raises for bad input and failed runs; each message is one clear line."""


class GenconvError(Exception):
    """Base of every error genconv reports to a user (the CLI prints it as one line)."""


class ConfigError(GenconvError, ValueError):
    """An argument or option has a value genconv cannot use; the message names it."""


class InputTypeError(ConfigError, TypeError):
    """An argument has a type genconv cannot use (a NumPy array, an integer or complex tensor); the message
    names it and the type expected."""


class DataError(GenconvError):
    """A dataset cannot be found, read or used."""


class CheckpointError(GenconvError):
    """A checkpoint is missing, corrupt, or belongs to another model."""


class ChainDivergedError(GenconvError):
    """Langevin chains became NaN or infinite; ``step`` is the first step (counted from 1) whose
    states were not finite, when known."""

    def __init__(self, message: str, step: int | None = None) -> None:
        super().__init__(message)
        self.step = step


class OutputBusyError(GenconvError):
    """An output folder is being written by another genconv command (its lock names the holder)."""


class BackendUnavailableError(GenconvError, RuntimeError):
    """An explicitly requested compute backend cannot run here."""
