"""Output folders: where a command may write, what `--overwrite` may replace, and one writer at a time.

Every command that writes a folder goes through here:

- `check_output(output, inputs)` refuses an empty path, the current folder or one of its parents,
  the home folder, the file-system root, an input itself, a folder that holds an input, and a
  folder inside an input (a pipeline would read its own output on the next run).
- `remove_ours(path)` is the only way an output (or its `.partial` folder) is deleted: it refuses
  a folder that this project did not make. Ours carry `MARKER`, a card (`card.json`) or a run
  marker (`run.json`); an empty folder may be replaced too.
- `OutputLock(output)` holds an OS lock (flock) on `.NAME.lock` beside the output while a command
  writes it. A second writer gets a one-line error naming the holder's PID. The kernel releases
  the lock when its process dies, however it dies, so a killed run's lock is simply taken over.
- `atomic_write(path)` writes a work file under a temporary name and renames it into place, so a
  kill leaves either the old file or the new one, never half of one.
- `OutputFolder(output, ...)` publishes an output: it is written under `OUT.partial` and renamed
  to `OUT` when complete, the lock held meanwhile; a finished output keeps the fingerprint
  (`fingerprint_of` its inputs' identities and its config) that makes a rerun "up to date", and
  `refusal` words the one-line error when an existing output may not be replaced.
- `card_header(...)` and `seal_card(...)` are the fields every card.json opens with and its
  card_sha256.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable

from corpus.errors import CorpusError

MARKER = ".corpus-output"  # written into every output folder (and its .partial) this project creates
OUR_FILES = (MARKER, "card.json", "run.json", "stage.json", "ablation.json", "crawl_state.sqlite")
_PARTIAL_WORK = "_work"  # a dataset stage's .partial holds its work folder
RESUME_FILE = f"{_PARTIAL_WORK}/fingerprint"  # in a partial folder: which attempt its finished tasks belong to
CARD_JSON = "card.json"


def check_output(output: str | Path, inputs: list[str | Path] = (), what: str = "-o") -> Path:
    """The resolved output path, or a CorpusError when writing (or replacing) it would be unsafe."""
    if output is None or not str(output).strip():
        raise CorpusError(f"{what}: the output path is empty; name a new folder")
    out = Path(output).expanduser().resolve()
    cwd = Path.cwd().resolve()
    if out == cwd or out in cwd.parents:
        raise CorpusError(f"{output}: is the current folder or one of its parents; name a new folder for the output")
    if out == Path.home().resolve() or out == Path(out.anchor):
        raise CorpusError(f"{output}: is the home folder or the file-system root; name a new folder for the output")
    for raw in inputs:
        if raw is None or not str(raw).strip():
            continue
        source = Path(raw).expanduser().resolve()
        if out == source:
            raise CorpusError(f"{output}: is also an input; name a new folder for the output")
        if out in source.parents:
            raise CorpusError(f"{output}: holds the input {raw}; name a folder outside it")
        if source in out.parents and source.is_dir():
            raise CorpusError(f"{output}: lies inside the input folder {raw}; a rerun would read its own output")
    return out


def made_by_us(path: Path) -> bool:
    """True for a folder this project made (or an empty one): the only kind `remove_ours` deletes."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return False
    with os.scandir(path) as entries:
        names = set()
        for entry in entries:
            names.add(entry.name)
            if len(names) > 4096:
                break
    if not names:
        return True
    if names & set(OUR_FILES):
        return True
    return path.name.endswith(".partial") and _PARTIAL_WORK in names and (path / _PARTIAL_WORK / "fingerprint").is_file()


def replace_hint(path: Path) -> str:
    """What to tell a user whose output folder exists: --overwrite only where it would be allowed."""
    if made_by_us(path):
        return "pass --overwrite to replace it"
    return "it was not made by corpus, so it is never replaced; name a new folder"


def remove_ours(path: str | Path) -> None:
    """Delete an output folder (or its .partial) this project made; refuse anything else."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if not made_by_us(path):
        raise CorpusError(f"{path}: was not made by corpus (no {MARKER}, card or run marker); not deleting it")
    check_output(path)  # never the current folder, its parents, home or root, whatever they hold
    # what makes it ours goes last: a deletion cut short (kill -9) leaves a folder that is still ours
    last = []
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.name in OUR_FILES or entry.name == _PARTIAL_WORK:
                last.append(entry)
            elif entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
    for entry in sorted(last, key=lambda e: e.name != _PARTIAL_WORK):  # the work folder, then the marks
        shutil.rmtree(entry.path) if entry.is_dir(follow_symlinks=False) else os.unlink(entry.path)
    os.rmdir(path)


def mark(folder: str | Path) -> Path:
    """Create `folder` (and parents) and mark it as ours; a one-line error when it cannot be made."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / MARKER).touch()
    except OSError as e:
        raise CorpusError(f"{folder}: cannot create the output folder: {e.strerror or e}") from None
    return folder


