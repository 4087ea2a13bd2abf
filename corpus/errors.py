"""Errors a user can act on. The CLI prints them as one line and exits with their code."""


class CorpusError(Exception):
    """Bad input or configuration: printed as `corpus: error: MESSAGE`, exit code 2."""

    exit_code = 2


class StageFailed(CorpusError):
    """A stage's task failed while running; the partial output is kept so a rerun resumes."""

    exit_code = 1


# The optional extras of pyproject.toml and the modules that only they install.
EXTRAS = {
    "train": ("torch", "trl", "peft", "datasets", "tensorboard", "gguf"),
    "ray": ("ray",),
}


def missing_extra(error: ModuleNotFoundError) -> str | None:
    """The one-line hint for a module that an optional extra installs, or None for any other module."""
    top = (error.name or "").split(".")[0]
    for extra, modules in EXTRAS.items():
        if top in modules:
            return f"this needs the optional '{extra}' extra, which is not installed (module {top!r} is missing): pip install 'corpus-train[{extra}]'"
    return None
