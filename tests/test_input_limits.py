"""Hostile input: alias bombs, decompression bombs, huge records, devices and FIFOs, symlinks out of
a folder. Each is refused with a one-line error or a rejected row naming it, in bounded memory."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from corpus.errors import CorpusError
from corpus.ingest import extract_main_text
from corpus.ingest.formats import FileTask, IngestLimits, plan_ingest
from corpus.ingest.readers import READERS, ReadStats
from corpus.yaml_file import (
    FILE_LIMITS,
    YamlLimitError,
    YamlLimits,
    load_yaml,
    read_yaml,
)


@pytest.fixture
def no_hang():
    """Fails the test after 10 s instead of waiting forever (opening a FIFO waits for a writer)."""

    def stop(signum, frame):
        raise TimeoutError("blocked for 10 s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def alias_bomb(levels: int = 9, width: int = 10, indent: str = "") -> str:
    """Each level a list of `width` aliases to the level before: width**levels nodes once expanded."""
    names = "abcdefghijklmnopqrstuvwxyz"
    lines = [f"{indent}a: &a [{','.join(['x'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"{indent}{names[i]}: &{names[i]} [{','.join([f'*{names[i - 1]}'] * width)}]")
    return "\n".join(lines) + "\n"


def read(path: Path, fmt: str, limits: IngestLimits | None = None) -> tuple[list[dict], ReadStats]:
    stats = ReadStats()
    task = FileTask(str(path), fmt, "s", "d", "text", limits or IngestLimits())
    return list(READERS[fmt](task, stats, extract_main_text)), stats


# ---------------------------------------------------------------- the bounded YAML loader


def test_alias_bomb_is_refused_without_expanding_it():
    text = alias_bomb()
    assert len(text) < 1000
    with pytest.raises(YamlLimitError, match="expands to more than the limit of 100,000 nodes") as e:
        load_yaml(text)
    assert e.value.line is not None
    # plain safe_load accepts it: the limit is ours
    assert len(yaml.safe_load(alias_bomb(levels=3))["c"]) == 10


def test_anchors_and_merge_keys_still_load():
    text = "defaults: &d {lr: 0.1, steps: 5}\nrun:\n  <<: *d\n  steps: 7\nsame: *d\nlist: &l [1, 2]\nagain: *l\n"
    assert load_yaml(text) == yaml.safe_load(text)
    assert load_yaml(text)["run"] == {"lr": 0.1, "steps": 7}


@pytest.mark.parametrize(
    "text,message",
    [("[" * 65 + "]" * 65, "nested deeper than the limit of 64"),
     ("a: &a [*a]", "recursive structure"),
     ("[" + ", ".join(["1"] * 100_001) + "]", "more than the limit of 100,000 nodes"),
     # 40 levels, aliased inside 40 more: deep only once expanded
     ("a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 40 + "*a" + "]" * 40, "deeper than the limit of 64 levels once")],
)  # fmt: skip
def test_depth_size_and_recursion_limits(text, message):
    with pytest.raises(YamlLimitError, match=message):
        load_yaml(text)


def test_limits_hold_at_their_edge():
    assert load_yaml("[" * 64 + "]" * 64) is not None
    small = YamlLimits(max_bytes=100, max_depth=3, max_nodes=10)
    assert load_yaml("a: [1, 2, 3]", small) == {"a": [1, 2, 3]}
    with pytest.raises(YamlLimitError, match="longer than the limit of 100 bytes"):
        load_yaml("a: " + "x" * 100, small)


def test_read_yaml_names_the_file_and_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: x\n" + alias_bomb(indent=""), encoding="utf-8")
    with pytest.raises(CorpusError, match=r"p.yaml: line \d+: YAML expands to more than") as e:
        read_yaml(path, "pipeline file")
    assert "\n" not in str(e.value)
    path.write_bytes(b"a: " + b"x" * FILE_LIMITS.max_bytes)
    with pytest.raises(CorpusError, match="p.yaml: larger than the limit of 4,194,304 bytes"):
        read_yaml(path, "pipeline file")


def test_read_yaml_refuses_devices_and_fifos(tmp_path, no_hang):
    with pytest.raises(CorpusError, match="/dev/zero: not a regular file"):
        read_yaml("/dev/zero")
    fifo = tmp_path / "p.yaml"
    os.mkfifo(fifo)
    with pytest.raises(CorpusError, match="p.yaml: not a regular file"):  # and does not wait for a writer
        read_yaml(fifo)


def test_filter_and_model_configs_use_the_bounded_loader(tmp_path):
    from corpus.filter.config import load_filter_config
    from train.model import load_shape

    path = tmp_path / "c.yaml"
    path.write_text("quality:\n  by_domain:\n" + alias_bomb(indent="    "), encoding="utf-8")
    with pytest.raises(CorpusError, match=r"c.yaml: line \d+: YAML expands"):
        load_filter_config(path)
    with pytest.raises(CorpusError, match=r"c.yaml: line \d+: YAML expands"):
        load_shape(None, str(path))


def test_pipeline_alias_bomb_under_sbatch_args_is_a_one_line_error(tmp_path):
    from corpus.pipeline import load_pipeline

    path = tmp_path / "p.yaml"
    path.write_text(pipeline_bomb(tmp_path), encoding="utf-8")
    with pytest.raises(CorpusError, match=r"p.yaml: line \d+: YAML expands to more than"):
        load_pipeline(path)


def pipeline_bomb(folder: Path) -> str:
    return (
        "name: bomb\noutput: out\nexecutor:\n  type: local\n  slurm:\n    sbatch_args:\n"
        + alias_bomb(indent="      ")
        + f"sources:\n  - {{path: {folder}, source: s, domain: d}}\nstages:\n  - ingest: {{}}\n"
    )


def test_front_matter_alias_bomb_is_a_rejected_row(tmp_path):
    path = tmp_path / "bomb.md"
    path.write_text("---\n" + alias_bomb() + "---\nThe body.\n", encoding="utf-8")
    assert path.stat().st_size < 400
    records, _ = read(path, "md")
    assert [r["reason"] for r in records] == ["invalid_front_matter"]
    assert "front matter past a limit" in records[0]["detail"] and "10,000 nodes" in records[0]["detail"]
    assert records[0]["detail"].startswith(f"{path}: line ")
    # ordinary front matter with anchors and merge keys is still metadata
    path.write_text("---\nbase: &b {lang: en}\nmeta:\n  <<: *b\ntitle: T\n---\nThe body.\n", encoding="utf-8")
    (rec,), _ = read(path, "md")
    assert rec.get("reason") is None and rec["metadata"]["meta"] == {"lang": "en"} and rec["text"] == "The body."


# ---------------------------------------------------------------- compressed files, huge records


SMALL = IngestLimits(max_record_bytes=1000, max_decompressed_bytes=50_000, max_decompressed_ratio=20, ratio_checked_after=10_000)


def test_decompression_ratio_limit_rejects_the_file_and_keeps_what_came_before(tmp_path):
    path = tmp_path / "zeros.jsonl.gz"
    lines = b"".join(json.dumps({"text": os.urandom(100).hex()}).encode() + b"\n" for i in range(200))
    path.write_bytes(gzip.compress(lines + b"\0" * 2_000_000))
    records, _ = read(path, "jsonl", IngestLimits(max_decompressed_ratio=20, ratio_checked_after=100_000))
    assert records[-1]["reason"] == "decompression_limit"
    assert records[-1]["detail"].startswith(f"{path}: ") and "--max-decompressed-ratio" in records[-1]["detail"]
    assert 0 < len(records) - 1 <= 200 and all(r.get("reason") is None for r in records[:-1])


def test_decompression_size_limit(tmp_path):
    lines = b"".join(json.dumps({"text": f"line {i} " + os.urandom(30).hex()}).encode() + b"\n" for i in range(2000))
    path = tmp_path / "big.jsonl.gz"
    path.write_bytes(gzip.compress(lines))  # ratio about 2: only the size limit applies
    records, _ = read(path, "jsonl", SMALL)
    assert records[-1]["reason"] == "decompression_limit" and "--max-decompressed-bytes" in records[-1]["detail"]
    assert 300 < len(records) < 2000 and all(r.get("reason") is None for r in records[:-1])
    records, _ = read(path, "jsonl")  # the defaults read it all
    assert len(records) == 2000 and all(r.get("reason") is None for r in records)


def test_zstd_is_bounded_too(tmp_path):
    import zstandard

    path = tmp_path / "zeros.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(b"\n" * 100_000))
    records, stats = read(path, "jsonl", SMALL)
    assert [r["reason"] for r in records] == ["decompression_limit"]
    assert stats.skipped_records["blank_line"] < 100_000


def test_real_compressed_text_stays_under_the_default_ratio():
    """The fixtures' compressed files are real text: far from the default ratio of 100."""
    fixtures = Path(__file__).resolve().parent / "fixtures"
    for path in [*fixtures.rglob("*.gz"), *fixtures.rglob("*.zst")]:
        with gzip.open(path) if path.suffix == ".gz" else open(path, "rb") as f:
            try:
                out = len(f.read())
            except (OSError, EOFError):
                continue
        assert out / path.stat().st_size < IngestLimits().max_decompressed_ratio / 5, path


