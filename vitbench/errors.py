"""Errors a user can cause and fix: the CLI prints them as one line and exits non-zero."""

from __future__ import annotations


class VitbenchError(Exception):
    """A problem with the user's input or environment, reported without a traceback.

    ``exit_code`` follows the shell convention the CLI uses: 2 for bad usage or input
    (unknown model, impossible size, missing data), 1 for a failure while running.
    """

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UnknownModelError(VitbenchError):
    """A model name that neither timm, our aliases nor the from-scratch registry knows."""


class CheckpointError(VitbenchError):
    """A checkpoint that is missing, corrupted, untrusted or does not fit the model."""


class DataError(VitbenchError):
    """A dataset that is missing or malformed; the message names the files expected."""
