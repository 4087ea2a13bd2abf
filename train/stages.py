"""The `pretrain`, `sft` and `eval` stages of a pipeline YAML (pipelines/insurance.yaml).

    stages:
      - ...
      - tokenizer: {vocab_size: 4096}
      - tokenize: {val_fraction: 0.05}
      - pretrain: {preset: tiny, seq_len: 128, max_steps: 300}   # latest shards + tokenizer
      - instruct: {domains: [insurance]}
      - sft: {epochs: 2, lr: 3e-4}      # latest pretrain checkpoint + latest instruct pairs
      - eval: {prompts: 8}              # the pretrained checkpoint against the SFT model

Each stage finds its inputs among the folders the pipeline wrote before it, as `tokenize` does. A
finished stage whose inputs and options are unchanged is left as it is on a rerun; `pretrain`
resumes an unfinished run (`resume auto`) and starts over when its inputs or options changed.
The fingerprint of what a stage was run with is kept in OUT/stage.json (eval: in its report.json).

Only pydantic is imported at module level: the corpus CLI validates a pipeline without torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from corpus.document import CARD_JSON
from corpus.errors import CorpusError, validation_message
from corpus.outputs import fingerprint_of, input_identity, remove_ours, stored_fingerprint
from corpus.progress import say
from corpus.stages import Stage, StageRun, declare, earlier_or_path
from train.ablate import AblateOptions
from train.base_model import BaseModelStageConfig
from train.errors import TrainError
from train.pretrain_options import PretrainOptions
from train.sft import SFTOptions

STAGE_JSON = "stage.json"


class PretrainStageConfig(PretrainOptions):
    """`train pretrain`'s options (PretrainOptions); data and tokenizer come from the pipeline."""

    preset: Literal["tiny", "small", "125m", "1b"] | None = "tiny"  # unused with model_file or init_from
    model_file: str | None = Field(None, description="a YAML model shape instead of a preset, relative to the pipeline file")
    init_from: str | None = Field(None, description="an earlier stage (`base_model`) or a model folder relative to the pipeline file")


class SFTStageConfig(SFTOptions):
    """`train sft`'s options (SFTOptions); model and data come from the pipeline."""

    model_config = ConfigDict(extra="forbid")


class EvalStageConfig(BaseModel):
    """What `train eval` runs on the pretrained checkpoint and the SFT model."""

    model_config = ConfigDict(extra="forbid")

    split: Literal["train", "val"] = "val"
    seq_len: int = Field(128, gt=0, description="window for perplexity; longest SFT test example")
    max_tokens: int = Field(100_000, gt=0, description="most shard tokens per domain for perplexity")
    prompts: int | Literal["all"] = Field(8, description="held-out SFT prompts run side by side (0: no side-by-side)")
    max_new_tokens: int = Field(48, gt=0)
    batch_size: int = Field(8, gt=0, description="prompts generated together")
    repetition_penalty: float = Field(1.0, gt=0, description="above 1 discourages repeated tokens, for every model alike (train chat uses 1.1)")
    worst: int = Field(5, ge=0, description="worst answers listed for error analysis (per topic with `topics`)")
    judge: str | None = Field(None, description="module:attribute; unset: token-overlap F1 with the reference")
    against: list[str] = Field(["pretrain"], min_length=1,
                               description="the models the SFT model is compared with: earlier stages (their latest "
                                           "checkpoint for a pretrain run) or model folders relative to the pipeline file")  # fmt: skip
    topics: dict[str, list[str]] = Field(default_factory=dict,
                                         description="topic -> words; a prompt takes the first topic whose word it or its "
                                                     "reference holds (else `other`), for the error analysis")  # fmt: skip

    @field_validator("prompts")
    @classmethod
    def _prompts(cls, value):
        if isinstance(value, int) and value < 0:
            raise ValueError("a count (0: none) or 'all'")
        return value


class AblateStageConfig(AblateOptions):
    """`train ablate` in a pipeline. An arm or eval set is an earlier stage of the pipeline (its kind,
    e.g. `dedup`, for the latest such stage, or its folder name, e.g. `03-dedup`) or a dataset folder
    (relative to the pipeline file); an arm may list several."""

    arms: dict[str, str | list[str]]
    eval: list[str] = Field(default_factory=list)


