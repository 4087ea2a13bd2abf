"""corpus dedup: exact and near duplicates, keep rule, determinism, saved index, bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corpus.cli import main
from corpus.dedup import minhash

REPO = Path(__file__).resolve().parents[1]
ARTICLES = sorted((REPO / "sample/insurance/healthcare-gov-2013/articles").glob("*.md"))


def real_texts(count: int) -> list[str]:
    """Real insurance articles of at least 150 words (bundled sample, public domain)."""
    out = []
    for path in ARTICLES:
        text = path.read_text(encoding="utf-8")
        if len(text.split()) >= 150:
            out.append(text)
        if len(out) == count:
            return out
    raise AssertionError("the bundled sample has too few long articles")


def edit_words(text: str, changes: int, seed: int) -> str:
    rng = random.Random(seed)
    words = text.split()
    for _ in range(changes):
        words[rng.randrange(len(words))] = rng.choice(["policy", "premium", "coverage", "deductible"])
    return " ".join(words)


def write_jsonl(path: Path, texts: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for i, text in enumerate(texts):
            f.write(json.dumps({"text": text, "url": f"doc-{i}"}) + "\n")
    return path


def ingest(tmp: Path, name: str, texts: list[str], source: str = "src", tasks: int = 1, files: int = 1) -> Path:
    chunks = [texts[i::files] for i in range(files)]
    paths = [str(write_jsonl(tmp / f"{name}-raw" / f"part{i}.jsonl", chunk)) for i, chunk in enumerate(chunks)]
    out = tmp / name
    assert main(["-q", "ingest", *paths, "-o", str(out), "--source", source, "--domain", "dom", "--tasks", str(tasks)]) == 0
    return out


def dataset_with(tmp: Path, name: str, texts: list[str]) -> Path:
    """A dataset folder holding exactly these texts (ingest would already reject empty ones)."""
    from corpus.document import records_to_table, split_kept_rejected

    folder = tmp / name
    (folder / "data").mkdir(parents=True)
    table, _ = split_kept_rejected(records_to_table([{"text": t, "url": f"doc-{i}"} for i, t in enumerate(texts)], "src", "dom"))
    pq.write_table(table, folder / "data" / "part-00000-0000.parquet")
    (folder / "card.json").write_text(json.dumps({"name": name, "stage": "test", "accounting": []}))
    return folder


def rows(folder: Path, kind: str) -> pl.DataFrame:
    files = sorted((folder / kind).glob("*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal") if files else pl.DataFrame()


def card(folder: Path) -> dict:
    return json.loads((folder / "card.json").read_text())


# ---------------------------------------------------------------- shingles and signatures


def test_tokens_are_unicode_aware():
    texts = pa.array(["Hello, World! hello world", "这是一个没有空格的句子", "ภาษาไทยไม่มีช่องว่าง", "", "Ünïcödé—wörds"])
    tokens, offsets = minhash.token_hashes(texts)[:2]
    counts = np.diff(offsets)
    assert counts[0] == 4 and tokens[offsets[0]] == tokens[offsets[0] + 2]  # lower-cased: hello == Hello
    assert counts[1] == 11  # one token per Han character, not one giant word
    assert counts[2] >= 10
    assert counts[3] == 0
    assert counts[4] == 2  # the em dash separates, accented letters do not


def test_signature_agreement_estimates_jaccard():
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(3000)]
    a_perm, b_perm = minhash.permutations(7, 256)
    errors = []
    for k in range(40):
        base = [rng.choice(vocab) for _ in range(200)]
        edited = list(base)
        for _ in range(rng.randint(0, 40)):
            edited[rng.randrange(len(edited))] = rng.choice(vocab)
        sig = minhash.minhash_signatures(pa.array([" ".join(base), " ".join(edited)]), 5, a_perm, b_perm).sig
        shingles = [{tuple(ws[i : i + 5]) for i in range(len(ws) - 4)} for ws in (base, edited)]
        true = len(shingles[0] & shingles[1]) / len(shingles[0] | shingles[1])
        errors.append((sig[0] == sig[1]).mean() - true)
    assert abs(np.mean(errors)) < 0.02  # unbiased
    assert np.std(errors) < 0.06  # about sqrt(J(1-J)/256)


def test_short_documents_have_shingles_and_empty_ones_none():
    a_perm, b_perm = minhash.permutations(1, 16)
    shingles = minhash.minhash_signatures(pa.array(["", "one", "two words", "spam " * 50, None]), 5, a_perm, b_perm).shingles
    assert shingles.tolist() == [0, 1, 1, 46, 0]


def test_exact_normalisations():
    texts = pa.array(["A  b\nc", "a b c", "A b c", "a, b; c!"])
    ws = minhash.exact_hashes(texts, "whitespace")
    assert ws[0] == ws[2] and ws[0] != ws[1]
    low = minhash.exact_hashes(texts, "lowercase")
    assert low[0] == low[1] == low[2] != low[3]
    letters = minhash.exact_hashes(texts, "letters")
    assert letters[0] == letters[1] == letters[3]
    raw = minhash.exact_hashes(texts, "none")
    assert len(set(raw.tolist())) == 4


def test_exact_hashes_from_the_signature_walk_equal_the_separate_ones():
    rng = random.Random(5)
    pieces = ["A", "b", " ", "\n\t", ",", "cafe\u0301", "caf\u00e9", "\u212b", "保险", "\u1100\u1161", "\u00a0", "Ǆ", "😀"]
    texts = pa.array([None, "", " lead and trail  "] + ["".join(rng.choice(pieces) for _ in range(30)) for _ in range(400)])
    a_perm, b_perm = minhash.permutations(1, 8)
    for normalisation in minhash.EXACT_NORMALISATIONS:
        fused = minhash.minhash_signatures(texts, 3, a_perm, b_perm, normalisation)
        assert fused.exact.tolist() == minhash.exact_hashes(texts, normalisation).tolist(), normalisation
        assert fused.chars.tolist() == pc.utf8_length(texts).fill_null(0).to_pylist()


def test_connected_components_match_a_graph_search():
    from corpus.dedup.clusters import connected_components

    rng = np.random.default_rng(4)
    for n, m in [(1, 0), (6, 0), (50, 30), (300, 280)]:
        src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
        labels = connected_components(n, src, dst).tolist()
        neighbours = {i: set() for i in range(n)}
        for a, b in zip(src.tolist(), dst.tolist()):
            neighbours[a].add(b)
            neighbours[b].add(a)
        for start in range(n):
            seen, todo = {start}, [start]
            while todo:
                for nxt in neighbours[todo.pop()] - seen:
                    seen.add(nxt)
                    todo.append(nxt)
            assert {i for i in range(n) if labels[i] == labels[start]} == seen
            assert labels[start] == min(seen)  # named by its smallest node


# ---------------------------------------------------------------- the stage


def test_exact_and_near_duplicates_and_bad_input(tmp_path):
    a, b, c, d = real_texts(4)
    rng = random.Random(3)
    cjk = "".join(rng.choice("保险费用医疗计划家庭健康市场申请资格补贴") for _ in range(400))
    texts = [
        a,
        "  " + a.replace(" ", "  ") + "\n",  # exact after whitespace normalisation
        edit_words(a, 3, seed=1),  # near duplicate
        b,
        c,
        d,
        "",
        "",
        "word",
        "spam " * 5000,  # one repeated word
        "spam " * 4000,
        cjk,
        cjk[:300] + "不同" + cjk[302:],
        ("lorem ipsum dolor sit amet " * 400_000)[:10_000_000],  # 10 MB
    ]
    src = dataset_with(tmp_path, "in", texts)
    out = tmp_path / "out"
    assert main(["-q", "dedup", str(src), "-o", str(out)]) == 0
    acc = card(out)["accounting"][-1]
    assert acc["docs_in"] == len(texts) == acc["kept"] + sum(acc["rejected"].values())
    kept, rejected = rows(out, "data"), rows(out, "rejected")
    assert set(rejected["reason"]) <= {"exact_duplicate", "near_duplicate"}
    by_text = {t: r for t, r in zip(rejected["text"], rejected.iter_rows(named=True))}
    kept_ids = set(kept["id"])
    # every removed document names a kept one of its cluster
    assert set(rejected["duplicate_of"]) <= kept_ids
    assert (rejected["duplicate_of"] == rejected["cluster_id"]).all()
    # the A family: one kept (the longest: the whitespace variant normalises to A, ties by id)
    a_family = [t for t in texts[:3]]
    assert sum(t in by_text for t in a_family) == 2
    near = [r for t, r in by_text.items() if t == texts[2] or (t in a_family and r["reason"] == "near_duplicate")]
    assert near and all(r["reason"] == "near_duplicate" for r in near)
    # empty docs are exact duplicates of each other; the repeated-word docs share their one shingle
    assert kept.filter(pl.col("text") == "").height == 1
    assert kept.filter(pl.col("text").str.starts_with("spam")).height == 1
    assert kept.filter(pl.col("text").is_in([cjk, texts[12]])).height == 1  # CJK near copy found
    assert kept.filter(pl.col("text").str.len_bytes() > 9_000_000).height == 1
    # kept rows carry their cluster; singletons are clusters of one
    big = kept.filter(pl.col("cluster_size") > 1)
    assert big.height >= 4 and (big["cluster_id"] == big["id"]).all()
    assert (kept.filter(pl.col("cluster_size") == 1)["cluster_id"] == kept.filter(pl.col("cluster_size") == 1)["id"]).all()
    facts = card(out)["stage_facts"]["dedup"]
    assert facts["by_source"]["src"]["removed"] == rejected.height
    assert sum(facts["cluster_size_histogram"].values()) == facts["clusters"]
    assert facts["example_clusters"] and facts["example_clusters"][0]["reason"] == "near_duplicate"


def test_exact_mode_keeps_near_duplicates(tmp_path):
    a, b = real_texts(2)
    src = ingest(tmp_path, "in", [a, a, edit_words(a, 3, 1), b])
    out = tmp_path / "out"
    assert main(["-q", "dedup", str(src), "-o", str(out), "--mode", "exact"]) == 0
    assert card(out)["accounting"][-1]["rejected"] == {"exact_duplicate": 1}


def test_same_output_whatever_the_task_and_worker_count(tmp_path):
    texts = real_texts(12)
    texts = texts + [edit_words(t, 2, seed=i) for i, t in enumerate(texts[:8])] + texts[:3]
    src = ingest(tmp_path, "in", texts, tasks=3, files=3)
    results = []
    for tasks, workers in ((1, 1), (3, 2), (3, 1)):  # tasks run as threads, several at once or one by one
        out = tmp_path / f"out{tasks}-{workers}"
        assert main(["-q", "dedup", str(src), "-o", str(out), "--tasks", str(tasks), "--workers", str(workers)]) == 0
        frame = pl.concat([rows(out, "data"), rows(out, "rejected")], how="diagonal")
        results.append(frame.select("id", "url", "reason", "duplicate_of", "cluster_id", "cluster_size").sort("url"))
    assert results[0].height == len(texts)
    assert results[0].equals(results[1]) and results[0].equals(results[2])


def test_source_priority_keeps_the_preferred_copy(tmp_path):
    a, b, c = real_texts(3)
    general = ingest(tmp_path, "general", [a + " extra words at the end of it", b], source="general")
    insurance = ingest(tmp_path, "insurance", [a, c], source="insurance")
    out = tmp_path / "out"
    argv = ["-q", "dedup", str(general), str(insurance), "-o", str(out), "--source-priority", "insurance"]
    assert main(argv) == 0
    rejected = rows(out, "rejected")
    assert rejected["source"].to_list() == ["general"]  # the longer general copy loses to insurance


def shingle_jaccard(x: str, y: str, n: int = 5) -> float:
    """The Jaccard of two ASCII texts' word n-gram sets, in plain Python (the definition)."""
    import re

    def grams(t):
        w = re.findall(r"[^\W_]+", t.lower())
        return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)} if len(w) >= n else ({tuple(w)} if w else set())

    a, b = grams(x), grams(y)
    return len(a & b) / len(a | b)


