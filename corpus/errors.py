"""Errors a user can act on. The CLI prints them as one line and exits with their code."""


class CorpusError(Exception):
    """Bad input or configuration: printed as `corpus: error: MESSAGE`, exit code 2."""

    exit_code = 2


class StageFailed(CorpusError):
    """A stage's task failed while running; the partial output is kept so a rerun resumes."""

    exit_code = 1