def test_long_jsonl_line_is_rejected_and_the_next_lines_are_read(tmp_path):
    path = tmp_path / "a.jsonl"
    long_line = json.dumps({"text": "x" * 5000}).encode()
    path.write_bytes(b'{"text": "one"}\n' + long_line + b'\n\n{"text": "three"}\n')
    records, stats = read(path, "jsonl", SMALL)
    assert [r.get("reason") for r in records] == [None, "record_too_large", None]
    assert records[1]["detail"] == f"{path}:2: line of {len(long_line):,} bytes is longer than 1,000 (--max-record-bytes)"
    assert records[1]["text"].startswith('{"text": "xxx') and records[2]["text"] == "three"
    assert stats.skipped_records["blank_line"] == 1


def test_many_blank_lines_are_counted_quickly(tmp_path):
    path = tmp_path / "blank.jsonl"
    path.write_bytes(b"\n" * 5_000_000 + b' \t\n{"text": "last"}')
    records, stats = read(path, "jsonl")
    assert [r["text"] for r in records] == ["last"]
    assert stats.skipped_records["blank_line"] == 5_000_001
    # in runs, not one Python step per line: a 1 MB gzip of newlines holds a billion of them
    from corpus.ingest.readers import read_lines

    runs: list[int] = []
    with open(path, "rb") as f:
        assert [(n, line) for n, line, _ in read_lines(f, 1 << 20, runs.append)] == [(5_000_002, b'{"text": "last"}')]
    assert sum(runs) == 5_000_001 and len(runs) < 20


