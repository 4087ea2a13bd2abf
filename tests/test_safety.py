"""Careless use and hostile timing: what --overwrite may delete, one writer per output, damaged
inputs, Ctrl-C and kill -9 at any point, and helper processes that must not outlive the command."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpus.errors import CorpusError
from corpus.outputs import MARKER, OutputLock, check_output, made_by_us, remove_ours
from tests.conftest import REPO, SAMPLE, read_folder, run_cli

CORPUS = str(Path(sys.executable).parent / "corpus")


def _one_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------- where an output may go


def test_check_output_refuses_unsafe_targets(tmp_path, monkeypatch):
    inputs = tmp_path / "a" / "in"
    inputs.mkdir(parents=True)
    (tmp_path / "w" / "sub").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "w" / "sub")
    for bad, why in [
        ("", "empty"),
        ("   ", "empty"),
        (".", "current folder"),
        ("..", "current folder or one of its parents"),
        (str(Path.home()), "home folder"),
        ("/", "current folder or one of its parents" if Path.cwd().anchor == "/" else "root"),
        (str(inputs), "is also an input"),
        (str(tmp_path / "a"), "holds the input"),
        (str(inputs / "out"), "inside the input folder"),
    ]:
        with pytest.raises(CorpusError, match=why):
            check_output(bad, [inputs])
    assert check_output(tmp_path / "elsewhere", [inputs]) == (tmp_path / "elsewhere").resolve()


def test_only_folders_we_made_are_removed(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    assert not made_by_us(theirs)
    with pytest.raises(CorpusError, match="not made by corpus"):
        remove_ours(theirs)
    assert (theirs / "notes.txt").read_text() == "mine"
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "ours")
    (tmp_path / "ours").mkdir()
    (tmp_path / "ours" / MARKER).touch()
    assert not made_by_us(link)  # a symlink to a folder is never followed into and deleted
    for marker in (MARKER, "card.json", "run.json"):
        ours = tmp_path / f"ours-{marker}"
        ours.mkdir()
        (ours / marker).write_text("{}")
        remove_ours(ours)
        assert not ours.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    remove_ours(empty)
    assert not empty.exists()


@pytest.mark.parametrize("mark", [MARKER, "card.json"])
def test_a_deletion_cut_short_leaves_a_folder_that_is_still_ours(tmp_path, monkeypatch, mark):
    """kill -9 while --overwrite or a rerun deletes an old output: whenever it comes, what is left is
    still known as ours, so the next run deletes the rest instead of refusing the folder."""
    real_unlink = os.unlink
    ours = tmp_path / "out.partial"
    for cut in range(7):  # the folder holds 7 files: cut short after each of them
        for sub in ("data", "rejected", "_work"):
            (ours / sub).mkdir(parents=True)
            (ours / sub / "part.parquet").write_text("x")
        (ours / "_work" / "fingerprint").write_text("f")
        (ours / "README.md").write_text("r")
        (ours / "notes.txt").write_text("n")
        (ours / mark).write_text("{}")
        calls = []

        def killed(path, *args, **kwargs):
            calls.append(path)
            if len(calls) > cut:
                raise KeyboardInterrupt  # as a kill: the deletion stops here
            return real_unlink(path, *args, **kwargs)

        monkeypatch.setattr(os, "unlink", killed)
        with pytest.raises(KeyboardInterrupt):
            remove_ours(ours)
        monkeypatch.setattr(os, "unlink", real_unlink)
        assert made_by_us(ours), f"cut short after {cut} files"
        remove_ours(ours)
        assert not ours.exists()


def test_overwrite_never_deletes_the_current_folder(small_corpus, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "precious.txt").write_text("keep me")
    ingest = ("ingest", str(small_corpus / "general"), "--source", "s", "--domain", "d")
    assert run_cli(*ingest, "-o", str(tmp_path / "ds")).returncode == 0
    for output in (".", "", "..", str(work)):
        for command in (ingest, ("length-filter", str(tmp_path / "ds"))):
            proc = run_cli(*command, "-o", output, "--overwrite", cwd=work)
            assert proc.returncode == 2, (output, proc.stderr)
            _one_line(proc, "name a new folder")
            assert (work / "precious.txt").read_text() == "keep me"
    proc = run_cli("length-filter", str(tmp_path / "ds"), "-o", "/proc/x")
    assert proc.returncode == 2
    _one_line(proc, "/proc/x")


def test_a_pipeline_whose_output_lies_in_a_source_is_refused_before_anything_runs(tmp_path):
    source = tmp_path / "docs"
    shutil.copytree(SAMPLE / "insurance" / "healthcare-gov-2013" / "glossary", source)
    for output in ("docs/out", "docs", "."):
        (tmp_path / "p.yaml").write_text(
            f"name: p\noutput: {output}\nsources:\n  - {{path: docs, source: s, domain: d}}\nstages:\n  - ingest: {{}}\n"
        )
        proc = run_cli("run", str(tmp_path / "p.yaml"))
        assert proc.returncode == 2, proc.stderr
        _one_line(proc, "p.yaml")
        assert not (source / "out").exists()
        assert not list(source.glob("00-ingest*"))


# ---------------------------------------------------------------- one writer per output


def test_a_second_writer_is_refused_and_a_killed_writers_lock_taken_over(small_corpus, tmp_path):
    out = tmp_path / "ds"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from corpus.outputs import OutputLock; OutputLock(sys.argv[1]).acquire(); "
         "print('locked', flush=True); sys.stdin.read()", str(out)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        args = ("ingest", str(small_corpus / "general"), "-o", str(out), "--source", "s", "--domain", "d")
        proc = run_cli(*args)
        assert proc.returncode == 2
        _one_line(proc, str(out), f"PID {holder.pid}")
        assert not out.exists() and not Path(f"{out}.partial").exists()
    finally:
        holder.kill()  # kill -9: the kernel releases its lock; the lock file stays behind
        holder.wait()
    assert (tmp_path / ".ds.lock").exists()
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / ".ds.lock").exists()  # released and removed by the writer that finished


def test_the_same_process_can_write_an_output_again_after_an_error(tmp_path):
    first = OutputLock(tmp_path / "x").acquire()
    second = OutputLock(tmp_path / "x").acquire()  # the first was never released (an exception, say)
    second.release()
    first.release()
    assert not (tmp_path / ".x.lock").exists()


# ---------------------------------------------------------------- damaged inputs


def _damaged(tmp_path: Path, small_corpus: Path, how: str) -> Path:
    ds = tmp_path / f"ds-{how}"
    assert run_cli("ingest", str(small_corpus / "general"), "-o", str(ds), "--source", "s", "--domain", "d").returncode == 0
    part = sorted((ds / "data").glob("*.parquet"))[0]
    data = bytearray(part.read_bytes())
    if how == "truncated":
        data = data[: len(data) // 2]
    else:  # pages scrambled, footer intact
        for i in range(len(data) // 4, len(data) // 2, 7):
            data[i] ^= 0x5A
    part.write_bytes(bytes(data))
    return ds


@pytest.mark.parametrize("how", ["truncated", "scrambled"])
def test_a_damaged_parquet_input_is_one_line_naming_the_file(small_corpus, tmp_path, how):
    ds = _damaged(tmp_path, small_corpus, how)
    part = sorted((ds / "data").glob("*.parquet"))[0]
    (tmp_path / "eval.txt").write_text("What does a deductible mean for a family plan with two children?\n")
    commands = [["length-filter"], ["filter"], ["dedup"], ["instruct"], ["decontaminate", "--against", str(tmp_path / "eval.txt")]]
    for i, command in enumerate(commands):
        proc = run_cli(command[0], str(ds), "-o", str(tmp_path / f"out-{i}"), *command[1:])
        assert proc.returncode == 2, (command, proc.stderr)
        _one_line(proc, part.name, "not a readable Parquet file")


def test_a_missing_boilerplate_list_is_an_error_not_a_silent_skip(tmp_path):
    from corpus.errors import StageFailed
    from corpus.filter.sanitise import read_boilerplate, write_boilerplate

    assert read_boilerplate(None) is None  # the run asked for none
    with pytest.raises(StageFailed, match="boilerplate list is missing"):
        read_boilerplate(tmp_path / "boilerplate.parquet")
    import polars as pl

    write_boilerplate(pl.DataFrame({"source": ["s"], "line": ["Cookie banner text"], "docs": [3]}), tmp_path / "b.parquet")
    assert read_boilerplate(tmp_path / "b.parquet")["line"].to_list() == ["Cookie banner text"]
    assert [p.name for p in tmp_path.iterdir()] == ["b.parquet"]  # no temporary file left


def test_dedup_killed_between_its_decisions_and_its_facts_resumes_with_the_facts(small_corpus, tmp_path, monkeypatch):
    import corpus.dedup as dedup
    from corpus.dedup import dedup_job
    from corpus.dedup.steps import DECISIONS_FILE
    from corpus.execution import WORK_DIR, run_stage

    ds = tmp_path / "ds"
    ingest = ("ingest", str(small_corpus / "general"), str(small_corpus / "insurance"), "-o", str(ds))
    assert run_cli(*ingest, "--source", "s", "--domain", "d").returncode == 0
    config = dedup.DedupConfig()
    clean = run_stage(dedup_job([str(ds)], "clean", config, progress=False), tmp_path / "clean")

    real_replace = os.replace

    def killed_at_facts(src, dst):
        if str(dst).endswith(dedup.FACTS_FILE):
            raise KeyboardInterrupt  # stands for a kill after decisions.parquet was renamed into place
        return real_replace(src, dst)

    monkeypatch.setattr(dedup.os, "replace", killed_at_facts)
    with pytest.raises(KeyboardInterrupt):
        run_stage(dedup_job([str(ds)], "clean", config, progress=False), tmp_path / "out")
    monkeypatch.setattr(dedup.os, "replace", real_replace)
    work = tmp_path / "out.partial" / WORK_DIR / dedup.DEDUP_WORK
    assert (work / DECISIONS_FILE).exists() and not (work / dedup.FACTS_FILE).exists()
    card = run_stage(dedup_job([str(ds)], "clean", config, progress=False), tmp_path / "out")
    for key, value in clean["stage_facts"].items():
        assert card["stage_facts"].get(key) == value, key
    assert read_folder(tmp_path / "out").sort("id").equals(read_folder(tmp_path / "clean").sort("id"))


# ---------------------------------------------------------------- Ctrl-C, kill -9 and helper processes


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":  # a zombie has ended; only its parent's wait is missing
                tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def _descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                alive.add(pid)
        except OSError:
            pass
    return alive


def _wait_until_gone(pids: set[int], limit_s: float = 120.0) -> set[int]:
    """Helpers end within a second of their command; the limit only keeps a broken build from hanging."""
    end = time.monotonic() + limit_s
    while _alive(pids) and time.monotonic() < end:
        time.sleep(0.05)
    return _alive(pids)


def _started(proc: subprocess.Popen, lock: Path) -> bool:
    """The command holds its output's lock: its own code runs (a signal before that would only stop
    the interpreter starting up, which no program can answer)."""
    while proc.poll() is None:
        try:
            if lock.read_text().strip() == str(proc.pid):
                return True
        except OSError:
            pass
        time.sleep(0.002)
    return False


def _big_dataset(tmp_path: Path, docs: int = 8_000) -> Path:
    texts = [p.read_text(encoding="utf-8") for p in sorted((SAMPLE / "general").rglob("*.rst.txt"))[:60]]
    rng = random.Random(0)
    rows = [{"text": f"{rng.choice(texts)}\n\nSection {i}: {' '.join(rng.choice(texts).split()[:80])}"} for i in range(docs)]
    src = tmp_path / "big.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    ds = tmp_path / "big"
    assert run_cli("ingest", str(src), "-o", str(ds), "--source", "s", "--domain", "d").returncode == 0
    return ds


@pytest.mark.slow
def test_no_helper_process_outlives_a_killed_command_and_ctrl_c_is_one_line(tmp_path):
    ds = _big_dataset(tmp_path)
    args = [CORPUS, "-q", "filter", str(ds), "-o", str(tmp_path / "f"), "--tasks", "8", "--workers", "2"]
    for how in (signal.SIGKILL, signal.SIGINT):
        proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, start_new_session=True)
        helpers: set[int] = set()
        while proc.poll() is None and len(helpers) < 3:  # the manager, the fork server, a worker
            helpers |= _descendants(proc.pid)
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before its helpers could be seen: make the input bigger"
        helpers |= _descendants(proc.pid)
        if how == signal.SIGKILL:
            proc.kill()
        else:
            os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
        err = proc.communicate(timeout=600)[1]  # a hang fails the test instead of stalling the suite
        if how == signal.SIGINT and not (proc.returncode == 0 and (tmp_path / "f" / "card.json").is_file()):
            # (on a loaded machine the Ctrl-C may come as the finished command exits: then it published its output)
            assert proc.returncode == 130, err
            assert err.strip().splitlines() == ["corpus: interrupted; rerun the same command to resume"], err
        assert _wait_until_gone(helpers) == set(), "helper processes outlived the command"


def _digests(folder: Path) -> dict[str, str]:
    """Every file a stage wrote, by content, except the card's own record of the run (and, in JSON
    files, the absolute paths of the run's folders)."""

    def content(path: Path) -> bytes:
        if path.suffix == ".parquet":  # the rows, not the run's fingerprint in the file's metadata
            table = pq.read_table(path).replace_schema_metadata(None)
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            return sink.getvalue().to_pybytes()
        if path.suffix != ".json":
            return path.read_bytes()

        def strip(value):
            if isinstance(value, dict):
                return {k: strip(v) for k, v in value.items() if k != "path"}
            return [strip(v) for v in value] if isinstance(value, list) else value

        return json.dumps(strip(json.loads(path.read_text())), sort_keys=True).encode()

    skip = {"card.json", "README.md", MARKER}
    return {
        str(p.relative_to(folder)): hashlib.sha256(content(p)).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in skip and "plots" not in p.parts
    }


