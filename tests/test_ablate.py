"""`train ablate`: equal-token runs compare datasets; controls, exactness, resume, bad input, cards."""

from __future__ import annotations

import json
import random
import re
import shutil
import statistics
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import SAMPLE

PAGES = SAMPLE / "insurance" / "healthcare-gov-2013"
SMALL = dict(seeds=3, preset="tiny", vocab_size=1000, seq_len=64, batch_size=8, eval_tokens=0)


def _pages() -> list[str]:
    """English healthcare.gov pages of the bundled sample, front matter removed, in a fixed order."""
    texts = {}
    for path in sorted(PAGES.rglob("*.md")):
        if "/es/" in str(path):
            continue
        text = re.sub(r"\A---.*?---\s*", "", path.read_text(encoding="utf-8"), flags=re.S).strip()
        if len(text) > 300:
            texts.setdefault(" ".join(text.split()), text)  # the sample holds a few pages twice
    return list(texts.values())


def _junk(rng: random.Random, words: list[str]) -> str:
    kind = rng.randrange(3)
    if kind == 0:  # keyword spam
        pick = rng.sample(words, 6)
        return " ".join(rng.choice(pick) for _ in range(rng.randint(150, 300)))
    if kind == 1:  # symbol noise
        return "\n".join("".join(rng.choice("#$%&*@!+=<>{}[]|~^0123456789abcdef") for _ in range(rng.randint(20, 70))) for _ in range(25))
    return "\n".join(["Click here to subscribe to our newsletter today."] * rng.randint(30, 60))  # repeated lines


def _ingest(folder: Path, name: str, texts: list[str]) -> Path:
    from corpus.cli import main

    folder.mkdir(parents=True, exist_ok=True)
    source = folder / f"{name}.jsonl"
    source.write_text("".join(json.dumps({"text": t, "row": i}) + "\n" for i, t in enumerate(texts)), encoding="utf-8")
    assert main(["-q", "ingest", str(source), "-o", str(folder / name), "--source", name, "--domain", "insurance"]) == 0
    return folder / name


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    """clean: 200 pages; junky: the same pages, half of them copied, plus junk pages of as many
    characters as the pages (spam, symbol noise, repeated lines); heldout: 40 other pages."""
    base = tmp_path_factory.mktemp("ablate-data")
    pages = _pages()
    rng = random.Random(0)
    rng.shuffle(pages)
    clean, heldout = pages[:200], pages[200:240]
    words = sorted({w for t in clean for w in re.findall(r"[a-z]{5,}", t.lower())})
    junky = clean + rng.sample(clean, 100)
    target = sum(map(len, clean))
    junk: list[str] = []
    while sum(map(len, junk)) < target:
        junk.append(_junk(rng, words))
    junky = junky + junk
    rng.shuffle(junky)
    return {"clean": _ingest(base, "clean", clean), "junky": _ingest(base, "junky", junky),
            "heldout": _ingest(base, "heldout", heldout), "base": base}  # fmt: skip


def _config(out: Path, arms: dict[str, list[Path]], evals: list[Path], **extra):
    from train.ablate import AblateConfig

    options = {**SMALL, "budget_tokens": 60_000, **extra}
    return AblateConfig(arms={k: [str(p) for p in v] for k, v in arms.items()}, eval=[str(e) for e in evals], output=str(out), **options)


@pytest.fixture(scope="module")
def positive(datasets, tmp_path_factory) -> tuple[Path, dict]:
    from train.ablate import run_ablation

    out = tmp_path_factory.mktemp("positive") / "ablation"
    report = run_ablation(_config(out, {"junky": [datasets["junky"]], "clean": [datasets["clean"]]}, [datasets["heldout"]]))
    return out, report


@pytest.mark.slow
def test_positive_control_junk_and_copies_lose_beyond_noise(positive):
    _, report = positive
    (c,) = report["comparisons"]
    assert (c["a"], c["b"], c["eval"]) == ("junky", "clean", "heldout")
    assert c["verdict"] == "clean better than junky", c
    assert c["diff_mean"] > 2 * c["diff_std"] > 0
    assert all(d > 0 for d in c["per_seed"])


