"""Domain tokenizer, Arrow token shards and `corpus shards verify`, on the bundled sample."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpus.cli import main
from corpus.document import records_to_table, PartWriter, DATA_DIR

from tests.conftest import GLOSSARY as INSURANCE
from tests.conftest import build_token_pipeline

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def pipeline_out(tmp_path_factory) -> Path:
    """ingest -> tokenizer -> tokenize on the glossary and the Python tutorial, as a pipeline."""
    return build_token_pipeline(tmp_path_factory.mktemp("pipeline"))


@pytest.fixture(scope="session")
def tokdir(pipeline_out) -> Path:
    return pipeline_out / "01-tokenizer"


@pytest.fixture(scope="session")
def shards(pipeline_out) -> Path:
    return pipeline_out / "02-tokenize"


def _index(folder: Path) -> dict:
    return json.loads((folder / "index.json").read_text())


def _read_shard(path: Path) -> pa.Table:
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def _all_rows(folder: Path) -> pa.Table:
    return pa.concat_tables(_read_shard(folder / s["file"]) for s in _index(folder)["shards"])


def make_dataset(folder: Path, records: list[dict], parts: int = 1) -> Path:
    """A dataset folder written with the foundation's writer and card, for inputs ingest would refuse;
    `parts`: records dealt out round-robin into that many data files."""
    from corpus.cards import write_card

    for rank in range(parts):
        writer = PartWriter(folder / DATA_DIR, rank)
        writer.write(records_to_table(records[rank::parts], source="handmade", domain="insurance").drop_columns(["reason", "detail"]))
        writer.close()
    n = len(records)
    write_card(folder, name=folder.name, stage="ingest", config={}, inputs=[], accounting={"stage": "ingest", "docs_in": n, "kept": n, "rejected": {}},
               stage_facts={}, executor={}, fingerprint="test", command=["test"], pipeline_file=None)  # fmt: skip
    return folder


# ---------------------------------------------------------------- the tokenizer


def test_tokenizer_loads_with_autotokenizer_and_has_chat_template(tokdir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokdir))
    assert len(tok) == 1000
    assert (tok.bos_token, tok.eos_token, tok.pad_token, tok.unk_token) == ("<|begin_of_text|>", "<|end_of_text|>", "<|pad|>", "<|unk|>")
    config = json.loads((tokdir / "tokenizer_config.json").read_text())
    assert "<|assistant|>" in config["chat_template"]
    text = tok.apply_chat_template(
        [{"role": "user", "content": "What is a deductible?"}, {"role": "assistant", "content": "The amount you pay."}],
        tokenize=False,
    )
    assert text == "<|begin_of_text|><|user|>\nWhat is a deductible?<|end|>\n<|assistant|>\nThe amount you pay.<|end|>\n"
    ids = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    assert ids[-2] == tok.convert_tokens_to_ids("<|assistant|>")  # role markers are single special tokens
    sentence = "Your deductible and coinsurance apply before the plan pays."
    assert tok.decode(tok(sentence)["input_ids"]) == sentence


def test_tokenizer_card_reports_fertility_against_general_only_tokenizer(tokdir):
    card = json.loads((tokdir / "card.json").read_text())
    report = card["report"]
    assert report["reference"] == "a 1,000-token BPE trained on domain `general` only"  # the same size as ours
    domain = report["fertility"]["domain"]
    assert domain["ours"]["words"] > 0 and domain["ours"]["words"] == domain["reference"]["words"]
    # Trained half on the glossary, ours cuts held-out insurance text into fewer tokens than a
    # tokenizer of the same size that only saw the Python docs.
    assert domain["ours"]["tokens_per_word"] < domain["reference"]["tokens_per_word"]
    assert set(card["sample"]) == {"insurance", "general"}
    by_term = {e["term"]: e for e in report["terms"]}
    assert by_term["deductible"]["ours"] and "".join(by_term["premium"]["ours"]) == " premium"
    assert report["single_token_terms"] == [e["term"] for e in report["terms"] if len(e["ours"]) == 1]
    assert len(report["single_token_terms"]) > len(report["single_token_terms_reference"])
    readme = (tokdir / "README.md").read_text()
    assert "## Domain report" in readme and "tokens/word" in readme


def test_extend_appends_domain_merges_and_keeps_base_merges(tmp_path, pipeline_out):
    base = tmp_path / "base"
    dataset = str(pipeline_out / "00-ingest")
    assert main(["-q", "tokenizer", "train", dataset, "-o", str(base), "--vocab-size", "600", "--weights", "general=1", "--no-compare"]) == 0
    extended = tmp_path / "extended"
    assert main(["-q", "tokenizer", "train", dataset, "-o", str(extended), "--vocab-size", "800", "--extend", str(base)]) == 0
    base_spec = json.loads((base / "tokenizer.json").read_text())["model"]
    ext_spec = json.loads((extended / "tokenizer.json").read_text())["model"]
    assert ext_spec["merges"][: len(base_spec["merges"])] == base_spec["merges"]
    assert all(ext_spec["vocab"][t] == i for t, i in base_spec["vocab"].items())
    card = json.loads((extended / "card.json").read_text())
    assert card["tokenizer"]["vocab_size"] == 800 and card["tokenizer"]["merges_added"] > 0
    fert = card["report"]["fertility"]["domain"]
    assert fert["ours"]["tokens"] < fert["reference"]["tokens"]


def test_tokenizer_bad_options(tmp_path, pipeline_out, capsys):
    dataset = str(pipeline_out / "00-ingest")
    out = tmp_path / "t"
    assert main(["tokenizer", "train", dataset, "-o", str(out), "--vocab-size", "600", "--weights", "insurance"]) == 2
    assert "--weights" in capsys.readouterr().err
    assert main(["tokenizer", "train", dataset, "-o", str(out), "--vocab-size", "600", "--weights", "legal=1"]) == 2
    assert "no documents of domain legal" in capsys.readouterr().err
    assert main(["tokenizer", "train", dataset, "-o", str(out), "--vocab-size", "10"]) == 2
    assert "--vocab-size" in capsys.readouterr().err
    assert main(["tokenizer", "train", dataset, "-o", str(out), "--vocab-size", "600", "--extend", str(tmp_path)]) == 2
    assert "not a tokenizer folder" in capsys.readouterr().err
    assert not out.exists()


# ---------------------------------------------------------------- shards


def test_shards_schema_accounting_and_eos(shards, tokdir, pipeline_out):
    index = _index(shards)
    assert index["dtype"] == "uint16" and index["eos_id"] == 1 and index["bos_id"] is None
    from corpus.shard_format import tokenizer_sha256

    assert index["tokenizer"]["sha256"] == tokenizer_sha256(tokdir)
    assert len(index["shards"]) > 2  # the shard size target was honoured
    rows = _all_rows(shards)
    assert rows.schema.field("input_ids").type == pa.list_(pa.field("item", pa.uint16(), nullable=False))
    assert rows.column_names == ["input_ids", "domain", "source", "id"]
    ingest_card = json.loads((pipeline_out / "00-ingest" / "card.json").read_text())
    card = json.loads((shards / "card.json").read_text())
    acc = card["accounting"][-1]
    assert acc["stage"] == "tokenize" and acc["docs_in"] == ingest_card["stats"]["docs"]
    assert acc["docs_in"] == acc["kept"] + sum(acc["rejected"].values()) == rows.num_rows
    assert index["totals"]["docs"] == rows.num_rows
    assert sorted(rows.column("id").to_pylist()) == sorted(pq.read_table(pipeline_out / "00-ingest" / "data").column("id").to_pylist())
    ids = rows.column("input_ids").to_pylist()
    assert {row[-1] for row in ids} == {1}  # every document ends with EOS
    assert all(1 not in row[:-1] for row in ids)  # and only there
    assert sum(len(r) for r in ids) == index["totals"]["tokens"]


def test_shards_decode_back_to_the_text(shards, tokdir, pipeline_out):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokdir / "tokenizer.json"))
    texts: dict[str, set[str]] = {}  # an id is a hash of the normalised text: texts that differ in spacing share one
    for doc_id, text in zip(*pq.read_table(pipeline_out / "00-ingest" / "data", columns=["id", "text"]).to_pydict().values()):
        texts.setdefault(doc_id, set()).add(text)
    rows = _read_shard(shards / _index(shards)["shards"][0]["file"]).slice(0, 20)
    for doc_id, ids in zip(rows.column("id").to_pylist(), rows.column("input_ids").to_pylist()):
        assert tok.decode(ids[:-1], skip_special_tokens=False) in texts[doc_id]


def test_val_split_has_minimum_per_domain_and_is_deterministic(shards, pipeline_out, tmp_path):
    index = _index(shards)
    val = [s for s in index["shards"] if s["split"] == "val"]
    val_by_domain: dict[str, int] = {}
    for s in val:
        for d, v in s["by_domain"].items():
            val_by_domain[d] = val_by_domain.get(d, 0) + v["docs"]
    assert val_by_domain.keys() == {"insurance", "general"} and min(val_by_domain.values()) >= 5
    # Same seed: byte-identical shards. Another seed: the same documents in another order, same split.
    same = tmp_path / "same"
    other = tmp_path / "other"
    common = [str(pipeline_out / "00-ingest"), "--tokenizer", str(pipeline_out / "01-tokenizer"), "--shard-size-mb", "0.05",
              "--min-val-docs-per-domain", "5"]  # fmt: skip
    assert main(["-q", "tokenize", *common, "-o", str(same)]) == 0
    assert main(["-q", "tokenize", *common, "-o", str(other), "--seed", "7"]) == 0
    assert [s["sha256"] for s in _index(same)["shards"]] == [s["sha256"] for s in index["shards"]]
    ids_0 = _all_rows(shards).column("id").to_pylist()
    ids_7 = _all_rows(other).column("id").to_pylist()
    assert ids_0 != ids_7 and sorted(ids_0) == sorted(ids_7)
    val_ids = lambda f: sorted(i for s in _index(f)["shards"] if s["split"] == "val" for i in _read_shard(f / s["file"]).column("id").to_pylist())  # noqa: E731
    assert val_ids(shards) == val_ids(other)


def test_shard_opens_memory_mapped_without_copy(shards):
    path = shards / _index(shards)["shards"][0]["file"]
    before = pa.total_allocated_bytes()
    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_file(source).read_all()
        values = table.column("input_ids").chunk(0).values
        assert table.column("input_ids").num_chunks == 1  # one flat token stream per shard
        tokens = np.frombuffer(values.buffers()[1], dtype=np.uint16, count=len(values), offset=values.offset * 2)
        assert pa.total_allocated_bytes() == before  # nothing was copied into Arrow's memory pool
        assert tokens.size == _index(shards)["shards"][0]["tokens"]


def test_shards_load_with_datasets(shards, tmp_path):
    import datasets

    index = _index(shards)
    files = {"train": sorted(str(shards / s["file"]) for s in index["shards"] if s["split"] == "train"),
             "validation": sorted(str(shards / s["file"]) for s in index["shards"] if s["split"] == "val")}  # fmt: skip
    ds = datasets.load_dataset("arrow", data_files=files, cache_dir=str(tmp_path / "cache"))
    assert ds["train"].num_rows == index["totals"]["by_split"]["train"]["docs"]
    assert ds["validation"].num_rows == index["totals"]["by_split"]["val"]["docs"]
    assert ds["train"][0]["input_ids"][-1] == index["eos_id"]


def test_empty_documents_are_rejected_with_reason_and_bos(tmp_path, tokdir, capsys):
    texts = ["A deductible is what you pay first.", "   \n\t ", "", "Premiums are paid monthly."]
    dataset = make_dataset(tmp_path / "in", [{"text": t, "id": f"doc{i}"} for i, t in enumerate(texts)])
    out = tmp_path / "tokens"
    assert main(["-q", "tokenize", str(dataset), "-o", str(out), "--tokenizer", str(tokdir), "--bos", "--val-fraction", "0"]) == 0
    rejected = pq.read_table(out / "rejected.parquet").to_pylist()
    assert sorted(r["id"] for r in rejected) == ["doc1", "doc2"] and {r["reason"] for r in rejected} == {"empty"}
    card = json.loads((out / "card.json").read_text())
    assert card["accounting"][-1] == {"stage": "tokenize", "docs_in": 4, "kept": 2, "rejected": {"empty": 2}}
    rows = _all_rows(out).column("input_ids").to_pylist()
    assert len(rows) == 2 and all(r[0] == 0 and r[-1] == 1 for r in rows)
    assert main(["shards", "verify", str(out)]) == 0
    assert "ok" in capsys.readouterr().out


def test_verify_fails_on_corrupt_or_missing_shard(tmp_path, shards, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(shards, copy)
    assert main(["shards", "verify", str(copy)]) == 0
    first, second = (copy / s["file"] for s in _index(copy)["shards"][:2])
    data = bytearray(first.read_bytes())
    data[len(data) // 2] ^= 0xFF
    first.write_bytes(bytes(data))
    assert main(["shards", "verify", str(copy)]) == 1
    assert f"{first}: sha256 differs" in capsys.readouterr().err
    second.unlink()
    assert main(["shards", "verify", str(copy)]) == 1
    assert "missing" in capsys.readouterr().err
    assert main(["shards", "verify", str(tmp_path)]) == 2
    assert "not a token-shards folder" in capsys.readouterr().err


def test_tokenize_bad_input(tmp_path, pipeline_out, tokdir, capsys):
    from tokenizers import Tokenizer, models

    dataset = str(pipeline_out / "00-ingest")
    out = tmp_path / "tokens"
    # a folder that is not a tokenizer, and a tokenizer.json that is not one
    assert main(["tokenize", dataset, "-o", str(out), "--tokenizer", str(pipeline_out / "00-ingest")]) == 2
    assert "not a tokenizer folder" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "tokenizer.json").write_text('{"model": "nope"}')
    assert main(["tokenize", dataset, "-o", str(out), "--tokenizer", str(broken)]) == 2
    assert f"{broken / 'tokenizer.json'}: not a valid tokenizer file" in capsys.readouterr().err
    # a vocabulary larger than the dtype asked for
    big = tmp_path / "big"
    big.mkdir()
    vocab = {f"w{i}": i for i in range(70_000)}
    Tokenizer(models.WordLevel(vocab, unk_token="w0")).save(str(big / "tokenizer.json"))
    (big / "tokenizer_config.json").write_text(json.dumps({"eos_token": "w1"}))
    assert main(["tokenize", dataset, "-o", str(out), "--tokenizer", str(big), "--dtype", "uint16"]) == 2
    assert "too large for uint16" in capsys.readouterr().err
    # a tokenizer with no EOS named
    (big / "tokenizer_config.json").write_text("{}")
    assert main(["tokenize", dataset, "-o", str(out), "--tokenizer", str(big)]) == 2
    assert "no eos_token" in capsys.readouterr().err
    # text that is not valid UTF-8 (ingest never writes it; a foreign Parquet file might)
    bad_text = pa.Array.from_buffers(pa.large_string(), 2, [None, pa.py_buffer(np.array([0, 2, 6], np.int64).tobytes()), pa.py_buffer(b"okbad\xff")])
    folder = make_dataset(tmp_path / "bad-utf8", [{"text": "ok", "id": "a"}, {"text": "bad", "id": "b"}])
    part = next((folder / "data").glob("*.parquet"))
    table = pq.read_table(part)
    pq.write_table(table.set_column(table.schema.get_field_index("text"), "text", bad_text), part)
    assert main(["tokenize", str(folder), "-o", str(out), "--tokenizer", str(tokdir)]) == 2
    assert f"{part}: document b: text is not valid UTF-8" in capsys.readouterr().err
    # an input that is not a dataset folder
    assert main(["tokenize", str(tmp_path), "-o", str(out), "--tokenizer", str(tokdir)]) == 2
    assert "not a dataset folder" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "tokens.partial").exists()
    # an existing output is not replaced without --overwrite
    out.mkdir()
    assert main(["tokenize", dataset, "-o", str(out), "--tokenizer", str(tokdir)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_uint32_when_asked(tmp_path, pipeline_out, tokdir):
    out = tmp_path / "t32"
    assert main(["-q", "tokenize", str(pipeline_out / "00-ingest"), "-o", str(out), "--tokenizer", str(tokdir), "--dtype", "uint32"]) == 0
    assert _index(out)["dtype"] == "uint32"
    assert _read_shard(out / _index(out)["shards"][0]["file"]).schema.field("input_ids").type.value_type == pa.uint32()
    assert main(["shards", "verify", str(out)]) == 0


def test_only_empty_documents_give_an_empty_but_valid_output(tmp_path, tokdir, capsys):
    dataset = make_dataset(tmp_path / "in", [{"text": " ", "id": "a"}, {"text": "\n\n", "id": "b"}])
    out = tmp_path / "tokens"
    assert main(["-q", "tokenize", str(dataset), "-o", str(out), "--tokenizer", str(tokdir)]) == 0
    assert _index(out)["shards"] == [] and _index(out)["totals"]["docs"] == 0
    assert pq.read_table(out / "rejected.parquet").num_rows == 2
    assert json.loads((out / "card.json").read_text())["accounting"][-1]["rejected"] == {"empty": 2}
    assert main(["shards", "verify", str(out)]) == 0


def test_pipeline_tokenize_stage_needs_a_tokenizer(tmp_path, tokdir, capsys):
    def pipeline(tokenize_options: str) -> str:
        path = tmp_path / "p.yaml"
        path.write_text(
            f"name: t\noutput: out\nexecutor: {{type: local, tasks: 1}}\n"
            f"sources:\n  - {{path: {INSURANCE}, source: healthcare_gov, domain: insurance}}\n"
            f"stages:\n  - ingest: {{}}\n  - tokenize: {tokenize_options}\n",
            encoding="utf-8",
        )
        return str(path)

    assert main(["-q", "run", pipeline("{}")]) == 2
    assert "needs `tokenizer: PATH` or a 'tokenizer' stage before it" in capsys.readouterr().err
    assert main(["-q", "run", pipeline(f"{{tokenizer: {tokdir}, bos: true}}")]) == 0
    index = _index(tmp_path / "out" / "01-tokenize")
    assert index["bos_id"] == 0 and index["totals"]["docs"] > 0
    # the number of tasks does not change the shards: the stage run again with more is up to date
    from types import SimpleNamespace

    from corpus.executors import ExecutorConfig
    from corpus.stages import StageRun, stage
    from corpus.tokenize.stages import TokenizeStageConfig

    out = tmp_path / "out" / "01-tokenize"
    before = (out / "card.json").stat().st_mtime_ns
    options = TokenizeStageConfig(tokenizer=str(tokdir), bos=True)

    def rerun(options):
        return stage("tokenize").run(StageRun(kind="tokenize", index=1, options=options, out=out, name=out.name,
                                              written=[tmp_path / "out" / "00-ingest"], pipeline=SimpleNamespace(executor=ExecutorConfig(tasks=2)),
                                              pipeline_file=tmp_path / "p.yaml", output=tmp_path / "out"))  # fmt: skip

    assert rerun(options) == out
    assert (out / "card.json").stat().st_mtime_ns == before
    assert rerun(options.model_copy(update={"seed": 1})) == out
    assert (out / "card.json").stat().st_mtime_ns != before  # another seed is another output
    assert main(["-q", "run", pipeline("{unknown_key: 1}")]) == 2
    assert "stages.1.tokenize.unknown_key: unknown key" in capsys.readouterr().err


def test_tokenizer_training_is_reproducible(tmp_path, pipeline_out):
    from corpus.shard_format import tokenizer_sha256

    dataset = str(pipeline_out / "00-ingest")
    for name in ("a", "b"):
        assert main(["-q", "tokenizer", "train", dataset, "-o", str(tmp_path / name), "--vocab-size", "500", "--no-compare"]) == 0
    assert tokenizer_sha256(tmp_path / "a") == tokenizer_sha256(tmp_path / "b")


# ---------------------------------------------------------------- reruns


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(f.relative_to(folder)): f.stat().st_mtime_ns for f in sorted(folder.rglob("*"))}


def _check_rerun_contract(stage: str, args: list[str], same: list[str], out, capsys) -> None:
    """Run; rerun `same` (up to date, nothing touched); another seed (refused, nothing touched);
    with --overwrite (redone); then that is up to date."""
    assert main(args) == 0
    before = _mtimes(out)
    capsys.readouterr()
    assert main(same) == 0
    assert f"{stage}: {out} is up to date (same inputs and config); nothing to do" in capsys.readouterr().err
    assert _mtimes(out) == before
    assert main([*args, "--seed", "1"]) == 2
    assert f"{out}: was made by another configuration; pass --overwrite to replace it" in capsys.readouterr().err
    assert _mtimes(out) == before
    assert main([*args, "--seed", "1", "--overwrite"]) == 0
    assert json.loads((out / "card.json").read_text())["config"]["seed"] == 1
    assert (out / "card.json").stat().st_mtime_ns != before["card.json"]
    assert main([*args, "--seed", "1"]) == 0 and "is up to date" in capsys.readouterr().err


def test_tokenizer_train_rerun_is_up_to_date_and_another_config_needs_overwrite(tmp_path, pipeline_out, capsys):
    dataset = str(pipeline_out / "00-ingest")
    base, out = tmp_path / "base", tmp_path / "tok"
    assert main(["-q", "tokenizer", "train", dataset, "-o", str(base), "--vocab-size", "600", "--weights", "general=1", "--no-compare"]) == 0
    args = ["tokenizer", "train", dataset, "-o", str(out), "--vocab-size", "800", "--no-compare", "--extend", str(base)]
    _check_rerun_contract("tokenizer", args, args, out, capsys)
    # the base tokenizer is an input: another base at the same path is another run
    assert main(["-q", "tokenizer", "train", dataset, "-o", str(base), "--vocab-size", "650", "--weights", "general=1", "--no-compare",
                 "--overwrite"]) == 0  # fmt: skip
    assert main([*args, "--seed", "1"]) == 2
    assert f"{out}: was made by another configuration" in capsys.readouterr().err


def test_tokenize_rerun_is_up_to_date_and_another_config_needs_overwrite(tmp_path, pipeline_out, tokdir, capsys):
    out = tmp_path / "tokens"
    args = ["tokenize", str(pipeline_out / "00-ingest"), "-o", str(out), "--tokenizer", str(tokdir), "--shard-size-mb", "0.05"]
    _check_rerun_contract("tokenize", args, [*args, "--tasks", "2"], out, capsys)  # the number of tasks is not an option that counts
    # another input dataset is another run too
    other = make_dataset(tmp_path / "other", [{"text": "a premium and a deductible", "id": "x"}])
    assert main(["tokenize", str(other), *args[2:], "--seed", "1"]) == 2
    assert f"{out}: was made by another configuration" in capsys.readouterr().err


def test_the_pipeline_outputs_are_up_to_date_for_the_same_commands(pipeline_out, capsys):
    """The CLI and the pipeline stages compute the same fingerprint."""
    dataset, tok, shards = pipeline_out / "00-ingest", pipeline_out / "01-tokenizer", pipeline_out / "02-tokenize"
    before = _mtimes(pipeline_out)
    capsys.readouterr()
    assert main(["tokenizer", "train", str(dataset), "-o", str(tok), "--vocab-size", "1000", "--weights", "insurance=0.5,general=0.5"]) == 0
    assert f"tokenizer: {tok} is up to date" in capsys.readouterr().err
    assert main(["tokenize", str(dataset), "-o", str(shards), "--tokenizer", str(tok), "--shard-size-mb", "0.05",
                 "--min-val-docs-per-domain", "5"]) == 0  # fmt: skip
    assert f"tokenize: {shards} is up to date" in capsys.readouterr().err
    assert _mtimes(pipeline_out) == before


# ---------------------------------------------------------------- tasks


def _split_ids(folder: Path) -> dict[str, list[str]]:
    ids: dict[str, list[str]] = {}
    for s in _index(folder)["shards"]:
        ids.setdefault(s["split"], []).extend(_read_shard(folder / s["file"]).column("id").to_pylist())
    return ids


@pytest.fixture(scope="session")
def four_part_dataset(pipeline_out, tmp_path_factory) -> Path:
    """The sample's documents in four data files, with a blank one and two texts that share an id."""
    rows = pq.read_table(pipeline_out / "00-ingest" / "data", columns=["id", "text", "domain"]).to_pylist()
    twins = [{"id": "twin", "text": "Your deductible, first.", "domain": "insurance"},
             {"id": "twin", "text": "Your deductible,  second.", "domain": "insurance"}]  # fmt: skip
    # dealt out round-robin: the first twin goes to file 1, the second to file 3, which with 3 tasks
    # is read by task 0, so that the tasks' order differs from the input's
    records = rows[:201] + twins[:1] + rows[201:302] + twins[1:] + rows[302:] + [{"id": "blank", "text": "  \n", "domain": "general"}]
    assert records.index(twins[0]) % 4 == 1 and records.index(twins[1]) % 4 == 3
    return make_dataset(tmp_path_factory.mktemp("parts") / "ds", records, parts=4)


