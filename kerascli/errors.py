"""Errors a user can act on. The CLI prints them as one message, no traceback."""

from __future__ import annotations


class KerascliError(Exception):
    """A runtime problem caused by input or environment (exit code 1)."""

    exit_code = 1


class ConfigError(KerascliError):
    """A problem with the config or the command line (exit code 2).

    ``where`` is a human-readable location such as ``digits.yaml:12``, and
    ``key`` the dotted key path such as ``model.layers[1].units``.
    """

    exit_code = 2

    def __init__(self, message: str, *, key: str | None = None, where: str | None = None):
        self.message = message
        self.key = key
        self.where = where
        super().__init__(self.format())

    def format(self) -> str:
        prefix = ""
        if self.where:
            prefix += f"{self.where}: "
        if self.key:
            prefix += f"{self.key}: "
        return prefix + self.message


class DataError(KerascliError):
    """Input data that cannot be used (missing file, NaN values, bad shape); exit code 2."""

    exit_code = 2


class CheckpointError(KerascliError):
    """A checkpoint that cannot be read or does not fit the model; exit code 2."""

    exit_code = 2
