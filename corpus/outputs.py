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
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path

from corpus.errors import CorpusError

MARKER = ".corpus-output"  # written into every output folder (and its .partial) this project creates
OUR_FILES = (MARKER, "card.json", "run.json", "stage.json", "ablation.json", "crawl_state.sqlite")
_PARTIAL_WORK = "_work"  # a dataset stage's .partial holds its work folder


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