# ---------------------------------------------------------------- one writer per output folder

_HELD: dict[str, int] = {}  # lock path -> fd held by this process


class OutputLock:
    """An exclusive, non-blocking OS lock on an output folder, as a context manager (or acquire/release)."""

    def __init__(self, output: str | Path):
        out = Path(output).resolve()
        self.output = out
        self.path = out.parent / f".{out.name}.lock"
        self.fd: int | None = None

    def acquire(self) -> "OutputLock":
        key = str(self.path)
        if key in _HELD:  # an earlier writer in this process that ended without releasing (an error)
            _release(key, _HELD.pop(key))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CorpusError(f"{self.output}: cannot write an output here ({self.path.parent}: {e.strerror or e})") from None
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise CorpusError(f"{self.output}: cannot write an output here ({self.path}: {e.strerror or e})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(fd)
                os.close(fd)
                who = f"PID {holder}" if holder else "another process"
                raise CorpusError(
                    f"{self.output}: another run ({who}) is writing it (lock {self.path}); wait for it to finish or stop it"
                ) from None
            # the holder before us may have removed the file between our open and our lock: the
            # lock must be on the file that is at the path now
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        _HELD[key] = fd
        return self

    def release(self) -> None:
        if self.fd is not None and _HELD.get(str(self.path)) == self.fd:
            _release(str(self.path), _HELD.pop(str(self.path)))
        self.fd = None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _release(path: str, fd: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)  # while still holding it: a waiting opener sees another inode and retries
    with contextlib.suppress(OSError):
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


# ---------------------------------------------------------------- work files


@contextlib.contextmanager
def atomic_write(path: str | Path):
    """Yields a temporary path beside `path`; renamed onto `path` when the block ends without error."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


# ---------------------------------------------------------------- fingerprints and the card header


def fingerprint_of(payload: dict) -> str:
    """The fingerprint of what an output was made from: the sha256 of the payload's JSON (keys
    sorted), first 16 hex digits. Every output's card (or run marker) keeps its own."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def input_identity(path: str | Path) -> str | None:
    """What an input is, for a fingerprint, whatever its path: the fingerprint its card keeps (what
    it was made from; unlike the card's own hash, the same when it is made again), else its card's
    card_sha256, else the sha256 of a tokenizer folder's tokenizer.json or of a file; None for what
    cannot be read."""
    path = Path(path)
    try:
        card = json.loads((path / CARD_JSON).read_text(encoding="utf-8"))
        found = card.get("fingerprint") or card.get("card_sha256")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        found = None
    if found is not None:
        return found
    from corpus.document import file_sha256

    file = path / "tokenizer.json" if path.is_dir() else path
    try:
        return file_sha256(file) if file.is_file() else None
    except OSError:
        return None


def stage_fingerprint(kind: str, config: dict, inputs: list[str | Path]) -> str:
    """The fingerprint of a run that is not a dataset stage (tokenizer, tokenize, classifier,
    instruct ...): its kind, its config and what its inputs hold (not where they are)."""
    return fingerprint_of({"stage": kind, "config": config, "inputs": [input_identity(p) for p in inputs]})