@pytest.mark.slow
def test_chaos_kill_and_ctrl_c_at_random_points_of_the_quickstart_pipeline(tmp_path):
    """kill -9 and Ctrl-C at points of `corpus run pipelines/quickstart.yaml` (each point seen by
    polling the output folder, then a random delay), rerunning after each: the result equals a
    clean run's, file for file, and no process is left behind."""
    seed = int(os.environ.get("CHAOS_SEED", random.randrange(1 << 16)))
    rng = random.Random(seed)
    for name in ("clean", "chaos"):
        (tmp_path / name / "pipelines").mkdir(parents=True)
        text = (REPO / "pipelines" / "quickstart.yaml").read_text().replace("../sample", str(SAMPLE))
        (tmp_path / name / "pipelines" / "quickstart.yaml").write_text(text)
    clean = subprocess.run([CORPUS, "-q", "run", str(tmp_path / "clean" / "pipelines" / "quickstart.yaml")],
                           capture_output=True, text=True)  # fmt: skip
    assert clean.returncode == 0, clean.stderr

    out = tmp_path / "chaos" / "out" / "quickstart"
    command = [CORPUS, "-q", "run", str(tmp_path / "chaos" / "pipelines" / "quickstart.yaml")]
    points = [
        (out / "00-ingest.partial" / "_work", signal.SIGKILL),
        (out / "02-filter.partial" / "_work" / "boilerplate.parquet", signal.SIGINT),
        (out / "03-tokenizer.partial", signal.SIGKILL),
        (out / "04-tokenize.partial", signal.SIGINT),
    ]
    hit = 0
    for marker, how in points:
        proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)
        helpers: set[int] = set()
        _started(proc, out.parent / ".quickstart.lock")
        while proc.poll() is None and not marker.exists():
            helpers |= _descendants(proc.pid)
            time.sleep(0.005)
        if proc.poll() is None:
            time.sleep(rng.uniform(0, 0.3))
            helpers |= _descendants(proc.pid)
            if how == signal.SIGKILL:
                proc.kill()
            else:
                os.killpg(proc.pid, signal.SIGINT)
            hit += 1
        err = proc.communicate(timeout=600)[1]  # a hang fails the test instead of stalling the suite
        context = f"seed {seed}, {how.name} at {marker.relative_to(out)}"
        if how == signal.SIGINT and proc.returncode != 0:  # 0: it finished before the signal landed
            assert proc.returncode == 130, f"{context}: {err}"
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, f"{context}: {err}"
        assert _wait_until_gone(helpers) == set(), f"{context}: helper processes outlived the command"
    assert hit >= 2, f"seed {seed}: only {hit} of the interruption points were reached"
    final = subprocess.run(command, capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    for stage in sorted(p.name for p in (tmp_path / "clean" / "out" / "quickstart").iterdir() if p.is_dir()):
        ours, theirs = _digests(out / stage), _digests(tmp_path / "clean" / "out" / "quickstart" / stage)
        assert ours == theirs, f"seed {seed}: {stage} differs from a clean run"
        if (out / stage / "data").is_dir():
            assert run_cli("card", "validate", str(out / stage)).returncode == 0
    assert not list(out.glob("*.partial"))


def test_card_validate_finds_parts_of_another_run_or_other_work_files(small_corpus, tmp_path):
    """A folder finished over the parts of two runs gets a card whose digests match its files; the
    fingerprint and work-file digests stamped in each part still tell the runs apart."""
    from corpus.cards import card_hash
    from corpus.document import file_sha256

    ds, out = tmp_path / "ds", tmp_path / "f"
    ingest = ("ingest", str(small_corpus / "general"), str(small_corpus / "insurance"), "-o", str(ds))
    assert run_cli(*ingest, "--source", "s", "--domain", "d").returncode == 0
    assert run_cli("filter", str(ds), "-o", str(out), "--tasks", "2").returncode == 0
    card = json.loads((out / "card.json").read_text())
    assert set(card["stage_facts"]["work_files"]) == {"boilerplate.parquet"}
    assert run_cli("card", "validate", str(out)).returncode == 0
    part = sorted((out / "data").glob("*.parquet"))[-1]
    original = part.read_bytes()
    for key, value, complaint in [
        ("corpus.fingerprint", "0123456789abcdef", "written by another run"),
        ("corpus.work_files", json.dumps({"boilerplate.parquet": "0" * 64}), "read other work files"),
    ]:
        part.write_bytes(original)
        table = pq.read_table(part)
        meta = {**table.schema.metadata, key.encode(): value.encode()}
        pq.write_table(table.replace_schema_metadata(meta), part)
        fixed = json.loads((out / "card.json").read_text())  # as a finish over the mixed folder would write it
        for entry in fixed["files"]:
            if entry["path"] == f"data/{part.name}":
                entry["sha256"] = file_sha256(part)
        fixed["card_sha256"] = card_hash(fixed)
        (out / "card.json").write_text(json.dumps(fixed))
        proc = run_cli("card", "validate", str(out))
        assert proc.returncode != 0 and complaint in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_a_gzip_bomb_as_an_eval_file_is_one_line(small_corpus, tmp_path):
    import gzip

    ds = tmp_path / "ds"
    assert run_cli("ingest", str(small_corpus / "general"), "-o", str(ds), "--source", "s", "--domain", "d").returncode == 0
    bomb = tmp_path / "eval.jsonl.gz"
    bomb.write_bytes(gzip.compress(b"\n" * (100 << 20), compresslevel=9))
    proc = run_cli("decontaminate", str(ds), "-o", str(tmp_path / "out"), "--against", str(bomb))
    assert proc.returncode == 2
    _one_line(proc, "eval.jsonl.gz", "--max-decompressed-ratio")


@pytest.mark.slow
def test_chaos_kill_and_ctrl_c_at_points_of_a_dedup(tmp_path):
    """Ctrl-C and kill -9 in each pass of `corpus dedup` (signatures, clusters, the marking tasks, the
    card step), rerunning after each: one line and exit 130 for Ctrl-C, and the same output as a
    clean run."""
    seed = int(os.environ.get("CHAOS_SEED", random.randrange(1 << 16)))
    rng = random.Random(seed)
    ds = _big_dataset(tmp_path, docs=3_000)
    clean = subprocess.run([CORPUS, "-q", "dedup", str(ds), "-o", str(tmp_path / "clean"), "--tasks", "2"],
                           capture_output=True, text=True)  # fmt: skip
    assert clean.returncode == 0, clean.stderr
    out = tmp_path / "out"
    work = tmp_path / "out.partial" / "_work"
    points = [
        (lambda: (work / "dedup").exists(), signal.SIGINT),
        (lambda: (work / "dedup" / "decisions.parquet").exists(), signal.SIGKILL),
        (lambda: (work / "dedup" / "cluster_facts.json").exists(), signal.SIGINT),
        (lambda: bool(list((work / "task_stats").glob("writer-*"))), signal.SIGINT),
        (lambda: (tmp_path / "out.partial").exists() and not work.exists(), signal.SIGINT),
    ]
    command = [CORPUS, "-q", "dedup", str(ds), "-o", str(out), "--tasks", "2"]
    hit = 0
    for i, (reached, how) in enumerate(points):
        proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)
        _started(proc, tmp_path / ".out.lock")
        while proc.poll() is None and not reached():
            time.sleep(0.002)
        if proc.poll() is None:
            time.sleep(rng.uniform(0, 0.05))
            proc.send_signal(how)
            hit += 1
        err = proc.communicate(timeout=600)[1]
        if how == signal.SIGINT and proc.returncode != 0:
            assert proc.returncode == 130, f"seed {seed}, point {i}: {err}"
            assert err.strip().splitlines() == ["corpus: interrupted; rerun the same command to resume"], f"seed {seed}, point {i}: {err}"
        if out.exists():  # finished before this point: start the next one from scratch
            shutil.rmtree(out)
    assert hit >= 3, f"seed {seed}: only {hit} of the interruption points were reached"
    final = subprocess.run(command, capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    for kind in ("data", "rejected"):
        assert read_folder(out, kind).sort("id").equals(read_folder(tmp_path / "clean", kind).sort("id")), kind
    ours = json.loads((out / "card.json").read_text())["stage_facts"]["dedup"]
    theirs = json.loads((tmp_path / "clean" / "card.json").read_text())["stage_facts"]["dedup"]
    for key in ("clusters", "docs_in_clusters", "cluster_size_histogram", "candidate_edges", "by_source"):
        assert ours[key] == theirs[key], key
    assert run_cli("card", "validate", str(out)).returncode == 0


def test_a_parquet_bomb_and_an_oversized_parquet_cell_are_rejected_rows(tmp_path):
    pq.write_table(pa.table({"text": ["a" * (80 << 20), "a small document"]}), tmp_path / "bomb.parquet", compression="zstd")
    assert (tmp_path / "bomb.parquet").stat().st_size < 100_000  # 80 MB of text in a few KB
    proc = run_cli("ingest", str(tmp_path / "bomb.parquet"), "-o", str(tmp_path / "a"), "--source", "s", "--domain", "d")
    assert proc.returncode == 0, proc.stderr
    card = json.loads((tmp_path / "a" / "card.json").read_text())
    assert card["accounting"][-1]["rejected"] == {"decompression_limit": 1}
    rows = [f"document number {i} " * 40 for i in range(50)]
    pq.write_table(pa.table({"text": rows + ["x" * 300_000]}), tmp_path / "wide.parquet")
    proc = run_cli("ingest", str(tmp_path / "wide.parquet"), "-o", str(tmp_path / "b"), "--source", "s", "--domain", "d",
                   "--max-record-bytes", "200000")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    card = json.loads((tmp_path / "b" / "card.json").read_text())
    assert card["accounting"][-1]["kept"] == 50 and card["accounting"][-1]["rejected"] == {"record_too_large": 1}


def test_the_command_exits_even_when_a_helper_was_left_running():
    """Ctrl-C while datatrove starts its manager leaves a process that nobody shuts down; the
    interpreter's exit would wait on it for ever. The command kills what is left and exits."""
    script = (
        "import multiprocess, sys, time\n"
        "from corpus import cli\n"
        "helper = multiprocess.Process(target=time.sleep, args=(3600,))\n"
        "helper.start()\n"
        "print(helper.pid, flush=True)\n"
        "cli.main = lambda argv=None: 130\n"
        "cli.entry()\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 130, proc.stderr
    assert _wait_until_gone({int(proc.stdout.split()[0])}) == set()


def test_a_busy_worker_dies_with_a_killed_command(tmp_path):
    """A pool worker in the middle of a task (here one that would take an hour) is killed with the
    command, not left to finish its task beside the rerun."""
    script = (
        "import sys\n"
        "from corpus import lifetime\n"
        "lifetime.install(command=True)\n"
        "from datatrove.pipeline.base import PipelineStep\n"
        "from corpus.execution import DatasetReader\n"
        "from corpus.executors import ExecutorConfig, build_executor\n"
        "class Busy(PipelineStep):\n"
        "    name, type = 'busy', 'test'\n"
        "    def run(self, data=None, rank=0, world_size=1):\n"
        "        import time\n"
        "        print('busy', flush=True)\n"
        "        time.sleep(3600)\n"
        "        yield from ()\n"
        "work = sys.argv[1]\n"
        "steps = [DatasetReader([], work, 'busy', progress=False), Busy()]\n"
        "build_executor(ExecutorConfig(tasks=2, workers=2), steps, work + '/logs').run()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    helpers: set[int] = set()
    try:
        assert "busy" in proc.stdout.readline()  # a worker is inside its task
        helpers = _descendants(proc.pid)
        assert len(helpers) >= 3  # the manager, the fork server, the workers
        proc.kill()
        proc.wait()
        assert _wait_until_gone(helpers, limit_s=60) == set(), "a worker outlived the command"
    finally:  # whatever failed, leave nothing running
        for pid in _alive(helpers | _descendants(proc.pid) | {proc.pid}):
            os.kill(pid, signal.SIGKILL)
