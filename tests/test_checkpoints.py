"""Checkpoints that cannot be used: corrupt, truncated, incomplete, or holding pickled objects. Each is
a one-line error naming the file, never a traceback or torch's advice to load with weights_only=False;
`--resume auto` falls back to the last checkpoint that verifies."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from train.cli import main

from tests.conftest import build_token_pipeline

os.environ.setdefault("HF_HUB_OFFLINE", "1")
RUN = ["--seq-len", "32", "--batch-size", "4", "--warmup-steps", "2", "--log-every", "1", "--eval-every", "0",
       "--no-tensorboard", "--no-verify", "--max-steps", "6", "--save-every", "2"]  # fmt: skip
STEP2, STEP4 = "step-00000002", "step-00000004"


class NotATensor:
    """A class of our own: torch can only load a file holding it by unpickling arbitrary objects."""


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(shards, tokenizer, a run stopped at step 4 with checkpoints at steps 2 and 4)."""
    out = build_token_pipeline(tmp_path_factory.mktemp("checkpoints"), compare=False)
    shards, tokdir = out / "02-tokenize", out / "01-tokenizer"
    run = out / "run"
    assert pretrain(shards, tokdir, run, "--stop-at", "4") == 0
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [STEP2, STEP4]
    return shards, tokdir, run


def pretrain(shards: Path, tokdir: Path, run: Path, *extra: str) -> int:
    return main(["-q", "pretrain", "--data", str(shards), "--tokenizer", str(tokdir), "-o", str(run), *RUN, *extra])


def copy_run(base_run, tmp_path: Path) -> tuple[Path, Path, Path]:
    shards, tokdir, run = base_run
    shutil.copytree(run, tmp_path / "run")
    return shards, tokdir, tmp_path / "run"


def train_losses(run: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if r["split"] == "train"}


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("train: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert "weights_only" not in err, err  # torch's advice to unpickle the file never reaches the user
    return err


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def garbage(path: Path) -> None:
    path.write_bytes(b"not a checkpoint\n" * 64)


def empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize(
    "file, damage, expected",
    [
        ("trainer_state.pt", truncate, "corrupt or truncated"),
        ("trainer_state.pt", garbage, "corrupt"),
        ("trainer_state.pt", empty, "corrupt or truncated"),
        ("model.safetensors", truncate, "corrupt or truncated safetensors file"),
        ("model.safetensors", garbage, "corrupt or truncated safetensors file"),
        ("config.json", garbage, "not valid JSON"),
    ],
)
def test_a_corrupt_checkpoint_is_one_line_naming_the_file(base_run, tmp_path, capsys, file, damage, expected):
    shards, tokdir, run = copy_run(base_run, tmp_path)
    checkpoint = run / "checkpoints" / STEP4
    damage(checkpoint / file)
    capsys.readouterr()
    assert pretrain(shards, tokdir, run, "--resume", str(checkpoint)) == 2
    err = one_line_error(capsys)
    assert f"{checkpoint / file}: {expected}" in err, err
    if file != "trainer_state.pt":  # the model folder alone, as --init-from reads it
        assert pretrain(shards, tokdir, tmp_path / "other", "--init-from", str(checkpoint)) == 2
        err = one_line_error(capsys)
        assert f"{checkpoint / file}: {expected}" in err, err


def test_pickled_objects_are_refused_naming_the_file_without_unsafe_advice(base_run, tmp_path, capsys):
    shards, tokdir, run = copy_run(base_run, tmp_path)
    checkpoint = run / "checkpoints" / STEP4
    state = torch.load(checkpoint / "trainer_state.pt", weights_only=True)
    torch.save({**state, "extra": NotATensor()}, checkpoint / "trainer_state.pt")
    capsys.readouterr()
    assert pretrain(shards, tokdir, run, "--resume", str(checkpoint)) == 2
    err = one_line_error(capsys)
    assert f"{checkpoint / 'trainer_state.pt'}: holds Python objects that are not plain tensors" in err
    assert "will not be loaded" in err

    # a model folder whose weights are a pickle with an object of ours: --init-from and `train generate`
    model = tmp_path / "model"
    shutil.copytree(checkpoint, model)
    (model / "model.safetensors").unlink()
    (model / "trainer_state.pt").unlink()
    from safetensors.torch import load_file

    weights = load_file(checkpoint / "model.safetensors")
    torch.save({**weights, "extra": NotATensor()}, model / "pytorch_model.bin")
    assert pretrain(shards, tokdir, tmp_path / "other", "--init-from", str(model)) == 2
    err = one_line_error(capsys)
    assert f"{model / 'pytorch_model.bin'}: holds Python objects that are not plain tensors" in err
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("hello\n")
    assert main(["-q", "generate", str(model), "--prompts", str(prompts), "--max-new-tokens", "2"]) == 2
    err = one_line_error(capsys)
    assert f"{model / 'pytorch_model.bin'}: holds Python objects that are not plain tensors" in err


def test_resume_auto_falls_back_to_the_last_checkpoint_that_verifies(base_run, tmp_path, capsys):
    shards, tokdir, run = copy_run(base_run, tmp_path)
    before = train_losses(run)
    truncate(run / "checkpoints" / STEP4 / "trainer_state.pt")
    capsys.readouterr()
    assert pretrain(shards, tokdir, run, "--resume", "auto", "--stop-at", "4") == 0
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if line.startswith("train: warning:")]
    assert len(warning) == 1 and f"{run / 'checkpoints' / STEP4 / 'trainer_state.pt'}: corrupt or truncated" in warning[0]
    assert warning[0].endswith(f"resuming from {STEP2}") and "Traceback" not in err
    # steps 3 and 4 trained again from step 2: the same losses, and a whole step-4 checkpoint again
    assert train_losses(run) == before
    state = torch.load(run / "checkpoints" / STEP4 / "trainer_state.pt", weights_only=True)
    assert state["step"] == 4


