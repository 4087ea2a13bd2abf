"""A dataset's Evidence: the ablations it took part in (`train ablate`) and their verdicts.

Kept in `evidence.json` beside card.json, not in it: an ablation run later does not change the
card's hash, so the datasets made from this one are not made stale by it. Each entry records the
digest of the data files it was measured on; when the card is written again (a rerun, `make
cards`), the entries whose digest still matches the data are kept and the README's Evidence
section is rendered from them, as the Known limitations section is kept. Evidence about other
data is dropped with that data.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from corpus.document import CARD_JSON, CARD_README

EVIDENCE_JSON = "evidence.json"
EVIDENCE_HEADING = "## Evidence"


def data_digest(card: dict) -> str:
    """The identity of a dataset's kept documents: the checksums of its data files."""
    files = sorted((f["path"], f["sha256"]) for f in card.get("files", []) if str(f.get("path", "")).startswith("data/"))
    return hashlib.sha256(json.dumps(files).encode()).hexdigest()


def read_evidence(folder: Path) -> list[dict]:
    path = Path(folder) / EVIDENCE_JSON
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return []
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _write(folder: Path, entries: list[dict]) -> None:
    path = Path(folder) / EVIDENCE_JSON
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(entries, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def carried_evidence(previous_folder: Path, card: dict) -> list[dict]:
    """The entries of the folder's earlier evidence that were measured on the same data as `card`."""
    digest = data_digest(card)
    return [e for e in read_evidence(previous_folder) if e.get("data_digest") == digest]


def keep_evidence(folder: Path, entries: list[dict]) -> None:
    """Write the entries that still hold; an evidence file about other data does not stay."""
    if entries:
        _write(folder, entries)
    elif (Path(folder) / EVIDENCE_JSON).is_file():
        (Path(folder) / EVIDENCE_JSON).unlink()


def add_evidence(folder: Path, entry: dict) -> None:
    """Add (or replace: same ablation and arm) an entry and render the README's Evidence section again.
    The entry's `ablation` and `report` paths are stored relative to the dataset folder."""
    from corpus.cards.readme import render_readme

    from corpus.cards import relative_to

    folder = Path(folder)
    card = json.loads((folder / CARD_JSON).read_text(encoding="utf-8"))
    # paths as seen from the dataset folder, as in its lineage: a tree of folders can move as a whole
    entry = {**entry, "data_digest": data_digest(card),
             **{key: relative_to(entry[key], folder) for key in ("ablation", "report") if entry.get(key)}}  # fmt: skip
    if isinstance(entry.get("arms"), dict):
        entry["arms"] = {arm: [relative_to(p, folder) for p in paths] for arm, paths in entry["arms"].items()}
    entries = [e for e in read_evidence(folder) if (e.get("ablation"), e.get("arm")) != (entry["ablation"], entry["arm"])]
    entries.append(entry)
    _write(folder, entries)
    readme = folder / CARD_README
    previous = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    tmp = readme.with_name(readme.name + ".tmp")
    tmp.write_text(render_readme(card, previous, entries), encoding="utf-8")
    os.replace(tmp, readme)


def evidence_rows(entries: list[dict]) -> list[list[str]]:
    """One row per verdict: ablation, this arm, against, eval set, loss difference, verdict, scale."""
    rows = []
    for e in entries:
        for v in e.get("verdicts", []):
            mean, std = v.get("loss_diff_mean"), v.get("loss_diff_std")
            diff = "-" if mean is None else f"{mean:+.4f} ± {std or 0:.4f}"
            rows.append([e.get("ablation", "?"), e.get("arm", "?"), v.get("against", "?"), v.get("eval", "?"), diff,
                         v.get("verdict", "?"), f"{e.get('preset')}, {e.get('seeds')} seeds, {e.get('tokens_per_run', 0):,} tokens/run"])  # fmt: skip
    return rows


def render_evidence(entries: list[dict]) -> str:
    from corpus.cards.readme import table

    if not entries:
        return ""
    rows = evidence_rows(entries)
    text = (f"{EVIDENCE_HEADING}\n\nEqual-token training runs (`train ablate`) this dataset took part in. The loss difference "
            "is this dataset's eval loss minus the other arm's (negative: this one is better), mean ± standard deviation "
            "of the paired per-seed differences; a verdict names a winner only beyond twice that deviation.\n\n")  # fmt: skip
    return text + table(["ablation", "this arm", "against", "eval set", "loss difference", "verdict", "scale"], rows) + "\n"
