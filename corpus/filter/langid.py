"""Language ID with fastText's lid.176 model, shipped with the package (never downloaded).

The model file is package data: corpus/filter/resources/lid.176.ftz (CC BY-SA 3.0, see the NOTICE.md
beside it), so `pip install` alone gives a working language ID. We only read that file and predict
with the `fasttext` module (a dependency of datatrove[processing]).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from corpus.errors import CorpusError

MODEL_FILE = Path(__file__).resolve().parent / "resources" / "lid.176.ftz"


def model_path() -> Path:
    if not MODEL_FILE.is_file():
        raise CorpusError(f"{MODEL_FILE}: the language-ID model is missing from this install; reinstall the package (pip install .)")
    return MODEL_FILE


@lru_cache(maxsize=1)
def _model():
    import fasttext

    fasttext.FastText.eprint = lambda *args, **kwargs: None  # its load-time notice is not for our users
    return fasttext.load_model(str(model_path()))


def identify(texts: pl.Series, max_chars: int, read: str = "text") -> tuple[pl.Series, pl.Series]:
    """(lang, lang_score) per text: the top lid.176 label and its probability. `read="words"`: the
    model sees only the whitespace-separated words that contain a letter, with their other characters
    (digits, punctuation, symbols) blanked, so code, markup and numbers do not lower its confidence."""
    text = pl.col("t").str.slice(0, max_chars)
    if read == "words":
        words = text.str.extract_all(r"\S*\p{L}\S*").list.eval(pl.element().str.replace_all(r"[^\p{L}\p{M}'-]+", " "))
        text = words.list.join(" ")
    # fastText reads one line per input: newlines and other whitespace runs become single spaces.
    lines = pl.DataFrame({"t": texts}).select(text.str.replace_all(r"\s+", " ").str.strip_chars())["t"].to_list()
    labels, probs = _model().predict(lines, k=1)
    langs = [label[0].removeprefix("__label__") if label else None for label in labels]
    scores = np.array([float(p[0]) if len(p) else np.nan for p in probs], dtype=np.float32)
    return pl.Series("lang", langs, dtype=pl.String), pl.Series("lang_score", scores).fill_nan(None)
