"""Errors a user can act on. The CLI prints them as `train: error: MESSAGE` and exits with code 2.

TrainError is the trainer's own: the engine's CorpusError (from the shard format's checks, say) is
a separate type that `train` prints the same way, and a pipeline's training stage turns a
TrainError into a CorpusError where it hands back to the engine (train/stages.py)."""


class TrainError(Exception):
    """Bad input or configuration (a bad data row names FILE:LINE): exit code 2."""

    exit_code = 2


class CheckpointError(TrainError):
    """A checkpoint or model file that cannot be used (missing, truncated, corrupt, or holding pickled
    objects); the message names the file."""