@pytest.mark.parametrize("fmt,name", [("txt", "a.txt"), ("md", "a.md"), ("html", "a.html")])
def test_files_longer_than_the_record_limit_are_rejected_unread(tmp_path, fmt, name):
    path = tmp_path / name
    path.write_bytes(b"word " * 300)
    records, _ = read(path, fmt, SMALL)
    assert [r["reason"] for r in records] == ["record_too_large"]
    assert records[0]["detail"] == f"{path}: file of 1,500 bytes is longer than 1,000 (--max-record-bytes)"


def test_warc_record_longer_than_the_record_limit(tmp_path):
    import io

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    path = tmp_path / "a.warc.gz"
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for i, size in enumerate([100, 5000, 100]):
            body = b"plain words " * (size // 12)
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/plain")], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(f"http://x/{i}", "response", payload=io.BytesIO(body), http_headers=http))
    records, _ = read(path, "warc", SMALL)
    assert [r.get("reason") for r in records] == [None, "record_too_large", None]
    assert "#record 2" in records[1]["detail"] and "--max-record-bytes" in records[1]["detail"]


def test_gzipped_warc_past_the_decompression_ratio(tmp_path):
    import io

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    path = tmp_path / "zeros.warc.gz"
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for i in range(3):
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/plain")], protocol="HTTP/1.1")
            body = io.BytesIO(b" " * 30_000)
            writer.write_record(writer.create_warc_record(f"http://x/{i}", "response", payload=body, http_headers=http))
    limits = IngestLimits(max_record_bytes=100_000, max_decompressed_ratio=20, ratio_checked_after=10_000)
    records, _ = read(path, "warc", limits)
    assert records[-1]["reason"] == "decompression_limit" and "--max-decompressed-ratio" in records[-1]["detail"]
    assert len(records) < 3


# ---------------------------------------------------------------- devices, FIFOs, symlinks


@pytest.mark.parametrize("name", ["/dev/zero", "fifo"])
def test_named_device_or_fifo_is_a_one_line_error(tmp_path, no_hang, name):
    path = Path(name) if name.startswith("/") else tmp_path / name
    if not name.startswith("/"):
        os.mkfifo(path)
    with pytest.raises(CorpusError, match=r"not a regular file or folder \((character device|FIFO)\)"):
        plan_ingest([path], "s", "d", fmt="txt")


def test_fifo_and_device_inside_a_folder_are_skipped_with_a_reason(tmp_path, no_hang):
    (tmp_path / "a.txt").write_text("some text")
    os.mkfifo(tmp_path / "pipe.txt")
    (tmp_path / "zero.txt").symlink_to("/dev/zero")
    plan = plan_ingest([tmp_path], "s", "d", follow_symlinks=True)
    assert [Path(f.path).name for f in plan.files] == ["a.txt"]
    assert {Path(s["path"]).name: (s["reason"], s.get("detail")) for s in plan.skipped} == {
        "pipe.txt": ("not_a_regular_file", "FIFO"), "zero.txt": ("not_a_regular_file", "character device")}


def test_symlink_out_of_the_folder_is_skipped_with_a_warning(tmp_path, capsys):
    secret = tmp_path / "secret.md"
    secret.write_text("# not for the corpus\n")
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.md").write_text("# a\n")
    (folder / "x.md").symlink_to(secret)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "b.md").write_text("# b\n")
    (folder / "out").symlink_to(tmp_path / "elsewhere")
    (folder / "sub" / "same.md").symlink_to(folder / "a.md")  # stays inside: read
    (folder / "sub" / "up").symlink_to(folder)  # a loop inside
    plan = plan_ingest([folder], "s", "d")
    assert sorted(Path(f.path).relative_to(folder).as_posix() for f in plan.files) == ["a.md", "sub/same.md"]
    reasons = {Path(s["path"]).relative_to(folder).as_posix(): s["reason"] for s in plan.skipped}
    assert reasons == {"out": "symlink_outside", "x.md": "symlink_outside", "sub/up": "symlink_loop"}
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "docs/out -> " in err and "and 1 more" in err and "--follow-symlinks" in err
    followed = plan_ingest([folder], "s", "d", follow_symlinks=True)
    names = sorted(Path(f.path).relative_to(folder).as_posix() for f in followed.files)
    assert names == ["a.md", "out/b.md", "sub/same.md", "x.md"]
    assert {Path(s["path"]).name: s["reason"] for s in followed.skipped} == {"up": "symlink_loop"}


