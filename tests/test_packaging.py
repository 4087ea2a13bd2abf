"""What `pip install` gives: the language-ID model inside the package, and a hint for a missing extra."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from corpus.errors import missing_extra
from tests.conftest import REPO


@pytest.mark.slow
def test_the_wheel_carries_the_language_id_model_and_its_licence_notice(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(REPO), "-w", str(tmp_path)],
                   check=True, capture_output=True)  # fmt: skip
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "corpus/filter/resources/lid.176.ftz" in names
    assert "corpus/filter/resources/NOTICE.md" in names
    model = zipfile.ZipFile(wheel).getinfo("corpus/filter/resources/lid.176.ftz")
    assert model.file_size == (REPO / "corpus/filter/resources/lid.176.ftz").stat().st_size


def test_language_id_reads_the_packaged_model():
    from corpus.filter.langid import MODEL_FILE, model_path

    assert model_path() == MODEL_FILE and MODEL_FILE.is_relative_to(REPO / "corpus")


def test_missing_extra_names_the_extra_only_for_its_modules():
    assert "'train' extra" in missing_extra(ModuleNotFoundError("No module named 'torch'", name="torch"))
    assert "'train' extra" in missing_extra(ModuleNotFoundError("x", name="trl.trainer"))
    assert "'ray' extra" in missing_extra(ModuleNotFoundError("x", name="ray"))
    assert missing_extra(ModuleNotFoundError("x", name="polars")) is None  # a core dependency: a broken install, not an extra


def test_train_without_its_extra_says_which_extra_in_one_line(tmp_path):
    script = ("import sys; sys.modules['torch'] = None\n"
              "from train.cli import main\n"
              f"sys.exit(main(['pretrain', '--data', {str(tmp_path / 'd')!r}, '--tokenizer', {str(tmp_path / 't')!r}, '-o', {str(tmp_path / 'run')!r}]))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == ["train: error: this needs the optional 'train' extra, which is not installed (module 'torch' is missing): "
                                        "pip install 'corpus-train[train]'"]  # fmt: skip


@pytest.mark.parametrize("module, code, line", [("polars", 1, "corpus: internal error: ModuleNotFoundError"),
                                                ("ray", 2, "corpus: error: this needs the optional 'ray' extra")])  # fmt: skip
def test_only_an_extras_module_gets_the_hint(monkeypatch, capsys, module, code, line):
    import corpus.cli

    def missing(args):
        raise ModuleNotFoundError(f"No module named {module!r}", name=module)

    monkeypatch.setattr(corpus.cli, "cmd_filter", missing)
    assert corpus.cli.main(["filter", "in", "-o", "out"]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(line)