def stored_fingerprint(out: str | Path, marker: str = CARD_JSON) -> str | None:
    """The fingerprint a finished output keeps in its card (or another marker file), or None."""
    try:
        return json.loads((Path(out) / marker).read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None


def up_to_date(out: str | Path, fingerprint: str | None, finished, marker: str = CARD_JSON) -> bool:
    """A finished output made with this fingerprint: a rerun leaves it as it is."""
    return fingerprint is not None and finished(Path(out)) and stored_fingerprint(out, marker) == fingerprint


def card_header(name: str, stage: str, command: list[str] | None, python: bool = False) -> dict:
    """The fields every card.json opens with: card_version, name, stage, created (UTC, seconds),
    tool (corpus's version and git commit; the Python version where asked) and command (the
    process's argv when not given). The caller adds its stage's fields after them."""
    import datetime as dt
    import sys

    import corpus

    tool = {"name": "corpus", "version": corpus.__version__, "git_commit": git_commit()}
    if python:
        tool["python"] = sys.version.split()[0]
    return {
        "card_version": 1,
        "name": name,
        "stage": stage,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "tool": tool,
        "command": command if command is not None else sys.argv,
    }


def card_hash(card: dict) -> str:
    """A card's card_sha256: the sha256 of its JSON (keys sorted) without that key."""
    body = {k: v for k, v in card.items() if k != "card_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def seal_card(folder: str | Path, card: dict) -> dict:
    """Set the card's card_sha256 and write it to FOLDER/card.json; returns the card."""
    card["card_sha256"] = card_hash(card)
    (Path(folder) / CARD_JSON).write_text(json.dumps(card, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    return card


def git_commit() -> str | None:
    """The commit of the corpus package's checkout, or None outside a git checkout."""
    import subprocess

    import corpus

    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(corpus.__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


# ---------------------------------------------------------------- publishing a folder


def refusal(output: str | Path, out: Path, finished: bool, same_kind_made: bool, noun: str = "output", hint: str | None = None) -> str:
    """The one-line reason an existing output may not be replaced: not a finished output, made by
    another configuration (it keeps a fingerprint), or simply there; --overwrite only where allowed
    (`hint`, when given, says what to do instead of replace_hint)."""
    if not finished:
        what = f"exists and is not a finished {noun}"
    elif same_kind_made:
        what = "was made by another configuration"  # the inputs or options differ
    else:
        what = "already exists"
    return f"{output}: {what}; {hint or replace_hint(out)}"


class OutputFolder:
    """An output folder written under `OUT.partial` and renamed to `OUT` only when complete, with
    the output's lock held from start() to finish(), release() or abandon().

    `fingerprint` is this run's (fingerprint_of its inputs' identities and its config; a function
    that computes it, when that takes reading the inputs, is called only when needed): a finished
    output that keeps the same one is up to date, and a rerun leaves it as it is. A finished output
    with another one is replaced when `overwrite` (the user's --overwrite) or `replace_stale` (a
    pipeline's own earlier output) allows it; otherwise check() refuses it in one line. `error` is
    the exception class of that line (the trainer has its own); `marker` is the file in the output
    that keeps the fingerprint; `shown` is how the lines name the output (default: its full path)
    and `noun` what it is ("exists and is not a finished dataset").

    A command that holds the output's lock itself (a dataset stage) calls open() and publish()
    instead of start() and finish().
    """

    def __init__(self, output: str | Path, overwrite: bool, is_finished, inputs: list[str | Path] = (),
                 fingerprint: str | Callable[[], str] | None = None, replace_stale: bool = False, error: type[Exception] = CorpusError,
                 marker: str = CARD_JSON, shown: str | Path | None = None, noun: str = "output"):  # fmt: skip
        self.final = check_output(output, inputs)
        self.shown = shown if shown is not None else self.final
        self.noun = noun
        self.partial = self.final.with_name(self.final.name + ".partial")
        self.overwrite = overwrite
        self.replace_stale = replace_stale
        self.is_finished = is_finished
        self._fingerprint = fingerprint
        self.error = error
        self.marker = marker
        self.lock = OutputLock(self.final)

    @property
    def fingerprint(self) -> str | None:
        if callable(self._fingerprint):
            self._fingerprint = self._fingerprint()
        return self._fingerprint

    def stored(self) -> str | None:
        return stored_fingerprint(self.final, self.marker)

    def is_up_to_date(self) -> bool:
        """A finished output made with this run's fingerprint (whatever --overwrite says). Finished is
        asked first: a fingerprint may take reading the inputs, which is not needed when it is not."""
        return self.is_finished(self.final) and up_to_date(self.final, self.fingerprint, self.is_finished, self.marker)

    def up_to_date(self) -> bool:
        """True when the finished output was made with this run's fingerprint and --overwrite was
        not passed: then there is nothing to do (checked under the output's lock)."""
        if self.overwrite or self._fingerprint is None or not self.final.exists():
            return False
        with self.lock:
            return self.is_up_to_date()

    def check(self) -> None:
        """The one-line error when the output exists and may not be replaced by this run."""
        if not self.final.exists() and not self.final.is_symlink():
            return
        finished = self.is_finished(self.final)
        stale = finished and self.replace_stale
        if (self.overwrite or stale) and made_by_us(self.final):
            return
        if self.overwrite or stale:
            raise self.error(f"{self.shown}: exists and {replace_hint(self.final)}")
        same_kind = self.stored() is not None and self.fingerprint is not None
        raise self.error(refusal(self.shown, self.final, finished, same_kind, self.noun))

    def start(self, resume: str | None = None) -> Path:
        """Take the output's lock, check() it and open() the partial folder."""
        self.lock.acquire()
        try:
            self.check()
            return self.open(resume)
        except BaseException:
            self.lock.release()
            raise

    def open(self, resume: str | None = None) -> Path:
        """The partial folder, emptied unless `resume` names the attempt it holds (its
        `_work/fingerprint`): then an interrupted run's finished tasks are kept."""
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
        """Remove the partial folder (an output that cannot be resumed leaves nothing behind)."""
        remove_ours(self.partial)
        self.lock.release()

    def publish(self) -> Path:
        """Replace the output with the complete partial folder."""
        remove_ours(self.final)
        os.replace(self.partial, self.final)
        return self.final

    def finish(self) -> Path:
        """publish(), and let go of the output."""
        self.publish()
        self.lock.release()
        return self.final