def test_verification_computes_the_real_jaccard():
    from corpus.dedup.verify import pair_jaccard, shingle_sets

    a, b = real_texts(2)
    texts = [a, edit_words(a, 6, seed=2), " ".join(a.split()[:80]) + " " + b, b, "", "two words"]
    values, offsets = shingle_sets(pa.array(texts), 5, "whitespace")
    pairs = [(0, 1), (0, 2), (0, 3), (2, 3), (4, 4), (5, 5), (0, 5)]
    out = np.empty(len(pairs))
    pair_jaccard(values, offsets, np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]), out)
    for (i, j), got in zip(pairs[:4] + pairs[5:], list(out[:4]) + list(out[5:])):
        assert abs(got - shingle_jaccard(texts[i], texts[j])) < 1e-12, (i, j)
    assert out[4] == 0.0  # two empty documents are nobody's near duplicates


def test_verification_rejects_colliding_pairs_below_the_threshold(tmp_path):
    a, b, c = real_texts(3)
    words = a.split()
    half = " ".join(words[: len(words) * 2 // 3]) + " " + " ".join(reversed(b.split()[:60]))  # shares a's start
    near = edit_words(c, 3, seed=4)
    j_half, j_near = shingle_jaccard(a, half), shingle_jaccard(c, near)
    assert 0.3 < j_half < 0.65 < 0.8 < j_near
    src = ingest(tmp_path, "in", [a, half, c, near])
    # 32 bands of 2 rows: a pair of Jaccard J is a candidate with probability 1 - (1 - J^2)^32: about 1
    # for the half copy, about 0.007 for two different articles (J about 0.015)
    loose = ["--bands", "32", "--rows", "2"]
    outs = {}
    for name, extra in [("off", ["--no-verify"]), ("default", []), ("low", ["--threshold", f"{j_half - 0.02:.3f}"]),
                        ("high", ["--threshold", f"{j_half + 0.02:.3f}"])]:  # fmt: skip
        outs[name] = tmp_path / name
        assert main(["-q", "dedup", str(src), "-o", str(outs[name]), *loose, *extra]) == 0
    # which family each removed document came from: the url is doc-<position in the input>
    family = {"doc-0": "a", "doc-1": "a", "doc-2": "c", "doc-3": "c"}
    removed = {name: sorted(family[u] for u in rows(out, "rejected")["url"]) for name, out in outs.items()}
    assert removed["off"] == ["a", "c"]  # unverified: both candidates link (the old behaviour)
    assert removed["default"] == ["c"] and removed["high"] == ["c"]  # the dissimilar pair is rejected
    assert removed["low"] == ["a", "c"]  # a threshold just below its Jaccard keeps it
    facts = {name: card(out)["stage_facts"]["dedup"] for name, out in outs.items()}
    assert facts["off"]["verification"] == "off" and "rejected_pairs" not in facts["off"]
    assert facts["default"]["verification"] == "jaccard"
    assert facts["default"]["candidate_pairs"] == facts["off"]["candidate_pairs"] == 2
    assert (facts["default"]["verified_pairs"], facts["default"]["rejected_pairs"]) == (1, 1)
    assert (facts["low"]["verified_pairs"], facts["low"]["rejected_pairs"]) == (2, 0)
    assert "kept 1 and rejected 1" in (outs["default"] / "README.md").read_text()


def test_a_removed_document_is_close_to_the_kept_one(tmp_path):
    words = " ".join(real_texts(2)).split()[:240]
    a, b, c = (" ".join(words[i : i + 200]) for i in (0, 20, 40))  # a chain: a~b, b~c, but a and c apart
    assert shingle_jaccard(a, b) >= 0.7 and shingle_jaccard(b, c) >= 0.7 and shingle_jaccard(a, c) < 0.7
    first = ingest(tmp_path, "first", [a], source="first")
    second = ingest(tmp_path, "second", [b, c], source="second")
    results = {}
    for name, extra in [("verified", []), ("unverified", ["--no-verify"])]:
        out = tmp_path / name
        argv = ["-q", "dedup", str(first), str(second), "-o", str(out), "--source-priority", "first", *extra,
                "--bands", "20", "--rows", "5"]  # J* 0.55: all three pairs are candidates  # fmt: skip
        assert main(argv) == 0
        results[name] = (rows(out, "rejected")["text"].to_list(), card(out)["stage_facts"]["dedup"])
    assert sorted(results["unverified"][0]) == sorted([b, c])  # one component: a kept, b and c removed
    assert results["verified"][0] == [b]  # c is not close enough to a: it stays
    facts = results["verified"][1]
    assert facts["verified_pairs"] == 2 and facts["released_from_chains"] == 1  # a~b and b~c pass; c leaves a


def test_quality_column_decides_before_length(tmp_path):
    a, b = real_texts(2)
    longer = a + " and a few more words at the very end of the page"
    src = dataset_with(tmp_path, "in", [longer, a, b])
    data = sorted((src / "data").glob("*.parquet"))[0]
    table = pq.read_table(data)
    quality = {longer: 0.2, a: 0.9, b: 0.5}
    pq.write_table(table.append_column("score", pa.array([quality[t] for t in table["text"].to_pylist()])), data)
    out = tmp_path / "out"
    assert main(["-q", "dedup", str(src), "-o", str(out), "--quality-column", "score"]) == 0
    assert rows(out, "rejected")["text"].to_list() == [longer]  # the better copy stays though it is shorter
    plain = tmp_path / "plain"
    assert main(["-q", "dedup", str(src), "-o", str(plain)]) == 0
    assert rows(plain, "rejected")["text"].to_list() == [a]  # without the column: the longer one


def test_against_a_saved_index(tmp_path):
    old_texts = real_texts(6)
    old = ingest(tmp_path, "old", old_texts, source="old")
    old_out = tmp_path / "old-dedup"
    assert main(["-q", "dedup", str(old), "-o", str(old_out)]) == 0
    assert (old_out / "dedup_index" / "meta.json").is_file()

    fresh = real_texts(9)[6:]
    new = ingest(tmp_path, "new", [old_texts[0], edit_words(old_texts[1], 2, seed=5), *fresh], source="new")
    out = tmp_path / "new-dedup"
    assert main(["-q", "dedup", str(new), "-o", str(out), "--against", str(old_out)]) == 0
    rejected = rows(out, "rejected")
    old_ids = set(rows(old_out, "data")["id"])
    assert rejected.height == 2 and set(rejected["duplicate_of"]) <= old_ids
    assert sorted(rejected["reason"]) == ["exact_duplicate", "near_duplicate"]
    assert rows(out, "data").height == len(fresh)
    assert card(out)["stage_facts"]["dedup"]["removed_against_index"] == 2

    # exact mode matches the saved index's documents by their exact hashes alone
    exact = tmp_path / "exact-dedup"
    assert main(["-q", "dedup", str(new), "-o", str(exact), "--mode", "exact", "--against", str(old_out)]) == 0
    removed = rows(exact, "rejected")
    assert removed.height == 1 and removed["reason"].to_list() == ["exact_duplicate"]
    assert card(exact)["stage_facts"]["dedup"]["removed_against_index"] == 1

    # an index built with other settings is refused with a clear error
    bad = tmp_path / "bad"
    assert main(["-q", "dedup", str(new), "-o", str(bad), "--against", str(old_out), "--ngram", "3"]) == 2


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    src = ingest(tmp_path, "in", real_texts(2))
    assert main(["-q", "dedup", str(tmp_path / "missing"), "-o", str(tmp_path / "o1")]) == 2
    assert main(["-q", "dedup", str(src), "-o", str(tmp_path / "o2"), "--quality-column", "nope"]) == 2
    assert main(["-q", "dedup", str(src), "-o", str(tmp_path / "o3"), "--mode", "exact", "--threshold", "0.8"]) == 2
    assert main(["-q", "dedup", str(src), "-o", str(tmp_path / "o4"), "--bands", "0"]) == 2
    assert main(["-q", "dedup", str(src), "-o", str(tmp_path / "o5"), "--against", str(src)]) == 2
    assert main(["-q", "dedup", str(src), "-o", str(tmp_path / "o6"), "--no-verify", "--threshold", "0.8"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("corpus: error:")]
    assert len(lines) == 6 and "Traceback" not in err and "verify" in lines[5]
    assert "missing" in lines[0] and "nope" in lines[1] and "dedup index" in lines[4]


def test_pipeline_stage(tmp_path):
    a, b = real_texts(2)
    write_jsonl(tmp_path / "raw" / "docs.jsonl", [a, a, edit_words(a, 2, 9), b])
    (tmp_path / "p.yaml").write_text(
        "name: t\noutput: out\nexecutor: {type: local, tasks: 2}\n"
        "sources:\n  - {path: raw, source: s, domain: d}\n"
        "stages:\n  - ingest: {}\n  - dedup: {mode: both, threshold: 0.5}\n"
    )
    assert main(["-q", "run", str(tmp_path / "p.yaml")]) == 0
    acc = card(tmp_path / "out" / "01-dedup")["accounting"][-1]
    assert acc["docs_in"] == 4 and acc["kept"] == 2
    assert acc["rejected"] == {"exact_duplicate": 1, "near_duplicate": 1}


def test_interrupted_run_resumes_from_the_clustering(tmp_path, monkeypatch):
    from corpus.dedup import clusters, steps

    a, b, c = real_texts(3)
    src = ingest(tmp_path, "in", [a, a, edit_words(a, 3, 2), b, c])
    out = tmp_path / "out"
    real_run = steps.DuplicateMarker.run

    def crash(self, data, rank=0, world_size=1):
        raise RuntimeError("simulated crash in the marking pass")
        yield  # pragma: no cover

    monkeypatch.setattr(steps.DuplicateMarker, "run", crash)
    assert main(["-q", "dedup", str(src), "-o", str(out)]) == 1  # one task, so it runs in this process
    decisions = out.with_name("out.partial") / "_work" / "dedup" / "decisions.parquet"
    assert decisions.is_file() and not out.exists()

    def must_not_recluster(*args, **kwargs):
        raise AssertionError("the finished clustering should be reused")

    monkeypatch.setattr(clusters, "near_duplicate_clusters", must_not_recluster)
    monkeypatch.setattr(steps.DuplicateMarker, "run", real_run)
    assert main(["-q", "dedup", str(src), "-o", str(out)]) == 0
    assert card(out)["accounting"][-1]["rejected"] == {"exact_duplicate": 1, "near_duplicate": 1}
    assert "## Duplicates" in (out / "README.md").read_text()
    assert not out.with_name("out.partial").exists()


def test_damaged_data_file_is_named(tmp_path, capsys):
    src = ingest(tmp_path, "in", real_texts(2))
    damaged = sorted((src / "data").glob("*.parquet"))[0]
    damaged.write_bytes(b"not parquet at all")
    assert main(["-q", "dedup", str(src), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and damaged.name in err[0]


def test_exact_hash_applies_nfc_only_where_it_matters():
    decomposed, composed = "cafe\u0301 cre\u0300me", "caf\u00e9 cr\u00e8me"
    texts = pa.array([decomposed, composed, "plain ascii", "\u212b ngstr\u00f6m", "\u00c5 ngstr\u00f6m", "\u1100\u1161", "\uac00"])
    h = minhash.exact_hashes(texts, "whitespace")
    assert h[0] == h[1] and h[3] == h[4] and h[5] == h[6]
    assert len({h[1], h[2], h[4], h[6]}) == 4