# ---------------------------------------------------------------- the real command, its peak memory

# Runs the command in a child with its address space capped at 3 GiB (so that a regression fails
# instead of taking the machine down) and reports the child's peak RSS: RUSAGE_CHILDREN of this
# wrapper process holds that child (and its own children) only.
_MEASURE = """
import json, os, resource, signal, subprocess, sys
cap = 3 << 30
def limit():
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=limit,
                     start_new_session=True)
try:
    out, err = p.communicate(timeout=30)
    rc = p.returncode
except subprocess.TimeoutExpired:
    os.killpg(p.pid, signal.SIGKILL)
    out, err = p.communicate()
    rc = "timeout"
print(json.dumps({"rc": rc, "stderr": err, "peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""
GiB_MiB = 1024


def corpus_measured(*args: str, cwd: Path) -> dict:
    exe = Path(sys.executable).parent / "corpus"
    proc = subprocess.run([sys.executable, "-c", _MEASURE, str(exe), "--quiet", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120, check=False)  # fmt: skip
    result = json.loads(proc.stdout)
    assert result["peak_mib"] < GiB_MiB, result
    return result


def ingest_measured(tmp_path: Path, *inputs: str, extra: tuple[str, ...] = ()) -> tuple[dict, dict | None]:
    out = tmp_path / "out"
    result = corpus_measured("ingest", *inputs, "-o", str(out), "--source", "s", "--domain", "d", *extra, cwd=tmp_path)
    card = json.loads((out / "card.json").read_text()) if (out / "card.json").is_file() else None
    return result, card


def rejected_details(out: Path) -> list[str]:
    import polars as pl

    return [d for f in sorted((out / "rejected").glob("*.parquet")) for d in pl.read_parquet(f)["detail"].to_list()]


def gzip_bomb(path: Path, byte: bytes) -> Path:
    """About 1 MB of gzip that decompresses to 1 GiB of `byte` (concatenated members)."""
    member = gzip.compress(byte * (1 << 20))
    with open(path, "wb") as f:
        f.writelines(member for _ in range(1024))
    return path


def test_command_front_matter_alias_bomb(tmp_path):
    (tmp_path / "bomb.md").write_text("---\n" + alias_bomb() + "---\nThe body.\n", encoding="utf-8")
    result, card = ingest_measured(tmp_path, "bomb.md")
    assert result["rc"] == 0, result
    assert card["accounting"][0]["rejected"] == {"invalid_front_matter": 1}
    assert "front matter past a limit" in rejected_details(tmp_path / "out")[0]


def test_command_pipeline_alias_bomb(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# a\n\nSome text.\n")
    (tmp_path / "p.yaml").write_text(pipeline_bomb(tmp_path / "docs"), encoding="utf-8")
    result = corpus_measured("run", "p.yaml", cwd=tmp_path)
    assert result["rc"] == 2, result
    assert result["stderr"].startswith("corpus: error: p.yaml: line ") and result["stderr"].count("\n") == 1
    assert "YAML expands to more than the limit of 100,000 nodes" in result["stderr"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("byte", [b"\0", b"\n"], ids=["zeros", "newlines"])
def test_command_gzip_bomb(tmp_path, byte):
    path = gzip_bomb(tmp_path / "bomb.jsonl.gz", byte)
    assert path.stat().st_size < 1_100_000
    result, card = ingest_measured(tmp_path, path.name)
    assert result["rc"] == 0, result
    assert card["accounting"][0]["rejected"] == {"decompression_limit": 1}
    (detail,) = rejected_details(tmp_path / "out")
    assert detail.startswith("bomb.jsonl.gz: ") and "is over 100 (--max-decompressed-ratio)" in detail


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_command_device_or_fifo_is_a_one_line_error(tmp_path, kind):
    if kind == "fifo":
        os.mkfifo(tmp_path / "fifo.txt")
    name = "fifo.txt" if kind == "fifo" else kind
    result, card = ingest_measured(tmp_path, name, extra=("--format", "txt"))
    assert result["rc"] == 2 and card is None, result
    assert result["stderr"] == f"corpus: error: {name}: not a regular file or folder ({'FIFO' if kind == 'fifo' else 'character device'})\n"


def test_command_symlink_out_of_the_folder(tmp_path):
    (tmp_path / "secret.md").write_text("# Secret\n\nroot:x:0:0 not for the corpus\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A page\n\nSome text worth keeping.\n")
    (tmp_path / "docs" / "x.md").symlink_to(tmp_path / "secret.md")
    result, card = ingest_measured(tmp_path, "docs")
    assert result["rc"] == 0, result
    assert "docs/x.md -> " in result["stderr"] and "--follow-symlinks" in result["stderr"]
    assert card["stage_facts"]["skipped_files"] == [
        {"path": "docs/x.md", "reason": "symlink_outside", "target": str((tmp_path / "secret.md").resolve())}]
    assert card["accounting"][0]["docs_in"] == 1
    # asked for, it is read
    result, card = ingest_measured(tmp_path, "docs", extra=("--follow-symlinks", "--overwrite"))
    assert result["rc"] == 0 and card["accounting"][0]["docs_in"] == 2, result


# ---------------------------------------------------------------- the limits as options


def test_limits_as_cli_flags_and_pipeline_options(tmp_path, capsys):
    from corpus.cli import main, parse_args
    from corpus.ingest import ingest_job
    from corpus.pipeline import load_pipeline

    args = parse_args(["ingest", "x", "-o", "y", "--source", "s", "--domain", "d", "--max-record-bytes",
                                      "2MiB", "--max-decompressed-bytes", "1GB", "--follow-symlinks"])  # fmt: skip
    assert (args.max_record_bytes, args.max_decompressed_bytes, args.max_decompressed_ratio) == (2 << 20, 10**9, 100.0)
    assert args.follow_symlinks
    assert main(["ingest", "x", "-o", "y", "--source", "s", "--domain", "d", "--max-record-bytes", "lots"]) == 2
    assert "not a size: 'lots'" in capsys.readouterr().err

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# a\n")
    (tmp_path / "docs" / "x.md").symlink_to(tmp_path / "elsewhere.md")
    (tmp_path / "elsewhere.md").write_text("# b\n")
    (tmp_path / "p.yaml").write_text(
        "name: p\noutput: out\nsources:\n  - {path: docs, source: s, domain: d, follow_symlinks: true}\n"
        "stages:\n  - ingest: {max_record_bytes: 1MiB, max_decompressed_ratio: 50}\n",
        encoding="utf-8",
    )
    config, stages = load_pipeline(tmp_path / "p.yaml")
    limits = stages[0][1].limits()
    assert (limits.max_record_bytes, limits.max_decompressed_ratio) == (1 << 20, 50)
    assert config.sources[0].follow_symlinks
    job = ingest_job([{"paths": [str(tmp_path / "docs")], "source": "s", "domain": "d", "follow_symlinks": True}], "p", limits=limits)
    assert job.config["limits"]["max_record_bytes"] == 1 << 20
    assert job.inputs[0]["files"] == 2


def test_corpus_ingest_applies_its_limit_options(tmp_path, capsys):
    """The command's limit options reach the readers (they are IngestConfig's fields); a value the
    config refuses is one line naming the option."""
    import pyarrow.parquet as pq

    from corpus.cli import main

    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"text": "short"}) + "\n" + json.dumps({"text": "y" * 3000}) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["-q", "ingest", str(path), "-o", str(out), "--source", "s", "--domain", "d", "--max-record-bytes", "1000"]) == 0
    rejected = pq.read_table(next((out / "rejected").glob("*.parquet"))).to_pylist()
    assert [r["reason"] for r in rejected] == ["record_too_large"] and "longer than 1,000 (--max-record-bytes)" in rejected[0]["detail"]
    capsys.readouterr()
    assert main(["-q", "ingest", str(path), "-o", str(tmp_path / "o2"), "--source", "s", "--domain", "d", "--max-pages", "0"]) == 2
    assert capsys.readouterr().err.strip() == "corpus: error: --max-pages: Input should be greater than 0"