@pytest.mark.slow
def test_equal_budgets_paired_seeds_and_numbers_that_recompute(positive):
    from train.ablate import summarise, verdict

    out, report = positive
    cfg = report["config"]
    runs = [r for arm in report["arms"].values() for r in arm["runs"]]
    assert len(runs) == 6 and {r["tokens"] for r in runs} == {cfg["tokens_per_run"]} == {cfg["steps"] * 8 * 64}
    windows = []
    for arm in report["arms"].values():
        data = arm["data"]
        # every arm and seed drew the same budget (short of it by less than a document) and trains at most one pass over it
        assert len(data["mix_tokens"]) == 3
        assert all(cfg["budget_tokens"] - 3_000 < t <= cfg["budget_tokens"] for t in data["mix_tokens"])
        assert all(w >= cfg["steps"] * cfg["batch_size"] for w in data["train_windows"])
        assert data["repeated_copies"] == [0, 0, 0]
        assert sorted(r["seed"] for r in arm["runs"]) == [0, 1, 2]
        windows += data["train_windows"]
    assert max(windows) - min(windows) <= 60
    # each seed drew another sample of each arm (its pool is larger than the budget)
    for arm in ("junky", "clean"):
        drawn = [set(pl.read_parquet(out / "data" / arm / f"seed-{k}" / "mix" / "data")["id"]) for k in range(2)]
        assert drawn[0] != drawn[1]
    # the report recomputes from the per-run records
    records = {arm: {} for arm in report["arms"]}
    for path in sorted((out / "runs").glob("*/seed-*/result.json")):
        record = json.loads(path.read_text())
        records[record["arm"]][record["seed"]] = record
    arms, comparisons = summarise(records, ["heldout"])
    assert comparisons == report["comparisons"]
    for name, entry in arms.items():
        assert entry["eval"] == report["arms"][name]["eval"]
        losses = [r["loss"] for r in entry["eval"]["heldout"]["per_seed"]]
        assert entry["eval"]["heldout"]["loss_mean"] == pytest.approx(statistics.fmean(losses))
    c = report["comparisons"][0]
    assert verdict("junky", "clean", c["per_seed"]) == c["verdict"]
    assert (out / "report.md").read_text().count("clean better than junky") >= 1
    for plot in ("train_loss.svg", "eval_loss.svg"):
        assert (out / "plots" / plot).read_bytes().startswith(b"<svg")


@pytest.mark.slow
def test_the_verdict_lands_in_the_arms_cards_and_survives_regeneration(positive, datasets, capsys):
    from corpus.cards import write_card
    from corpus.cards.commands import show
    from corpus.cards.evidence import read_evidence

    out, _ = positive
    clean = datasets["clean"]
    (entry,) = [e for e in read_evidence(clean) if (clean / e["ablation"]).resolve() == out.resolve()]
    assert entry["arm"] == "clean" and entry["verdicts"][0]["against"] == "junky"
    assert entry["verdicts"][0]["verdict"] == "clean better than junky" and entry["verdicts"][0]["loss_diff_mean"] < 0
    readme = (clean / "README.md").read_text()
    assert "## Evidence" in readme and "clean better than junky" in readme
    assert readme.index("## Evidence") < readme.index("## Known limitations")
    show(clean)
    assert "Evidence" in capsys.readouterr().out
    # the card written again over the same data keeps the evidence; over other data it does not
    card = json.loads((clean / "card.json").read_text())
    copy = clean.parent / "clean-copy"
    shutil.copytree(clean, copy)
    args = dict(name=card["name"], stage=card["stage"], config=card["config"], inputs=[], accounting=card["accounting"][-1],
                stage_facts={}, executor={}, fingerprint=card["fingerprint"], command=["test"], pipeline_file=None)  # fmt: skip
    write_card(copy, previous_readme=(copy / "README.md").read_text(), **args)
    assert "clean better than junky" in (copy / "README.md").read_text() and read_evidence(copy)
    for f in (copy / "data").glob("*.parquet"):
        pl.read_parquet(f).head(5).write_parquet(f)
    write_card(copy, previous_readme=(copy / "README.md").read_text(), **args)
    assert "## Evidence" not in (copy / "README.md").read_text() and read_evidence(copy) == []