@pytest.mark.parametrize("damage", ["missing weights", "missing state", "wrong step", "missing config"])
def test_an_incomplete_latest_checkpoint_is_skipped_with_a_warning(base_run, tmp_path, capsys, damage):
    """Checked up to the choice of checkpoint: --max-steps 2 makes the resumed run stop there."""
    shards, tokdir, run = copy_run(base_run, tmp_path)
    latest = run / "checkpoints" / STEP4
    bad_file = {"missing weights": "model.safetensors", "missing state": "trainer_state.pt",
                "wrong step": "trainer_state.pt", "missing config": "config.json"}[damage]  # fmt: skip
    if damage == "wrong step":
        shutil.copy(run / "checkpoints" / STEP2 / "trainer_state.pt", latest / "trainer_state.pt")
    else:
        (latest / bad_file).unlink()
    capsys.readouterr()
    # the fallback, step 2, is at --max-steps 2: "nothing to do" proves which checkpoint was chosen
    assert pretrain(shards, tokdir, run, "--resume", "auto", "--max-steps", "2") == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("train: warning:") and str(latest / bad_file) in lines[0], lines
    assert lines[0].endswith(f"resuming from {STEP2}")
    assert f"{STEP2}: the checkpoint is at step 2, --max-steps is 2: nothing to do" in lines[1]


def test_no_checkpoint_verifies_is_an_error_not_a_new_run(base_run, tmp_path, capsys):
    shards, tokdir, run = copy_run(base_run, tmp_path)
    truncate(run / "checkpoints" / STEP4 / "model.safetensors")
    garbage(run / "checkpoints" / STEP2 / "trainer_state.pt")
    metrics = (run / "metrics.jsonl").read_text()
    capsys.readouterr()
    assert pretrain(shards, tokdir, run, "--resume", "auto") == 2
    err = one_line_error(capsys)
    assert "no checkpoint verifies" in err
    assert str(run / "checkpoints" / STEP4 / "model.safetensors") in err
    assert str(run / "checkpoints" / STEP2 / "trainer_state.pt") in err
    assert (run / "metrics.jsonl").read_text() == metrics  # nothing restarted or overwritten
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [STEP2, STEP4]


def test_a_kill_during_a_save_leaves_the_previous_checkpoint_latest(base_run, tmp_path, monkeypatch, capsys):
    shards, tokdir, run = copy_run(base_run, tmp_path)
    before = train_losses(run)
    shutil.rmtree(run / "checkpoints" / STEP4)
    real_save = torch.save

    def killed_while_saving_step_4(obj, path, *args, **kwargs):
        if "step-00000004" in str(path):
            Path(path).write_bytes(b"half")  # the file was being written when the process died
            raise KeyboardInterrupt
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", killed_while_saving_step_4)
    assert pretrain(shards, tokdir, run, "--resume", "auto", "--stop-at", "4") == 130
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [STEP2, STEP4 + ".tmp"]
    monkeypatch.setattr(torch, "save", real_save)
    capsys.readouterr()
    assert pretrain(shards, tokdir, run, "--resume", "auto", "--stop-at", "4") == 0
    assert "warning" not in capsys.readouterr().err  # the interrupted save is no checkpoint
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [STEP2, STEP4]
    assert train_losses(run) == before


def test_torch_advice_to_unpickle_never_reaches_the_user(monkeypatch, tmp_path, capsys):
    """Even from a load we did not foresee (an internal error), torch's weights_only=False advice is not shown."""
    import pickle

    import train.pretrain

    def load_fails(config):
        raise pickle.UnpicklingError("Weights only load failed. Re-running `torch.load` with `weights_only` set to "
                                     "`False` will likely succeed, but it can result in arbitrary code execution.")  # fmt: skip

    monkeypatch.setattr(train.pretrain, "pretrain", load_fails)
    assert main(["pretrain", "--data", str(tmp_path), "--tokenizer", str(tmp_path), "-o", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("train: internal error: UnpicklingError: a torch file holds something other than plain tensors")
    assert "weights_only" not in err and err.count("\n") == 1