# ---------------------------------------------------------------- inputs and fingerprints
#
# A stage's fingerprint (corpus.outputs.fingerprint_of) is kept in OUT/stage.json: pretrain writes
# its run in place (so that `resume auto` continues it), sft around its own run folder; eval keeps
# it in report.json, published by run_eval.


def _card_identity(folder: Path) -> str | None:
    """A folder with a card, by what it was made from (corpus.outputs.input_identity); None without one."""
    return input_identity(folder) if (Path(folder) / CARD_JSON).is_file() else None


def _stored_fingerprint(out: Path) -> str | None:
    return stored_fingerprint(out, STAGE_JSON)


def _store_fingerprint(out: Path, kind: str, fingerprint: str, inputs: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    record = {"stage": kind, "fingerprint": fingerprint, "inputs": {k: str(v) for k, v in inputs.items()}}
    (out / STAGE_JSON).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _latest(written: list[Path], test) -> Path | None:
    return next((p for p in reversed(written) if test(p)), None)


def _is_pretrain_run(path: Path) -> bool:
    folder = Path(path) / "checkpoints"
    return folder.is_dir() and any(p.is_dir() and not p.name.endswith(".tmp") for p in folder.glob("step-*"))


def _latest_checkpoint(run: Path) -> Path:
    found = sorted(
        (p for p in (run / "checkpoints").glob("step-*") if p.is_dir() and not p.name.endswith(".tmp") and (p / "config.json").is_file()),
        key=lambda p: int(p.name.split("-")[1]),
    )
    if not found:
        raise CorpusError(f"{run}: no finished checkpoint")
    return found[-1]


def _is_sft_run(path: Path) -> bool:
    from train.loading import is_run_of

    return is_run_of("sft")(path)


def _stage_ref(ref: str, written: list[Path], base: Path) -> Path:
    return Path(earlier_or_path(ref, written, base))


def _model_ref(ref: str, written: list[Path], base: Path) -> Path:
    """A model to evaluate: a pretrain run stands for its latest checkpoint."""
    path = _stage_ref(ref, written, base)
    return _latest_checkpoint(path) if _is_pretrain_run(path) else path


def _need(found: Path | None, what: str, kind: str, pipeline_file: str) -> Path:
    if found is None:
        raise CorpusError(f"{pipeline_file}: stage {kind!r} needs {what} before it")
    return found


# ---------------------------------------------------------------- the stages


def as_corpus_errors(run_stage):
    """A training stage as the pipeline runs it: the trainer's own errors (TrainError) become the
    engine's CorpusError, with the same one-line message, which `corpus run` prints as its own."""

    def run(stage_run: StageRun) -> Path:
        try:
            return run_stage(stage_run)
        except TrainError as e:
            raise CorpusError(str(e)) from e

    return run


def _pretrain_stage(run: StageRun) -> Path:
    options, written, out, base, overwrite, pipeline_file = run.options, run.written, run.out, run.base, run.overwrite, str(run.pipeline_file)
    from corpus.tokenize.shards import is_shards_folder
    from corpus.tokenize.train_tokenizer import is_tokenizer_folder

    shards = _need(_latest(written, is_shards_folder), "a 'tokenize' stage (token shards)", "pretrain", pipeline_file)
    tokdir = _need(_latest(written, is_tokenizer_folder), "a 'tokenizer' stage", "pretrain", pipeline_file)
    settings = options.model_dump()
    if settings["model_file"] is not None:
        settings["model_file"] = str((base / settings["model_file"]).resolve())
    init_card = None
    if settings["init_from"] is not None:
        init = _stage_ref(settings["init_from"], written, base)
        settings["init_from"], init_card = str(init), _card_identity(init)
    if settings["model_file"] is not None or settings["init_from"] is not None:
        settings["preset"] = None
    fp = fingerprint_of({"stage": "pretrain", "config": settings, "inputs": [_card_identity(shards), _card_identity(tokdir)] + ([init_card] if init_card else [])})
    if out.exists() and (overwrite or _stored_fingerprint(out) != fp):
        say(f"pretrain: {out}: {'--overwrite' if overwrite else 'inputs or options changed'}; starting a new run")
        remove_ours(out)
    if _is_pretrain_run(out):
        latest = _latest_checkpoint(out)
        if int(latest.name.split("-")[1]) >= options.max_steps:
            say(f"pretrain: {out} is finished ({latest.name}; same inputs and config); nothing to do")
            return out
    from corpus.progress import quiet
    from train.pretrain import PretrainConfig, pretrain

    try:
        config = PretrainConfig(data=str(shards), tokenizer=str(tokdir), output=str(out), resume="auto", quiet=quiet(),
                                **settings)  # fmt: skip
    except ValidationError as e:
        raise CorpusError(f"{pipeline_file}: pretrain: {validation_message(e)}") from None
    _store_fingerprint(out, "pretrain", fp, {"shards": shards, "tokenizer": tokdir})
    pretrain(config)
    return out


def _sft_data(written, stage: str, pipeline_file: str) -> tuple[Path, Path | None]:
    """The instruct stage's pairs to train on, and its held-out test pairs when it split them
    (`instruct: {test_split: ...}`): then SFT trains on train.jsonl and does not split again."""
    from corpus.instruct import PAIRS_FILE, TEST_FILE, TRAIN_FILE, is_instruct_folder

    folder = _need(_latest(written, is_instruct_folder), "an 'instruct' stage", stage, pipeline_file)
    if (folder / TRAIN_FILE).is_file() and (folder / TEST_FILE).is_file():
        return folder / TRAIN_FILE, folder / TEST_FILE
    return folder / PAIRS_FILE, None


def _sft_stage(run: StageRun) -> Path:
    options, written, out, overwrite, command, pipeline_file = run.options, run.written, run.out, run.overwrite, run.command, str(run.pipeline_file)
    pretrained = _need(_latest(written, _is_pretrain_run), "a 'pretrain' stage", "sft", pipeline_file)
    model = _latest_checkpoint(pretrained)
    pairs, held_out = _sft_data(written, "sft", pipeline_file)
    if held_out is not None:
        options = options.model_copy(update={"test_split": 0.0})  # the instruct stage held the test pairs out
    fp = fingerprint_of({"stage": "sft", "config": options.model_dump(), "model": str(model),
                         "model_fingerprint": _stored_fingerprint(pretrained), "pairs": input_identity(pairs)})  # fmt: skip
    if not overwrite and _is_sft_run(out) and _stored_fingerprint(out) == fp:
        say(f"sft: {out} is up to date (same model, pairs and config); nothing to do")
        return out
    from train.sft import run_sft

    run_sft(str(model), [str(pairs)], str(out), SFTOptions.model_validate(options.model_dump()), overwrite=True,
            command=command, log=say)  # fmt: skip
    _store_fingerprint(out, "sft", fp, {"model": model, "data": pairs})
    return out


def _eval_stage(run: StageRun) -> Path:
    options, written, out, base, overwrite, pipeline_file = run.options, run.written, run.out, run.base, run.overwrite, str(run.pipeline_file)
    from corpus.tokenize.shards import is_shards_folder

    sft = _need(_latest(written, _is_sft_run), "an 'sft' stage", "eval", pipeline_file)
    others = []
    for ref in options.against:
        model = _model_ref(ref, written, base)
        if not model.exists():
            raise CorpusError(f"{pipeline_file}: eval: against: {ref!r} is neither an earlier stage nor an existing model folder")
        others.append(model)
    shards = _latest(written, is_shards_folder)
    _, held_out = _sft_data(written, "eval", pipeline_file)
    test = held_out or sft / "data" / "test.jsonl"
    has_test = test.is_file() and test.stat().st_size > 0
    fp = fingerprint_of({"stage": "eval", "config": options.model_dump(), "base": [str(m) for m in others],
                         "base_cards": [_card_identity(m) or _stored_fingerprint(m) for m in others],
                         "sft": _stored_fingerprint(sft), "shards": _card_identity(shards) if shards else None})  # fmt: skip
    from train.evaluate import run_eval

    # the first N held-out examples (the SFT model never trained on them) are asked side by side
    use_prompts = bool(options.prompts) and has_test
    run_eval([*map(str, others), str(sft)], str(out), shards=str(shards) if shards else None, split=options.split,
             sft_test=[str(test)] if has_test else None, prompts_file=str(test) if use_prompts else None,
             prompts_limit=None if options.prompts == "all" else options.prompts, judge_spec=options.judge,
             seq_len=options.seq_len, max_tokens=options.max_tokens, max_new_tokens=options.max_new_tokens, worst=options.worst,
             log=say, eval_sources=[str(test)] if has_test else None, topics=options.topics, batch_size=options.batch_size,
             repetition_penalty=options.repetition_penalty, overwrite=overwrite, replace_stale=True, fingerprint=fp)  # fmt: skip
    return out


def _dataset_ref(ref: str, written: list[Path], base: Path, pipeline_file: str) -> str:
    """An earlier stage's folder (by folder name, or by kind: the latest such) or a path from the pipeline file."""
    from corpus.document import is_dataset

    by_name = [p for p in written if p.name == ref]
    by_kind = [p for p in written if p.name.split("-", 1)[-1] == ref and is_dataset(p)]
    if by_name or by_kind:
        return str((by_name or by_kind)[-1])
    path = (base / ref).resolve()
    if not path.exists():
        raise CorpusError(f"{pipeline_file}: ablate: {ref!r} is neither an earlier dataset stage nor an existing folder")
    return str(path)


def _ablate_stage(run: StageRun) -> Path:
    options, written, out, base, overwrite, pipeline_file = run.options, run.written, run.out, run.base, run.overwrite, str(run.pipeline_file)
    from train.ablate import AblateConfig, run_ablation

    arms = {name: [_dataset_ref(r, written, base, pipeline_file) for r in ([refs] if isinstance(refs, str) else refs)]
            for name, refs in options.arms.items()}  # fmt: skip
    evals = [_dataset_ref(r, written, base, pipeline_file) for r in options.eval]
    settings = options.model_dump(exclude={"arms", "eval"})
    if settings["tokenizer"] is not None:
        settings["tokenizer"] = _dataset_ref(settings["tokenizer"], written, base, pipeline_file)
    try:
        config = AblateConfig(arms=arms, eval=evals, output=str(out), **settings)
    except ValidationError as e:
        raise CorpusError(f"{pipeline_file}: ablate: {validation_message(e)}") from None
    report = run_ablation(config, overwrite=overwrite, replace_stale=True)
    for c in report["comparisons"]:
        spread = f" ± {c['diff_std']:.4f}" if c["diff_std"] is not None else ""
        say(f"ablate: {c['eval']}: {c['a']} - {c['b']} eval loss {c['diff_mean']:+.4f}{spread}: {c['verdict']}")
    say(f"ablate: report {out / 'report.md'}")
    return out


# ---------------------------------------------------------------- their declarations

def _base_model_stage(run: StageRun) -> Path:
    from train.base_model import write_base_model

    return write_base_model(run.options, run.base, run.out, say)


declare(Stage("base_model", BaseModelStageConfig, as_corpus_errors(_base_model_stage),
              "a pretrained model (the packaged SmolLM2, a local folder or a cached id) as a stage's folder"))  # fmt: skip
declare(Stage("pretrain", PretrainStageConfig, as_corpus_errors(_pretrain_stage), "pretrain (or continue pretraining) on the latest token shards"))
declare(Stage("sft", SFTStageConfig, as_corpus_errors(_sft_stage), "instruction-tune the latest pretrained model on the latest instruct pairs"))
declare(Stage("eval", EvalStageConfig, as_corpus_errors(_eval_stage), "compare the tuned model with others: perplexity, side by side, Elo, error analysis"))
declare(Stage("ablate", AblateStageConfig, as_corpus_errors(_ablate_stage), "equal-token ablation: one model per dataset arm, their eval losses compared"))
