"""What the tokenizer trainer and the shard writer share: fingerprints and outputs (the shard format itself is
corpus/shard_format.py)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from corpus.document import CARD_JSON
from corpus.errors import CorpusError
from corpus.outputs import OutputLock, check_output, made_by_us, mark, remove_ours, replace_hint
from corpus.shard_format import TOKENIZER_JSON, tokenizer_sha256

RESUME_FILE = "_work/fingerprint"  # in a partial folder: which attempt its finished tasks belong to


# ---------------------------------------------------------------- fingerprints: is a finished output up to date?


def _input_identity(path: Path) -> str | None:
    """What an input folder is, for a fingerprint: its card's card_sha256, or for a tokenizer
    folder without a card (one from elsewhere) the sha256 of its tokenizer.json."""
    try:
        return json.loads((path / CARD_JSON).read_text(encoding="utf-8")).get("card_sha256")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        pass
    if (path / TOKENIZER_JSON).is_file():
        try:
            return tokenizer_sha256(path)
        except OSError:
            return None
    return None


def stage_fingerprint(kind: str, config: dict, inputs: list[str | Path]) -> str:
    """The fingerprint of a tokenizer, tokenize or classifier run: its kind, its config and what
    its input folders hold (not where they are). A finished output's card keeps it."""
    cards = [_input_identity(Path(p)) for p in inputs]
    payload = json.dumps({"stage": kind, "config": config, "inputs": cards}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _resolved(path: str | Path) -> str:
    return str(Path(path).expanduser().resolve())


def tokenizer_fingerprint(config: dict, inputs: list[str | Path]) -> str:
    """`corpus tokenizer train` and the pipeline's tokenizer stage: the datasets and, with
    `extend`, the base tokenizer are the inputs."""
    extend = config.get("extend")
    if extend:
        config = {**config, "extend": _resolved(extend)}
    return stage_fingerprint("tokenizer", config, [*inputs, *([extend] if extend else [])])


def tokenize_fingerprint(config: dict, inputs: list[str | Path]) -> str:
    """`corpus tokenize` and the pipeline's tokenize stage: the datasets and the tokenizer are the
    inputs (the number of tasks is not: the shards do not depend on it)."""
    tokdir = config["tokenizer"]
    config = {**config, "tokenizer": _resolved(tokdir)}
    return stage_fingerprint("tokenize", config, [*inputs, tokdir])


def output_fingerprint(out: Path) -> str | None:
    """The fingerprint in a finished output's card.json, or None."""
    try:
        return json.loads((Path(out) / CARD_JSON).read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None


def up_to_date(out: Path, fingerprint: str | None, finished) -> bool:
    """A finished output made with this fingerprint: a rerun leaves it as it is."""
    return fingerprint is not None and finished(out) and output_fingerprint(out) == fingerprint


class PartialOutput:
    """An output folder written under `OUT.partial` and renamed to `OUT` only when complete; the
    output's lock is held from start() to finish() or abandon()."""

    def __init__(self, output: str | Path, overwrite: bool, is_finished, inputs: list[str | Path] = (),
                 fingerprint: str | None = None):  # fmt: skip
        self.final = check_output(output, inputs)
        self.partial = self.final.with_name(self.final.name + ".partial")
        self.overwrite = overwrite
        self.is_finished = is_finished
        self.fingerprint = fingerprint  # this run's: a finished output made with it is up to date
        self.lock = OutputLock(self.final)

    def up_to_date(self) -> bool:
        """True when the finished output was made with this run's fingerprint and --overwrite was
        not passed: then there is nothing to do (checked under the output's lock)."""
        if self.overwrite or self.fingerprint is None or not self.final.exists():
            return False
        with self.lock:
            return up_to_date(self.final, self.fingerprint, self.is_finished)

    def check(self) -> None:
        """The one-line error when the output exists and may not be replaced by this run."""
        if self.final.exists() and not (self.overwrite and made_by_us(self.final)):
            if not self.is_finished(self.final):
                what = "exists and is not a finished output"
            elif self.fingerprint is not None and output_fingerprint(self.final) is not None:
                what = "was made by another configuration"  # the inputs or options differ
            else:
                what = "already exists"
            raise CorpusError(f"{self.final}: {what}; {replace_hint(self.final)}")

    def start(self, resume: str | None = None) -> Path:
        """The partial folder, emptied unless `resume` names the attempt it holds (its
        `_work/fingerprint`): then an interrupted run's finished tasks are kept."""
        self.lock.acquire()
        try:
            self.check()
        except CorpusError:
            self.lock.release()
            raise
        saved = self.partial / RESUME_FILE
        if resume is None or not saved.is_file() or saved.read_text().strip() != resume:
            remove_ours(self.partial)  # a half-written attempt of something else: nothing in it is trusted
        mark(self.partial)
        if resume is not None:
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_text(resume)
        return self.partial

    def release(self) -> None:
        """Keep the partial folder for a rerun to resume, and let go of the output."""
        self.lock.release()

    def abandon(self) -> None:
        """Remove the partial folder: these outputs cannot be resumed, so a failed run leaves nothing."""
        remove_ours(self.partial)
        self.lock.release()

    def finish(self) -> Path:
        remove_ours(self.final)
        os.replace(self.partial, self.final)
        self.lock.release()
        return self.final
