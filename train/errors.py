"""Errors a user can act on. The CLI prints them as `train: error: MESSAGE` and exits with code 2."""

from corpus.errors import CorpusError


class TrainError(CorpusError):
    """Bad input or configuration (a bad data row names FILE:LINE): exit code 2."""

    exit_code = 2


class CheckpointError(TrainError):
    """A checkpoint or model file that cannot be used (missing, truncated, corrupt, or holding pickled
    objects); the message names the file."""
