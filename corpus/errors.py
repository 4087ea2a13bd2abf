"""Errors a user can act on. The CLI prints them as one line and exits with their code."""

from __future__ import annotations


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


def first_error(err) -> tuple[tuple, str, int]:
    """A pydantic ValidationError's error to report: (where, message, how many more). A misspelt
    key comes first (its own error, `unknown key`, is the cause of a `Field required` beside it)."""
    errors = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"].removeprefix("Value error, ")
    return tuple(first["loc"]), msg, len(errors) - 1


def validation_message(err, prefix: tuple = ()) -> str:
    """A ValidationError as one line: `KEY.PATH: message (and N more)`."""
    loc, msg, more = first_error(err)
    where = ".".join(str(p) for p in (*prefix, *loc))
    more = f" (and {more} more)" if more else ""
    return f"{where}: {msg}{more}" if where else f"{msg}{more}"