@pytest.mark.slow
def test_negative_control_same_data_and_resume_after_a_stop(datasets, tmp_path):
    from train.ablate import NO_DIFFERENCE, run_ablation

    twin = tmp_path / "clean-twin"
    shutil.copytree(datasets["clean"], twin)
    arms = {"a": [datasets["clean"]], "b": [twin]}
    whole = run_ablation(_config(tmp_path / "whole", arms, [datasets["heldout"]], seeds=2, budget_tokens=10_000))
    (c,) = whole["comparisons"]
    assert c["verdict"] == NO_DIFFERENCE and c["per_seed"] == [0.0, 0.0]  # same data, same seeds: the same runs
    # stopped after 3 of 4 runs (as a kill between runs), then rerun: the same report
    stopped = _config(tmp_path / "stopped", arms, [datasets["heldout"]], seeds=2, budget_tokens=10_000)
    assert run_ablation(stopped, stop_after_runs=3) is None
    assert len(list((tmp_path / "stopped" / "runs").glob("*/seed-*/result.json"))) == 3
    resumed = run_ablation(stopped)

    def numbers(report):
        return report["comparisons"], {a: e["eval"] for a, e in report["arms"].items()}

    assert numbers(resumed) == numbers(whole)
    assert run_ablation(stopped) == json.loads((tmp_path / "stopped" / "report.json").read_text())  # up to date


def _train_cli(*args: str) -> tuple[int, str]:
    import io
    from contextlib import redirect_stderr

    from train.cli import main

    err = io.StringIO()
    with redirect_stderr(err):
        code = main(["-q", *args])
    return code, err.getvalue().strip()


def test_bad_input_is_one_line_naming_the_problem(datasets, tmp_path):
    clean, heldout = str(datasets["clean"]), str(datasets["heldout"])
    code, err = _train_cli("ablate", "--arm", f"a={clean}", "--arm", f"b={clean}", "--eval", heldout, "-o", str(tmp_path / "x"), "--seeds", "1")
    assert code == 2 and "--seeds" in err and "at least 2 seeds" in err and "\n" not in err
    code, err = _train_cli("ablate", "--arm", f"a={clean}", "--eval", heldout, "-o", str(tmp_path / "x"))
    assert code == 2 and "at least 2 arms" in err
    code, err = _train_cli("ablate", "--arm", f"a={clean}", "--arm", f"b={tmp_path / 'nope'}", "--eval", heldout, "-o", str(tmp_path / "x"))
    assert code == 2 and "nope: no such dataset folder" in err
    # an eval set that is also in an arm: refused with the overlap, before any training
    code, err = _train_cli("ablate", "--arm", f"a={clean}", "--arm", f"b={heldout}", "--eval", heldout, "-o", str(tmp_path / "o"),
                           "--vocab-size", "500")  # fmt: skip
    assert code == 2 and "shares 40 of its 40 documents with arm b" in err and "--allow-overlap" in err
    assert not (tmp_path / "o" / "runs").exists()
    # an arm too small for the budget at --max-epochs
    code, err = _train_cli("ablate", "--arm", f"a={clean}", "--arm", f"b={heldout}", "--eval", clean, "-o", str(tmp_path / "s"),
                           "--vocab-size", "500", "--budget-tokens", "100k", "--allow-overlap")  # fmt: skip
    assert code == 2 and "arm b: the budget of 100,000 tokens is more than the inputs can give" in err and "--max-epochs" in err
    # an output folder that is not an ablation
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    code, err = _train_cli("ablate", "--arm", f"a={clean}", "--arm", f"b={clean}", "--eval", heldout, "-o", str(tmp_path / "mine"))
    assert code == 2 and "not an ablation folder" in err and (tmp_path / "mine" / "notes.txt").exists()


def test_arms_counted_with_different_tokenizers_are_refused(datasets, tmp_path):
    from corpus.cli import main
    from corpus.tokenize.train_tokenizer import TokenizerTrainConfig, train_tokenizer

    clean = str(datasets["clean"])
    mixes = []
    for i, vocab in enumerate((400, 500)):
        tok = tmp_path / f"tok{i}"
        train_tokenizer([clean], tok, TokenizerTrainConfig(vocab_size=vocab, compare=False))
        assert main(["-q", "mix", clean, "-o", str(tmp_path / f"mix{i}"), "--budget-tokens", "5k", "--tokenizer", str(tok)]) == 0
        mixes.append(str(tmp_path / f"mix{i}"))
    code, err = _train_cli("ablate", "--arm", f"a={mixes[0]}", "--arm", f"b={mixes[1]}", "--eval", str(datasets["heldout"]), "-o", str(tmp_path / "x"))
    assert code == 2 and "different tokenizers" in err and "--tokenizer" in err


