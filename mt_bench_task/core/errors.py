"""The library's two user-facing errors. The CLI turns both into one line and exit code 2."""
from __future__ import annotations


class DataError(ValueError):
    """Bad user input: a file (named with its line), a record or a value."""


class ParameterError(DataError):
    """A bad value or combination of library parameters. The message names them as the library
    does (`judge_repeats`, `mode`); `params` lists those names so that a front end can say them
    its own way (the CLI says `--judge-repeats`, `--mode`)."""

    def __init__(self, message: str, *params: str) -> None:
        super().__init__(message)
        self.params = params
