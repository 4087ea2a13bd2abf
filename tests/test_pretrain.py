"""`train pretrain`: the shard loader, the loop's exactness (resume, accumulation, DDP) and bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from corpus.cli import main as corpus_main
from train.cli import main
from train.data import IGNORE_INDEX, WindowLoader

from tests.conftest import REPO, build_token_pipeline

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SMALL_RUN = ["--seq-len", "32", "--batch-size", "4", "--warmup-steps", "2", "--log-every", "1", "--eval-windows", "16", "--no-tensorboard"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="session")
def corpus_out(tmp_path_factory) -> Path:
    """ingest -> tokenizer (1,000 tokens) -> shards, on the glossary and the Python tutorial."""
    return build_token_pipeline(tmp_path_factory.mktemp("pretrain"), compare=False)


@pytest.fixture(scope="session")
def tokdir(corpus_out) -> Path:
    return corpus_out / "01-tokenizer"


@pytest.fixture(scope="session")
def shards(corpus_out) -> Path:
    return corpus_out / "02-tokenize"


def pretrain(shards, tokdir, out, *extra) -> int:
    return main(["-q", "pretrain", "--data", str(shards), "--tokenizer", str(tokdir), "-o", str(out), *SMALL_RUN, *extra])


def records(run: Path, split: str) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == split]


def flat_streams(shards: Path, split: str) -> list[np.ndarray]:
    index = json.loads((shards / "index.json").read_text())
    out = []
    for s in index["shards"]:
        if s["split"] == split:
            with pa.memory_map(str(shards / s["file"])) as source:
                out.append(np.asarray(pa.ipc.open_file(source).read_all().column("input_ids").combine_chunks().values))
    return out


# ---------------------------------------------------------------- the loader


def test_windows_are_the_shards_token_stream(shards):
    T = 32
    loader = WindowLoader(shards, "train", T, 4, seed=0)
    streams = flat_streams(shards, "train")
    assert loader.num_windows == sum((len(s) - 1) // T for s in streams)
    assert all(not s.tokens.flags.owndata for s in loader.shards)  # views into the memory map
    # window k of shard 0 is tokens [kT, kT + T + 1); inputs and labels are shifted by one
    batch = loader.make_batch(np.array([0, 1, loader.first_window[1]]))
    assert batch.input_ids.shape == batch.labels.shape == (3, T)
    assert batch.input_ids[0].tolist() == streams[0][:T].tolist()
    assert batch.labels[0].tolist() == streams[0][1 : T + 1].tolist()
    assert batch.input_ids[1, 0] == batch.labels[0, -1]  # consecutive windows share one token
    assert batch.input_ids[2].tolist() == streams[1][:T].tolist()  # the next shard starts a new window
    assert batch.position_ids is None


def test_order_is_seeded_per_epoch_and_resumes_exactly(shards):
    loader = WindowLoader(shards, "train", 32, 8, seed=3)
    per_epoch = loader.batches_per_epoch()
    first_epoch = np.concatenate([loader.next_window_ids() for _ in range(per_epoch)])
    assert len(set(first_epoch.tolist())) == len(first_epoch)  # no window twice in an epoch
    second = loader.next_window_ids()
    assert loader.epoch == 1 and not np.array_equal(second, first_epoch[:8])
    again = WindowLoader(shards, "train", 32, 8, seed=3)
    assert np.array_equal(np.concatenate([again.next_window_ids() for _ in range(per_epoch)]), first_epoch)
    assert not np.array_equal(WindowLoader(shards, "train", 32, 8, seed=4).next_window_ids(), first_epoch[:8])
    # a loader restored from a state reads exactly the batch the original reads next
    state = loader.state_dict()
    expected = [loader.next_window_ids() for _ in range(3)]
    restored = WindowLoader(shards, "train", 32, 8, seed=3)
    restored.load_state_dict(state)
    assert all(np.array_equal(a, restored.next_window_ids()) for a in expected)


def test_ranks_read_distinct_windows_that_make_the_single_process_batch(shards):
    single = WindowLoader(shards, "train", 32, 8, seed=0)
    ranks = [WindowLoader(shards, "train", 32, 4, seed=0, rank=r, world_size=2) for r in range(2)]
    for _ in range(single.batches_per_epoch() + 2):  # across an epoch boundary too
        whole = single.next_window_ids()
        parts = [r.next_window_ids() for r in ranks]
        assert not set(parts[0].tolist()) & set(parts[1].tolist())
        assert sorted(np.concatenate(parts).tolist()) == sorted(whole.tolist())


def test_doc_mask_restarts_positions_and_attention_per_document(shards, tokdir):
    from train.model import PRESETS, new_model

    T = 64
    loader = WindowLoader(shards, "train", T, 4, doc_mask=True)
    shard = loader.shards[0]
    # a window holding a document boundary inside it, not at either end
    boundary = next(int(o) for o in shard.offsets[1:] if 1 < o % T < T - 1)
    window = boundary // T
    batch = loader.make_batch(np.array([window]))
    start = window * T
    cut = boundary - start  # first position of the new document within the window
    assert 0 < cut < T
    positions = batch.position_ids[0].tolist()
    assert positions[cut] == 0 and positions[cut - 1] > 0 and positions[cut + 1] == 1
    assert batch.labels[0, cut - 1] == IGNORE_INDEX  # the new document's first token is no target
    assert (batch.labels[0] == IGNORE_INDEX).sum() == np.isin(np.arange(start + 1, start + T + 1), shard.offsets).sum()
    # the second document's logits are those of the document alone: it cannot see the first one
    model = new_model(PRESETS["tiny"], 1000, {}, seed=0).eval()
    with torch.no_grad():
        packed = model(input_ids=batch.input_ids, position_ids=batch.position_ids).logits[0, cut:]
        alone = model(input_ids=batch.input_ids[:, cut:]).logits[0]
        plain = model(input_ids=batch.input_ids).logits[0, cut:]
    assert torch.allclose(packed, alone, atol=1e-5)
    assert not torch.allclose(plain, alone, atol=1e-3)  # without the mask it does see it


# ---------------------------------------------------------------- the loop


def test_resume_continues_exactly(shards, tokdir, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    common = ["--max-steps", "8", "--eval-every", "4", "--save-every", "2", "--keep-last", "2"]
    assert pretrain(shards, tokdir, straight, *common) == 0
    assert pretrain(shards, tokdir, resumed, *common, "--stop-at", "4") == 0
    assert [r["step"] for r in records(resumed, "train")] == [1, 2, 3, 4]
    assert sorted(p.name for p in (resumed / "checkpoints").iterdir()) == ["step-00000002", "step-00000004"]
    assert pretrain(shards, tokdir, resumed, *common, "--resume", "auto") == 0
    for split in ("train", "val"):
        a, b = records(straight, split), records(resumed, split)
        assert [r["step"] for r in a] == [r["step"] for r in b]
        assert [r["loss"] for r in a] == [r["loss"] for r in b]  # identical, not close
    assert [r["lr"] for r in records(straight, "train")] == [r["lr"] for r in records(resumed, "train")]
    assert sorted(p.name for p in (resumed / "checkpoints").iterdir()) == ["step-00000006", "step-00000008"]
    state = torch.load(resumed / "checkpoints" / "step-00000008" / "trainer_state.pt", weights_only=True)
    assert state["step"] == 8 and state["loader"]["position"] > 0 and "optimizer" in state and "rng" in state
    # the checkpoint is a Hugging Face model folder with its tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(resumed / "checkpoints" / "step-00000008")
    tok = AutoTokenizer.from_pretrained(resumed / "checkpoints" / "step-00000008")
    assert model.config.vocab_size == len(tok) == 1000
    # resuming a finished run, or a run with other settings, is refused
    assert pretrain(shards, tokdir, resumed, *common, "--resume", "auto") == 2
    assert pretrain(shards, tokdir, resumed, "--max-steps", "10", "--resume", "auto", "--lr", "0.01") == 2


def test_accumulation_divides_by_the_steps_target_tokens(shards, tokdir, tmp_path):
    # With --doc-mask each micro-batch has its own number of targets, so a mean of micro-batch means
    # would differ from the sum of token losses / tokens that one big batch gives.
    loader = WindowLoader(shards, "train", 32, 2, doc_mask=True)
    counts = {int((loader.next_batch().labels != IGNORE_INDEX).sum()) for _ in range(6)}
    assert len(counts) > 1
    big, accumulated = tmp_path / "big", tmp_path / "acc"
    common = ["--max-steps", "4", "--eval-every", "0", "--doc-mask"]
    assert pretrain(shards, tokdir, big, *common) == 0  # batch 4
    assert pretrain(shards, tokdir, accumulated, *common, "--batch-size", "2", "--grad-accum", "2") == 0
    a = [r["loss"] for r in records(big, "train")]
    b = [r["loss"] for r in records(accumulated, "train")]
    assert np.allclose(a, b, rtol=1e-5, atol=0) and len(a) == 4
    assert records(big, "val")[-1]["loss"] == pytest.approx(records(accumulated, "val")[-1]["loss"], rel=1e-5)


def test_validation_per_domain_logs_and_init_from(shards, tokdir, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--max-steps", "30", "--eval-every", "15", "--save-every", "0", "--log-every", "5"]
    assert main(["pretrain", "--data", str(shards), "--tokenizer", str(tokdir), "-o", str(run), *SMALL_RUN[:-1], *args]) == 0
    err = capsys.readouterr().err
    assert "step 0: val loss" in err and "step 30: val loss" in err
    val = records(run, "val")
    assert [r["step"] for r in val] == [0, 15, 30]
    assert val[-1]["loss"] < val[0]["loss"] - 0.5  # it learns
    assert set(val[-1]["by_domain"]) == {"insurance", "general"}
    by = val[-1]["by_domain"]
    assert sum(v["tokens"] for v in by.values()) == val[-1]["tokens"]
    pooled = sum(v["loss"] * v["tokens"] for v in by.values()) / val[-1]["tokens"]
    assert pooled == pytest.approx(val[-1]["loss"], rel=1e-9)
    assert val[-1]["ppl"] == pytest.approx(np.exp(val[-1]["loss"]))
    csv_lines = (run / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("step,split,domain,loss,ppl")
    assert any(line.startswith("30,val,insurance,") for line in csv_lines)
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert json.loads((run / "run.json").read_text())["parameters"] > 0
    # --init-from a checkpoint: the same weights, so the same validation loss at step 0
    follow = tmp_path / "follow"
    assert pretrain(shards, tokdir, follow, "--init-from", str(run / "checkpoints" / "step-00000030"), "--max-steps", "1", "--eval-every", "1", "--eval-windows", "16") == 0
    start = records(follow, "val")[0]
    assert start["step"] == 0
    assert start["loss"] == pytest.approx(val[-1]["loss"], rel=1e-6)


def test_model_yaml_and_time_limit_stop_with_a_checkpoint(shards, tokdir, tmp_path, capsys):
    shape = tmp_path / "model.yaml"
    shape.write_text("hidden_size: 64\nnum_hidden_layers: 2\nnum_attention_heads: 4\nnum_key_value_heads: 2\n"
                     "intermediate_size: 128\nmax_position_embeddings: 64\n")  # fmt: skip
    run = tmp_path / "run"
    # a limit far shorter than one step: the run ends after its first step, validated and saved
    assert pretrain(shards, tokdir, run, "--model-config", str(shape), "--max-steps", "5", "--eval-every", "0", "--time-limit", "1e-6") == 0
    assert [r["step"] for r in records(run, "val")] == [1]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-00000001"]
    config = json.loads((run / "checkpoints" / "step-00000001" / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_key_value_heads"]) == (64, 2, 2)
    assert pretrain(shards, tokdir, run, "--model-config", str(shape), "--max-steps", "5", "--eval-every", "0", "--resume", "auto") == 0
    assert [r["step"] for r in records(run, "train")] == [1, 2, 3, 4, 5]
    assert pretrain(shards, tokdir, tmp_path / "long", "--model-config", str(shape), "--seq-len", "65") == 2
    assert "longer than the model's 64 positions" in capsys.readouterr().err


def test_init_from_grows_embeddings_for_an_extended_tokenizer(corpus_out, shards, tokdir, tmp_path):
    base = tmp_path / "base"
    assert pretrain(shards, tokdir, base, "--max-steps", "1", "--eval-every", "0") == 0
    checkpoint = base / "checkpoints" / "step-00000001"
    extended, ext_shards = tmp_path / "ext-tok", tmp_path / "ext-shards"
    ingest = str(corpus_out / "00-ingest")
    assert corpus_main(["-q", "tokenizer", "train", ingest, "-o", str(extended), "--vocab-size", "1100", "--extend", str(tokdir), "--no-compare"]) == 0
    assert corpus_main(["-q", "tokenize", ingest, "-o", str(ext_shards), "--tokenizer", str(extended), "--min-val-docs-per-domain", "5"]) == 0
    run = tmp_path / "continued"
    assert pretrain(ext_shards, extended, run, "--init-from", str(checkpoint), "--max-steps", "1", "--eval-every", "0") == 0
    grown = torch.load(run / "checkpoints" / "step-00000001" / "trainer_state.pt", weights_only=True)
    assert json.loads((run / "checkpoints" / "step-00000001" / "config.json").read_text())["vocab_size"] == 1100
    assert grown["step"] == 1 and np.isfinite(records(run, "train")[0]["loss"])
    # the base model cannot be continued on these shards with the base tokenizer: they do not match
    assert pretrain(ext_shards, tokdir, tmp_path / "mismatch", "--init-from", str(checkpoint)) == 2


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_ddp_and_fsdp_two_processes_on_gloo_match_one_process(shards, tokdir, tmp_path):
    """Two ranks x 2 windows read the single process's 4 windows, and their loss is the global mean;
    with DDP and with FSDP (checkpoint and resume included)."""
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    common = ["--max-steps", "3", "--eval-every", "3"]
    assert pretrain(shards, tokdir, single, *common) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
                "-m", "train.cli", "-q", "pretrain", "--data", str(shards), "--tokenizer", str(tokdir), "-o", str(ddp),
                *SMALL_RUN, "--batch-size", "2", *common, "--device", "cpu"]  # fmt: skip
    done = subprocess.run(torchrun, env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    a = [r["loss"] for r in records(single, "train")]
    b = [r["loss"] for r in records(ddp, "train")]
    assert len(a) == len(b) == 3 and np.allclose(a, b, rtol=1e-5, atol=0)
    assert records(single, "val")[-1]["loss"] == pytest.approx(records(ddp, "val")[-1]["loss"], rel=1e-5)
    assert json.loads((ddp / "run.json").read_text())["world_size"] == 2
    state = torch.load(ddp / "checkpoints" / "step-00000003" / "trainer_state.pt", weights_only=True)
    assert state["world_size"] == 2 and state["loader"]["position"] == 3 * 4

    # FSDP: the same losses; stopped at step 2 and resumed, from a checkpoint gathered from the shards
    fsdp = tmp_path / "fsdp"
    launch = [arg if arg != str(ddp) else str(fsdp) for arg in torchrun] + ["--fsdp"]
    port = launch.index("--master_port") + 1
    for extra in (["--stop-at", "2"], ["--resume", "auto"]):
        launch[port] = str(free_port())
        done = subprocess.run(launch + extra, env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
        assert done.returncode == 0, done.stderr[-2000:]
    c = [r["loss"] for r in records(fsdp, "train")]
    assert [r["step"] for r in records(fsdp, "train")] == [1, 2, 3] and np.allclose(a, c, rtol=1e-5, atol=0)
    assert records(single, "val")[-1]["loss"] == pytest.approx(records(fsdp, "val")[-1]["loss"], rel=1e-5)
    from transformers import AutoModelForCausalLM

    gathered = AutoModelForCausalLM.from_pretrained(fsdp / "checkpoints" / "step-00000003")
    assert type(gathered).__name__ == "LlamaForCausalLM"
    assert sum(p.numel() for p in gathered.parameters()) == json.loads((single / "run.json").read_text())["parameters"]


# ---------------------------------------------------------------- bad input


def test_bad_input_is_one_line_before_the_first_step(shards, tokdir, tmp_path, capsys):
    def fails(expected: str, *args, data=shards, tok=tokdir, out=None) -> None:
        out = out or tmp_path / "run"
        assert main(["pretrain", "--data", str(data), "--tokenizer", str(tok), "-o", str(out), *SMALL_RUN, "--max-steps", "2", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("train: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
        assert expected in err, err
        assert not (tmp_path / "run").exists()

    # shards made with another tokenizer
    other = tmp_path / "other-tok"
    shutil.copytree(tokdir, other)
    spec = json.loads((other / "tokenizer.json").read_text())
    spec["model"]["vocab"]["zzz-extra"] = 1000
    (other / "tokenizer.json").write_text(json.dumps(spec))
    fails("the shards were made with another tokenizer", tok=other)
    # a corrupt shard, a missing one
    broken = tmp_path / "broken"
    shutil.copytree(shards, broken)
    index = json.loads((shards / "index.json").read_text())
    first, second = (broken / s["file"] for s in index["shards"][:2])
    data = bytearray(first.read_bytes())
    data[len(data) // 2] ^= 0xFF
    first.write_bytes(bytes(data))
    fails(f"{first}: sha256 differs", data=broken)
    second.unlink()
    fails("missing", data=broken)
    (tmp_path / "plain").mkdir()
    fails("not a token-shards folder", data=tmp_path / "plain")
    # windows longer than the model's positions (tiny: 1024)
    fails("--seq-len 2048 is longer than the model's 1024 positions", "--seq-len", "2048")
    # no validation split
    no_val = tmp_path / "no-val"
    assert corpus_main(["-q", "tokenize", str(shards.parent / "00-ingest"), "-o", str(no_val), "--tokenizer", str(tokdir),
                        "--val-fraction", "0", "--min-val-docs-per-domain", "0"]) == 0  # fmt: skip
    fails("the validation split is empty", data=no_val)
    # a model file with a typo, options that contradict each other
    bad_yaml = tmp_path / "model.yaml"
    bad_yaml.write_text("hidden_size: 64\nnum_hidden_layers: 2\nnum_attention_heads: 4\nintermediate_size: 128\nnum_layers: 3\n")
    fails("num_layers: unknown key", "--model-config", str(bad_yaml))
    fails("--min-lr", "--lr", "1e-4", "--min-lr", "1e-3")
    fails("not a Hugging Face model folder", "--init-from", str(tmp_path))
    fails("start it with torchrun", "--fsdp")
    # a run folder that already holds checkpoints is not overwritten without --resume
    done = tmp_path / "done"
    assert pretrain(shards, tokdir, done, "--max-steps", "1", "--eval-every", "0") == 0
    fails("pass --resume auto", out=done)


def test_learning_rate_warms_up_linearly_then_follows_a_cosine_to_min_lr():
    from train.pretrain import PretrainConfig, lr_factor

    cfg = PretrainConfig.model_construct(lr=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=110)
    assert [lr_factor(s, cfg) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert lr_factor(10, cfg) == pytest.approx(1.0)  # the cosine starts at lr
    assert lr_factor(60, cfg) == pytest.approx((1 + 0.1) / 2)  # halfway down: the mean of lr and min_lr
    assert lr_factor(35, cfg) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 0.25)))
    assert lr_factor(110, cfg) == pytest.approx(0.1) and lr_factor(500, cfg) == pytest.approx(0.1)  # min_lr from max_steps on
    after = [lr_factor(s, cfg) for s in range(10, 111)]
    assert all(a > b for a, b in zip(after, after[1:]))  # strictly decreasing over the cosine
