"""What the trainer takes from the engine: the shard format and a few leaf modules, nothing else;
and train's own errors, printed by both commands as one line."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

# What train's core may import from corpus: the shard format, the output-folder contract, and the
# leaf modules both commands share (one-line errors, bounded YAML, the click options).
BRIDGE = {"corpus.shard_format", "corpus.outputs", "corpus.errors", "corpus.yaml_file", "corpus.cli_options"}

# The modules that compose corpus stages on purpose and may import any of corpus: a pipeline's
# training stages, the ablation (mix, split, tokenize, then train), and the lineage that reads
# decontamination's eval items.
GLUE = {"stages.py", "ablate.py", "lineage.py"}


def corpus_imports(path: Path) -> set[str]:
    """Every corpus module a file imports, at module level or inside a function, or names for a lazy
    import (`"corpus.mix.cli:parse_count"`, as the click options do)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"corpus(\.\w+)*:\w+", node.value):
            found.add(node.value.split(":")[0])
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "corpus"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "corpus":
            # `from corpus import x` names the module corpus.x (or an attribute of the package: refused alike)
            found |= {f"corpus.{a.name}" for a in node.names} if node.module == "corpus" else {node.module}
    return found


def forbidden_imports(files: list[Path], allowed: set[str]) -> list[str]:
    return [f"{p.relative_to(REPO) if p.is_relative_to(REPO) else p} imports {m}" for p in files for m in sorted(corpus_imports(p) - allowed)]


def test_train_core_imports_only_the_bridge_from_corpus():
    modules = sorted((REPO / "train").glob("*.py"))
    assert {p.name for p in modules} >= GLUE | {"data.py", "pretrain.py", "cli.py"}
    core = [p for p in modules if p.name not in GLUE]
    assert forbidden_imports(core, BRIDGE) == []


def test_the_bridge_imports_nothing_else_from_corpus():
    # corpus.outputs aside (the output-folder contract, with rules of its own), importing the bridge
    # brings in no other part of the engine
    files = [REPO / (m.replace(".", "/") + ".py") for m in sorted(BRIDGE - {"corpus.outputs"})]
    assert forbidden_imports(files, BRIDGE) == []


def test_a_forbidden_import_is_found_wherever_it_stands(tmp_path):
    module = tmp_path / "core.py"
    module.write_text("from corpus.shard_format import read_index\n"
                      "import corpus.errors\n"
                      "def f():\n    from corpus.tokenize.shards import INDEX_JSON\n"
                      "def g():\n    from corpus import progress\n"
                      "from . import sibling\n"
                      "LAZY = {'type': 'corpus.mix.cli:parse_count', 'text': 'corpus: error'}\n")  # fmt: skip
    assert corpus_imports(module) == {"corpus.shard_format", "corpus.errors", "corpus.tokenize.shards", "corpus.progress", "corpus.mix.cli"}
    assert forbidden_imports([module], BRIDGE) == [f"{module} imports corpus.mix.cli", f"{module} imports corpus.progress",
                                                   f"{module} imports corpus.tokenize.shards"]  # fmt: skip


def test_the_shard_format_imports_light():
    code = "import sys, corpus.shard_format; print(sorted(m for m in ('torch', 'datatrove', 'pyarrow', 'numpy', 'tokenizers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_train_error_is_trains_own():
    from corpus.errors import CorpusError
    from train.errors import CheckpointError, TrainError

    assert not issubclass(TrainError, CorpusError) and TrainError.exit_code == 2
    assert issubclass(CheckpointError, TrainError)


@pytest.mark.parametrize("error", ["train", "corpus"])
def test_train_prints_its_errors_and_the_engines_as_one_line(monkeypatch, capsys, error):
    import train.cli
    from corpus.errors import CorpusError
    from train.errors import TrainError

    def fails(args):
        raise (TrainError if error == "train" else CorpusError)("x.json: something is wrong")

    monkeypatch.setattr(train.cli, "cmd_eval", fails)
    assert train.cli.main(["eval", "m1"]) == 2
    assert capsys.readouterr().err == "train: error: x.json: something is wrong\n"


def test_a_training_stage_hands_the_engine_a_corpus_error(tmp_path):
    """`corpus run` prints a training stage's TrainError as its own one-line error, exit code 2."""
    from corpus.errors import CorpusError
    from corpus.stages import STAGE_MODULES, StageRun, stage
    from train.errors import CheckpointError, TrainError
    from train.stages import as_corpus_errors

    def fails(run):
        raise CheckpointError("run/checkpoints/step-3/model.safetensors: truncated")

    with pytest.raises(CorpusError, match=r"^run/checkpoints/step-3/model.safetensors: truncated$"):
        as_corpus_errors(fails)(None)
    # every training stage is declared so: a base model that is not there is the trainer's error, the engine's line
    assert [n for n, m in STAGE_MODULES.items() if m == "train.stages"] == ["base_model", "pretrain", "sft", "eval", "ablate"]
    options = stage("base_model").config(model=str(tmp_path / "no-such-model"))
    run = StageRun(kind="base_model", index=1, options=options, out=tmp_path / "out", name="p/base", written=[], pipeline=None,
                   pipeline_file=tmp_path / "p.yaml", output=tmp_path)  # fmt: skip
    with pytest.raises(CorpusError) as raised:
        stage("base_model").run(run)
    assert not isinstance(raised.value, TrainError) and isinstance(raised.value.__cause__, TrainError)
