"""Gopher quality, Gopher repetition, C4 and FineWeb rules: scores as columns, decisions separate.

`quality_scores` computes every score of a batch with polars expressions over the whole batch and
numba kernels: one walk over the text bytes for the words (corpus.filter.word_stats) and one for
the n-gram repetition scores, whose greedy skip is sequential by nature.
`quality_rules` lists the named checks in datatrove's order; `decide` turns scores and thresholds
(with per-domain overrides) into the first failing rule of each document.

The scores reproduce datatrove 0.10.1's filters given the same word splitting (corpus.filter.words),
including its quirks: Gopher counts symbols as words in its ratios, C4 drops lines before FineWeb
sees the text, FineWeb measures lines of the C4-cleaned text.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numba
import numpy as np
import polars as pl
from datatrove.utils.text import TERMINAL_PUNCTUATION

from corpus.filter.config import QualityConfig
from corpus.filter.line_stats import fineweb_lines, gopher_pieces
from corpus.filter.word_stats import WordStats, word_stats
from corpus.filter.words import ENDS_WITH_SENTENCE_END, SENTENCE_END_PATTERN

# str.splitlines() breaks on these too; we map them to \n before counting lines the way it does.
_LINE_BREAKS = r"\r\n|[\r\x0B\x0C\x1C\x1D\x1E\x85\u2028\u2029]"
_CITATION = r"\[\d*\]|\[edit\]|\[citation needed\]"
_C4_END_PUNCTUATION = r"[.?!\"']$"
_POLICY_SUBSTRINGS = ["terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies"]

C4_TEXT = "_c4_text"  # the text with C4's dropped lines removed (what datatrove passes on)


# ---------------------------------------------------------------- scores


def quality_scores(texts: pl.Series, cfg: QualityConfig, langs: pl.Series | None = None,
                   lang_scores: pl.Series | None = None) -> pl.DataFrame:  # fmt: skip
    """One row per document, one column per score (and C4_TEXT when C4 is scored). `langs` and
    `lang_scores` (language ID's output, when it ran) choose the function-word list of `prose`."""
    frame = pl.DataFrame({"text": texts.cast(pl.String)}).with_row_index("doc")
    columns: list[pl.Series] = []
    if cfg.scored("gopher_quality") or cfg.scored("gopher_repetition"):
        stop_words = cfg.gopher_quality.stop_words if cfg.scored("gopher_quality") else []
        words = word_stats(frame["text"], stop_words)
    if cfg.scored("gopher_quality"):
        columns += _gopher_quality(frame, words)
    elif cfg.scored("gopher_repetition"):  # its min_doc_words guard counts the same words
        columns.append(pl.Series("gopher_words", words.symbolless))
    if cfg.scored("prose"):
        n = len(texts)
        none = pl.Series([None] * n, dtype=pl.String)
        columns += _prose(frame, none if langs is None else langs, pl.Series([None] * n, dtype=pl.Float64) if lang_scores is None else lang_scores,
                          cfg.prose)  # fmt: skip
    if cfg.scored("gopher_repetition"):
        columns += _gopher_repetition(frame, words, cfg.gopher_repetition)
    text_for_fineweb = frame["text"]
    if cfg.scored("c4"):
        c4_columns = _c4(frame, cfg.c4)
        text_for_fineweb = c4_columns[-1]
        columns += c4_columns
    if cfg.scored("fineweb"):
        columns += _fineweb(text_for_fineweb, cfg.fineweb)
    return pl.DataFrame(columns) if columns else pl.DataFrame({"_none": pl.Series([None] * len(texts), dtype=pl.Null)})


def _gopher_quality(frame: pl.DataFrame, ws: WordStats) -> list[pl.Series]:
    text = pl.col("text")
    lines = text.str.replace_all(_LINE_BREAKS, "\n")
    n_lines = pl.when(text == "").then(0).otherwise(
        lines.str.count_matches("\n", literal=True) + (~lines.str.ends_with("\n")).cast(pl.UInt32)
    )
    per_doc = frame.select(
        n_lines.cast(pl.Float64).alias("n_lines"),
        text.str.count_matches("#", literal=True).alias("hashes"),
        (text.str.count_matches("...", literal=True) + text.str.count_matches("…", literal=True)).alias("ellipses"),
        lines.str.count_matches(r"(?m)^[^\S\n]*[•\-]").alias("bullet_lines"),
        lines.str.count_matches(r"(?m)(?:\.\.\.|…)[^\S\n]*$").alias("ellipsis_lines"),
    )
    # word-level counts, from one walk over the words (corpus.filter.word_stats)
    words, word_chars, alpha, stop_words = ws.symbolless, ws.symbolless_chars, ws.alpha, ws.stop_words
    tokens = ws.counts.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return [
            pl.Series("gopher_words", words),
            pl.Series("gopher_mean_word_length", word_chars / words).fill_nan(None),
            pl.Series("gopher_hash_ratio", per_doc["hashes"].to_numpy() / tokens).fill_nan(None),
            pl.Series("gopher_ellipsis_ratio", per_doc["ellipses"].to_numpy() / tokens).fill_nan(None),
            (per_doc["bullet_lines"] / per_doc["n_lines"]).fill_nan(None).alias("gopher_bullet_lines_ratio"),
            (per_doc["ellipsis_lines"] / per_doc["n_lines"]).fill_nan(None).alias("gopher_end_ellipsis_lines_ratio"),
            pl.Series("gopher_alpha_words_ratio", alpha / tokens).fill_nan(None),
            pl.Series("gopher_stop_words", stop_words.astype(np.int64)),
        ]


_FUNCTION_WORD_PAIRS: pl.DataFrame | None = None


def _function_word_pairs() -> pl.DataFrame:
    global _FUNCTION_WORD_PAIRS
    if _FUNCTION_WORD_PAIRS is None:
        from corpus.filter.function_words import FUNCTION_WORDS

        rows = [(lang, word) for lang, words in FUNCTION_WORDS.items() for word in sorted(words)]
        _FUNCTION_WORD_PAIRS = pl.DataFrame(rows, schema={"lang": pl.String, "w": pl.String}, orient="row")
    return _FUNCTION_WORD_PAIRS


def _prose(frame: pl.DataFrame, langs: pl.Series, lang_scores: pl.Series, rule) -> list[pl.Series]:
    """Function-word ratio, word variety and alpha-word ratio of each whole document.

    Words here are runs of letters, lower-cased. The function-word list is the document's language's
    when language ID is sure of it (at least `lang_confidence`); when it is not sure, the list that
    matches the document best; a language without a list, identified surely, is not judged (null).
    """
    from corpus.filter.function_words import FUNCTION_WORDS

    text = pl.col("text")
    runs = frame.select("doc", text.str.to_lowercase().str.extract_all(r"\p{L}+").alias("w"))
    n_words = runs["w"].list.len().cast(pl.Int64)
    variety = runs["w"].list.n_unique().cast(pl.Float64) / n_words.cast(pl.Float64).sqrt()
    per_lang = (
        runs.explode("w").drop_nulls("w").join(_function_word_pairs(), on="w").group_by("doc", "lang").len()
    )
    listed = langs.is_in(list(FUNCTION_WORDS)).fill_null(False)
    sure = (lang_scores.fill_null(0.0) >= rule.lang_confidence).to_numpy()
    docs = pl.DataFrame({"doc": frame["doc"], "lang": langs})
    own = docs.join(per_lang, on=["doc", "lang"], how="left")["len"].fill_null(0).to_numpy()
    best = docs.select("doc").join(per_lang.group_by("doc").agg(pl.col("len").max()), on="doc", how="left")["len"]
    best = best.fill_null(0).to_numpy()
    count = np.where(sure & listed.to_numpy(), own, best)
    judged = ~(sure & ~listed.to_numpy()) & (n_words.to_numpy() > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(judged, count / n_words.to_numpy(), np.nan)
    spaced = frame.select(text.str.count_matches(r"\S+").alias("all"), text.str.count_matches(r"\S*\p{L}\S*").alias("alpha"))
    return [
        n_words.alias("prose_words"),
        pl.Series("prose_function_word_ratio", ratio).fill_nan(None),
        variety.fill_nan(None).alias("prose_word_variety"),
        (spaced["alpha"] / spaced["all"]).fill_nan(None).alias("prose_alpha_words_ratio"),
    ]


def _gopher_repetition(frame: pl.DataFrame, ws: WordStats, rule) -> list[pl.Series]:
    pieces = gopher_pieces(frame["text"])
    chars = pl.Series(pieces.chars.astype(np.float64))
    out = [
        (pl.Series(pieces.para_dups) / pl.Series(pieces.paragraphs)).alias("gopher_rep_dup_para_frac"),
        (pl.Series(pieces.para_dup_chars) / chars).alias("gopher_rep_dup_para_char_frac"),
        (pl.Series(pieces.line_dups) / pl.Series(pieces.lines)).alias("gopher_rep_dup_line_frac"),
        (pl.Series(pieces.line_dup_chars) / chars).alias("gopher_rep_dup_line_char_frac"),
    ]
    top_ns = sorted(rule.top_n_grams)
    dup_ns = sorted(rule.dup_n_grams)
    if top_ns or dup_ns:
        top_chars, dup_chars = _ngram_repetition(
            ws.offsets, ws.hashes, ws.lengths, np.array(top_ns, np.int64), np.array(dup_ns, np.int64)
        )
        chars_np = chars.to_numpy()
        n_words = ws.counts
        with np.errstate(divide="ignore", invalid="ignore"):
            for j, n in enumerate(top_ns):
                frac = np.where(n_words >= n, top_chars[:, j] / chars_np, np.nan)
                out.append(pl.Series(f"gopher_rep_top_{n}_gram_char_frac", frac).fill_nan(None))
            for j, n in enumerate(dup_ns):
                out.append(pl.Series(f"gopher_rep_dup_{n}_gram_char_frac", dup_chars[:, j] / chars_np).fill_nan(None))
    return out


@numba.njit(cache=True, nogil=True)
def _slot(table_keys, table_used, mask, key):
    """Open-addressing lookup: the slot holding `key`, or the empty slot where it would go."""
    slot = (key ^ (key >> np.uint64(29))) & mask
    while table_used[slot] and table_keys[slot] != key:
        slot = (slot + np.uint64(1)) & mask
    return slot


@numba.njit(cache=True, nogil=True)
def _ngram_repetition(offsets, hashes, lengths, top_ns, dup_ns):
    """Gopher's n-gram repetition in characters, per document and n.

    top: characters of the most frequent n-gram (words joined by spaces) times its count, ties going
    to the n-gram seen first; dup: characters of n-grams (words joined without spaces) that repeat an
    earlier one, skipping past each repeat as datatrove's find_all_duplicate does. An n-gram is keyed
    by a hash of its word hashes, extended word by word as n grows; one open-addressing table,
    cleared slot by slot, serves every document.
    """
    n_docs = len(offsets) - 1
    top = np.zeros((n_docs, len(top_ns)), np.float64)
    dup = np.zeros((n_docs, len(dup_ns)), np.float64)
    max_n = 0
    for n in top_ns:
        max_n = max(max_n, n)
    for n in dup_ns:
        max_n = max(max_n, n)
    longest = 1
    for d in range(n_docs):
        longest = max(longest, offsets[d + 1] - offsets[d])
    capacity = 1
    while capacity < 2 * longest:
        capacity *= 2
    mask = np.uint64(capacity - 1)
    table_keys = np.zeros(capacity, np.uint64)
    table_used = np.zeros(capacity, np.bool_)
    table_counts = np.zeros(capacity, np.int64)
    slots = np.empty(longest, np.uint64)
    keys = np.empty(longest, np.uint64)  # keys[i]: hash of words[i:i+n] for the current n
    chars = np.empty(longest, np.int64)  # chars[i]: characters of words[i:i+n]
    prime = np.uint64(1099511628211)
    basis = np.uint64(14695981039346656037)
    for d in range(n_docs):
        start, stop = offsets[d], offsets[d + 1]
        n_words = stop - start
        for i in range(n_words):
            keys[i] = basis
            chars[i] = 0
        for n in range(1, max_n + 1):
            if n_words < n:
                break
            n_grams = n_words - n + 1
            for i in range(n_grams):
                keys[i] = (keys[i] ^ hashes[start + i + n - 1]) * prime
                chars[i] += lengths[start + i + n - 1]
            for j in range(len(top_ns)):
                if top_ns[j] != n:
                    continue
                best = 0
                for i in range(n_grams):
                    slot = _slot(table_keys, table_used, mask, keys[i])
                    if not table_used[slot]:
                        table_used[slot] = True
                        table_keys[slot] = keys[i]
                        table_counts[slot] = 0
                    table_counts[slot] += 1
                    best = max(best, table_counts[slot])
                    slots[i] = slot
                for i in range(n_grams):
                    if table_counts[slots[i]] == best:
                        top[d, j] = (chars[i] + n - 1) * best
                        break
                for i in range(n_grams):
                    table_used[slots[i]] = False
            for j in range(len(dup_ns)):
                if dup_ns[j] != n:
                    continue
                used = 0
                repeated = 0
                i = 0
                while i < n_grams:
                    slot = _slot(table_keys, table_used, mask, keys[i])
                    if table_used[slot]:
                        repeated += chars[i]
                        i += n
                    else:
                        table_used[slot] = True
                        table_keys[slot] = keys[i]
                        slots[used] = slot
                        used += 1
                        i += 1
                for i in range(used):
                    table_used[slots[i]] = False
                dup[d, j] = repeated
    return top, dup


def _c4(frame: pl.DataFrame, rule) -> list[pl.Series]:
    """C4's line pass: which lines survive, whether a surviving-so-far line holds lorem ipsum or a
    curly bracket (either drops the document), and sentences counted over the kept lines."""
    lines = (
        frame.select("doc", pl.col("text").str.replace_all(_LINE_BREAKS, "\n").str.split("\n").alias("raw"))
        .explode("raw")
        .select("doc", pl.col("raw").fill_null("").str.strip_chars().alias("s"))
    )
    # "at least k words" as one early-stopping regex instead of counting every word
    k = max(rule.min_words_per_line, 0)
    enough_words = pl.col("s").str.contains(r"^(?:\S+\s+){%d}\S" % (k - 1)) if k > 0 else pl.lit(True)
    long_word = _has_long_word(lines["s"], rule.max_word_length) if rule.max_word_length != -1 else pl.lit(False)
    line = pl.col("s").str.replace_all(_CITATION, "") if rule.remove_citations else pl.col("s")
    candidate = enough_words & ~long_word
    if rule.filter_no_terminal_punct:
        candidate = candidate & line.str.contains(_C4_END_PUNCTUATION) & ~line.str.ends_with("...")
    # Only lines that pass the cheap checks are looked at further (most web lines do not).
    candidates = lines.filter(candidate).select("doc", line.alias("line"))
    line = pl.col("line")
    javascript = line.str.contains("(?i)javascript") if rule.filter_javascript else pl.lit(False)
    policy = line.str.to_lowercase().str.contains_any(_POLICY_SUBSTRINGS) if rule.filter_policy else pl.lit(False)
    kept = ~javascript & ~policy
    sentences = line.str.count_matches(SENTENCE_END_PATTERN) + (~line.str.contains(ENDS_WITH_SENTENCE_END)).cast(pl.UInt32)
    per_doc = (
        candidates.with_columns(kept.alias("kept"), javascript.alias("javascript"))
        .group_by("doc")
        .agg(
            line.str.contains("(?i)lorem ipsum").sum().alias("c4_lorem_ipsum_lines"),
            (~pl.col("javascript") & line.str.contains("{", literal=True)).sum().alias("c4_curly_bracket_lines"),
            sentences.filter(pl.col("kept")).sum().alias("c4_sentences"),
            pl.col("kept").sum().alias("kept_lines"),
            line.filter(pl.col("kept")).str.join("\n").str.strip_chars().alias(C4_TEXT),
        )
    )
    n_lines = frame.select(
        "doc", (pl.col("text").str.replace_all(_LINE_BREAKS, "\n").str.count_matches("\n", literal=True) + 1).alias("n_lines")
    )
    per_doc = n_lines.join(per_doc, on="doc", how="left").sort("doc")
    counts = [
        per_doc[c].fill_null(0).cast(pl.Int64) for c in ("c4_lorem_ipsum_lines", "c4_curly_bracket_lines", "c4_sentences")
    ]
    dropped = (per_doc["n_lines"].cast(pl.Int64) - per_doc["kept_lines"].fill_null(0).cast(pl.Int64)).alias("c4_lines_dropped")
    return counts + [dropped, per_doc[C4_TEXT].fill_null("")]


def _has_long_word(lines: pl.Series, limit: int) -> pl.Series:
    """Whether a line has a whitespace-separated word over `limit` characters. Only lines longer than
    the limit can, and they are rare, so only those few are split."""
    out = np.zeros(len(lines), dtype=bool)
    long_rows = np.flatnonzero((lines.str.len_chars() > limit).to_numpy())
    for row in long_rows:
        out[row] = max(map(len, lines[int(row)].split()), default=0) > limit
    return pl.Series(out)


def _fineweb(texts: pl.Series, rule) -> list[pl.Series]:
    stop_chars = rule.stop_chars if rule.stop_chars is not None else TERMINAL_PUNCTUATION
    lines = fineweb_lines(texts, "".join(stop_chars), rule.short_line_length)
    n = pl.Series(lines.lines.astype(np.float64))
    words = pl.Series(word_stats(texts).counts.astype(np.float64))
    # no non-blank line: datatrove rejects as "empty"; a zero punctuation ratio rejects it here too
    punct_ratio = pl.Series(np.where(lines.lines > 0, lines.punct / np.maximum(lines.lines, 1), 0.0))
    return [
        punct_ratio.alias("fineweb_line_punct_ratio"),
        (pl.Series(lines.short) / n).alias("fineweb_short_line_ratio"),
        (pl.Series(lines.dup_chars) / pl.Series((lines.chars - lines.newlines).astype(np.float64))).alias("fineweb_char_dup_ratio"),
        (pl.Series(lines.newlines) / words).alias("fineweb_list_ratio"),
        pl.Series("fineweb_lines", lines.lines),
    ]


# ---------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Check:
    """One named check: reject when `score op threshold` (a null score or threshold never rejects)."""

    reason: str
    rule: str  # the rule family in QualityConfig
    score: str  # the score column
    op: str  # "<" or ">"
    threshold: str  # the option of the rule holding the threshold
    key: int | None = None  # for n-gram dicts: which n
    guard: tuple[str, str] | None = None  # (score, option): judged only where score >= the option's value


def quality_checks(cfg: QualityConfig) -> list[Check]:
    """Every check, in datatrove's order (the first failing one becomes the reason); the repetition
    checks are guarded by gopher_repetition.min_doc_words."""
    checks = [
        Check("gopher_short_doc", "gopher_quality", "gopher_words", "<", "min_doc_words"),
        Check("gopher_long_doc", "gopher_quality", "gopher_words", ">", "max_doc_words"),
        Check("gopher_below_avg_threshold", "gopher_quality", "gopher_mean_word_length", "<", "min_avg_word_length"),
        Check("gopher_above_avg_threshold", "gopher_quality", "gopher_mean_word_length", ">", "max_avg_word_length"),
        Check("gopher_too_many_hashes", "gopher_quality", "gopher_hash_ratio", ">", "max_symbol_word_ratio"),
        Check("gopher_too_many_ellipsis", "gopher_quality", "gopher_ellipsis_ratio", ">", "max_symbol_word_ratio"),
        Check("gopher_too_many_bullets", "gopher_quality", "gopher_bullet_lines_ratio", ">", "max_bullet_lines_ratio"),
        Check("gopher_too_many_end_ellipsis", "gopher_quality", "gopher_end_ellipsis_lines_ratio", ">", "max_ellipsis_lines_ratio"),
        Check("gopher_below_alpha_threshold", "gopher_quality", "gopher_alpha_words_ratio", "<", "min_alpha_words_ratio"),
        Check("gopher_enough_stop_words", "gopher_quality", "gopher_stop_words", "<", "min_stop_words"),
        # ours (the general profile); never scored under web-strict, so datatrove's order is kept there
        Check("prose_few_function_words", "prose", "prose_function_word_ratio", "<", "min_function_word_ratio"),
        Check("prose_low_word_variety", "prose", "prose_word_variety", "<", "min_word_variety",
              guard=("prose_words", "min_words_for_variety")),  # fmt: skip
        Check("prose_below_alpha_threshold", "prose", "prose_alpha_words_ratio", "<", "min_alpha_words_ratio"),
    ]
    checks += [
        Check("gopher_rep_dup_para_frac", "gopher_repetition", "gopher_rep_dup_para_frac", ">", "dup_para_frac"),
        Check("gopher_rep_dup_para_char_frac", "gopher_repetition", "gopher_rep_dup_para_char_frac", ">", "dup_para_char_frac"),
        Check("gopher_rep_dup_line_frac", "gopher_repetition", "gopher_rep_dup_line_frac", ">", "dup_line_frac"),
        Check("gopher_rep_dup_line_char_frac", "gopher_repetition", "gopher_rep_dup_line_char_frac", ">", "dup_line_char_frac"),
    ]
    rep = cfg.gopher_repetition
    checks += [
        Check(f"gopher_rep_top_{n}_gram", "gopher_repetition", f"gopher_rep_top_{n}_gram_char_frac", ">", "top_n_grams", n)
        for n in sorted(rep.top_n_grams)
    ]
    checks += [
        Check(f"gopher_rep_duplicated_{n}_n_grams", "gopher_repetition", f"gopher_rep_dup_{n}_gram_char_frac", ">", "dup_n_grams", n)
        for n in sorted(rep.dup_n_grams)
    ]
    checks = [replace(c, guard=("gopher_words", "min_doc_words")) if c.rule == "gopher_repetition" else c for c in checks]
    checks += [
        Check("c4_lorem_ipsum", "c4", "c4_lorem_ipsum_lines", ">", "filter_lorem_ipsum"),
        Check("c4_curly_bracket", "c4", "c4_curly_bracket_lines", ">", "filter_curly_bracket"),
        Check("c4_too_few_sentences", "c4", "c4_sentences", "<", "min_num_sentences"),
        Check("fineweb_line_punct_ratio", "fineweb", "fineweb_line_punct_ratio", "<", "line_punct_thr"),
        Check("fineweb_short_line_ratio", "fineweb", "fineweb_short_line_ratio", ">", "short_line_thr"),
        Check("fineweb_char_dup_ratio", "fineweb", "fineweb_char_dup_ratio", ">", "char_duplicates_ratio"),
        Check("fineweb_list_ratio", "fineweb", "fineweb_list_ratio", ">", "new_line_ratio"),
    ]
    return [c for c in checks if cfg.scored(c.rule)]


def _threshold(rule_cfg, check: Check) -> float | None:
    """The threshold of a check under one rule config; None when the check is off."""
    if not rule_cfg.enabled:
        return None
    value = getattr(rule_cfg, check.threshold)
    if check.key is not None:
        value = (value or {}).get(check.key)
    if check.threshold in ("filter_lorem_ipsum", "filter_curly_bracket"):
        return 0 if value else None  # a boolean rule: reject when any such line survives
    if check.threshold == "min_num_sentences" and value == -1:
        return None
    return value


def _floats(scores: pl.DataFrame, column: str, cache: dict[str, np.ndarray]) -> np.ndarray:
    """A score column as float64 with NaN for null, converted once per call of failing_masks."""
    if column not in cache:
        cache[column] = scores[column].cast(pl.Float64).fill_null(np.nan).to_numpy()
    return cache[column]


def _guarded(scores: pl.DataFrame, domains: pl.Series, domain_names: list[str], check: Check, cfg: QualityConfig,
             cache: dict[str, np.ndarray]) -> np.ndarray:  # fmt: skip
    """Where a guarded check is judged: its guard score at least the rule's minimum (null: everywhere)."""
    column, option = check.guard
    minimum = np.full(len(scores), np.nan)
    base = getattr(getattr(cfg, check.rule), option)
    minimum[:] = np.nan if base is None else float(base)
    for domain in domain_names:
        value = getattr(cfg.rule_for(check.rule, domain), option)
        minimum[(domains == domain).fill_null(False).to_numpy()] = np.nan if value is None else float(value)
    values = _floats(scores, column, cache)
    with np.errstate(invalid="ignore"):
        return np.isnan(minimum) | (values >= minimum)


def failing_masks(
    scores: pl.DataFrame, domains: pl.Series, decided: pl.Series, cfg: QualityConfig
) -> list[tuple[Check, np.ndarray, np.ndarray]]:
    """For each check: which documents fail it (only rows where `decided` is true are judged), and
    the threshold each document was held to (NaN where the check is off)."""
    domain_names = [d for d in cfg.by_domain if d in set(domains.drop_nulls().unique().to_list())]
    decided_np = decided.fill_null(False).to_numpy()
    out = []
    cache: dict[str, np.ndarray] = {}
    for check in quality_checks(cfg):
        base = _threshold(getattr(cfg, check.rule), check)
        thresholds = np.full(len(scores), np.nan if base is None else float(base))
        for domain in domain_names:
            value = _threshold(cfg.rule_for(check.rule, domain), check)
            thresholds[(domains == domain).fill_null(False).to_numpy()] = np.nan if value is None else float(value)
        score = _floats(scores, check.score, cache)
        with np.errstate(invalid="ignore"):
            fails = score < thresholds if check.op == "<" else score > thresholds
        if check.guard is not None:
            fails &= _guarded(scores, domains, domain_names, check, cfg, cache)
        if check.reason == "fineweb_line_punct_ratio":
            exclude_zero = np.full(len(scores), cfg.fineweb.line_punct_exclude_zero)
            for domain in domain_names:
                exclude_zero[(domains == domain).fill_null(False).to_numpy()] = cfg.rule_for("fineweb", domain).line_punct_exclude_zero
            fails &= ~((score == 0) & exclude_zero & (scores["fineweb_lines"].to_numpy() > 0))
        out.append((check, fails & decided_np, thresholds))
    return out