def _parts_options(dataset: Path, tokdir: Path) -> list[str]:
    return [str(dataset), "--tokenizer", str(tokdir), "--shard-size-mb", "0.03", "--min-val-docs-per-domain", "5"]


@pytest.fixture(scope="session")
def one_task_shards(four_part_dataset, tokdir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one-task") / "t1"
    assert main(["-q", "tokenize", *_parts_options(four_part_dataset, tokdir), "-o", str(out), "--tasks", "1"]) == 0
    return out


def test_same_shards_for_any_number_of_tasks(four_part_dataset, tokdir, one_task_shards, tmp_path):
    from corpus.shard_format import id_hashes, mix_seed

    outs = {1: one_task_shards, 3: tmp_path / "t3"}
    assert main(["-q", "tokenize", *_parts_options(four_part_dataset, tokdir), "-o", str(outs[3]), "--tasks", "3"]) == 0
    assert main(["shards", "verify", str(outs[3])]) == 0
    one, three = _index(outs[1]), _index(outs[3])
    assert len(one["shards"]) > 4  # several groups, so the shard pass has work for every task
    assert [(s["file"], s["sha256"]) for s in one["shards"]] == [(s["file"], s["sha256"]) for s in three["shards"]]
    assert one["totals"] == three["totals"] and one["totals"]["docs"] == len(pq.read_table(four_part_dataset / "data")) - 1
    assert pq.read_table(outs[1] / "rejected.parquet").equals(pq.read_table(outs[3] / "rejected.parquet"))
    assert json.loads((outs[3] / "card.json").read_text())["accounting"][-1]["rejected"] == {"empty": 1}
    # each split, shard after shard, is in the order of the seeded key
    for split, ids in _split_ids(outs[3]).items():
        keys = mix_seed(id_hashes(ids), 0)
        assert (np.diff(keys.astype(np.float64)) >= 0).all(), split
    # the two texts that share an id: both tokenized, in their order in the input (file, then row)
    rows = _all_rows(outs[3])
    twins = [r for r, i in zip(rows.column("input_ids").to_pylist(), rows.column("id").to_pylist()) if i == "twin"]
    tok = __import__("tokenizers").Tokenizer.from_file(str(tokdir / "tokenizer.json"))
    assert [tok.decode(t[:-1]) for t in twins] == ["Your deductible, first.", "Your deductible,  second."]
    # the validation minimum holds per domain, with the same documents
    val_domains = rows.filter(pa.array([i in set(_split_ids(outs[3]).get("val", [])) for i in rows.column("id").to_pylist()]))
    assert min(val_domains.group_by("domain").aggregate([("id", "count")]).column("id_count").to_pylist()) >= 5
    assert sorted(_split_ids(outs[1])["val"]) == sorted(_split_ids(outs[3])["val"])


def test_a_failed_task_is_resumed_by_the_rerun(four_part_dataset, tokdir, one_task_shards, tmp_path, monkeypatch, capsys):
    from corpus.tokenize import tasks

    common = _parts_options(four_part_dataset, tokdir)
    clean = one_task_shards
    out = tmp_path / "out"
    original = tasks.ShardStep.run

    def fail_rank_1(self, data=None, rank=0, world_size=1):
        if rank == 1:
            raise OSError("disk full")
        yield from original(self, data, rank, world_size)

    monkeypatch.setattr(tasks.ShardStep, "run", fail_rank_1)
    assert main(["-q", "tokenize", *common, "-o", str(out), "--tasks", "2"]) == 1
    assert "a task of the shards pass failed (OSError: disk full)" in capsys.readouterr().err
    assert not out.exists() and (tmp_path / "out.partial" / "_work" / "logs-tokenize" / "completions" / "00001").exists()
    monkeypatch.setattr(tasks.ShardStep, "run", original)

    def must_not_run(self, data=None, rank=0, world_size=1):
        raise AssertionError("the tokenize pass had completed: the rerun must not redo it")

    monkeypatch.setattr(tasks.TokenizeStep, "run", must_not_run)
    assert main(["-q", "tokenize", *common, "-o", str(out), "--tasks", "2"]) == 0
    assert _index(out)["shards"] == _index(clean)["shards"]
    assert not (tmp_path / "out.partial").exists()


def test_shard_cuts_and_groups():
    from corpus.tokenize.tasks import cut_points, plan_groups

    # one huge document among small ones: every piece still holds a document
    cuts = cut_points(np.array([1000, 1, 1, 1]), 3)
    assert cuts[0] == 0 and cuts[-1] == 4 and all(b > a for a, b in zip(cuts, cuts[1:])) and len(cuts) == 4
    # buckets: train docs, train tokens, val docs, val tokens
    per_bucket = np.array([[2, 600, 0, 0], [0, 0, 1, 50], [3, 900, 0, 0], [1, 100, 1, 60]])
    groups = plan_groups(per_bucket, itemsize=2, shard_bytes=1000)
    assert [(g["split"], g["buckets"], g["first"], g["pieces"], g["docs"]) for g in groups] == [
        ("train", [0], 0, 1, 2), ("train", [2], 1, 2, 3), ("train", [3], 3, 1, 1), ("val", [1, 3], 0, 1, 2)]  # fmt: skip