def test_verdict_rule():
    from train.ablate import NO_DIFFERENCE, verdict

    assert verdict("a", "b", [-0.10, -0.11, -0.09]) == "a better than b"
    assert verdict("a", "b", [0.10, 0.11, 0.09]) == "b better than a"
    assert verdict("a", "b", [0.10, -0.05, 0.02]) == NO_DIFFERENCE
    assert verdict("a", "b", [0.02, 0.02, 0.0]) == NO_DIFFERENCE  # mean 0.0133 is below 2 x its std 0.0115
    assert verdict("a", "b", [0.0, 0.0]) == NO_DIFFERENCE
    assert verdict("a", "b", [0.1]).startswith("no verdict")


def test_pipeline_ablate_stage_validates_and_finds_earlier_stages(tmp_path):
    from corpus.pipeline import load_pipeline
    from train.stages import AblateStageConfig, _dataset_ref

    _, stages = load_pipeline(Path(__file__).parent.parent / "pipelines" / "ablation.yaml")
    options = dict(stages)["ablate"]
    assert isinstance(options, AblateStageConfig) and options.arms == {"raw": "ingest", "clean": "dedup"} and options.seeds == 3
    written = [tmp_path / "00-ingest", tmp_path / "01-filter", tmp_path / "02-dedup"]
    for p in written:
        p.mkdir()
        (p / "data").mkdir()
        (p / "card.json").write_text("{}")
    assert _dataset_ref("dedup", written, tmp_path, "p.yaml") == str(written[2])
    assert _dataset_ref("00-ingest", written, tmp_path, "p.yaml") == str(written[0])
    from corpus.errors import CorpusError

    with pytest.raises(CorpusError, match="neither an earlier dataset stage nor an existing folder"):
        _dataset_ref("mix", written, tmp_path, "p.yaml")


def test_steps_fit_the_smallest_draw_so_no_arm_repeats_beyond_its_plan(monkeypatch):
    import train.data
    from train.ablate import AblateConfig, Prepared, plan_steps

    windows = {"a0": 1000, "a1": 990, "b0": 640, "b1": 700}

    class FakeLoader:
        def __init__(self, path, split, seq_len, batch_size):
            self.num_windows = windows[path]

    monkeypatch.setattr(train.data, "WindowLoader", FakeLoader)
    config = AblateConfig(arms={"a": ["x"], "b": ["y"]}, eval=["z"], output="o", seeds=2, batch_size=8)
    prepared = Prepared(tokenizer="t", tokenizer_sha256="s", tokenizer_trained=True, arm_shards={"a": ["a0", "a1"], "b": ["b0", "b1"]},
                        arm_data={}, eval_shards={}, overlap={})  # fmt: skip
    steps, per_arm = plan_steps(config, prepared)
    assert steps == 80 and per_arm == {"a": [1000, 990], "b": [640, 700]}  # 640 // 8: the smallest draw, once
    windows["b0"] = 7
    from train.errors import TrainError

    with pytest.raises(TrainError, match="arm b: 7 windows of 257 tokens, fewer than one batch of 8"):
        plan_steps(config, prepared)


def test_an_ablation_knows_its_inputs_by_what_they_were_made_from(tmp_path):
    """An arm's dataset made again the same way (another card time, the same fingerprint) leaves the
    ablation's identity as it was; another dataset changes it."""
    from corpus.outputs import card_hash
    from train.ablate import AblateConfig, _identity

    folders = {}
    for name in ("a", "b", "e"):
        folder = tmp_path / name
        folder.mkdir()
        card = {"fingerprint": f"fp-{name}", "created": "2026-01-01T00:00:00+00:00"}
        (folder / "card.json").write_text(json.dumps({**card, "card_sha256": card_hash(card)}))
        folders[name] = folder
    config = AblateConfig(arms={"a": [str(folders["a"])], "b": [str(folders["b"])]}, eval=[str(folders["e"])], output=str(tmp_path / "out"))
    before = _identity(config)
    card = {"fingerprint": "fp-a", "created": "2026-06-01T00:00:00+00:00"}  # made again
    (folders["a"] / "card.json").write_text(json.dumps({**card, "card_sha256": card_hash(card)}))
    assert _identity(config) == before
    card = {"fingerprint": "fp-other", "created": "2026-06-01T00:00:00+00:00"}
    (folders["a"] / "card.json").write_text(json.dumps({**card, "card_sha256": card_hash(card)}))
    assert _identity(config) != before
